"""The landscape measurement: stored once as tidy rows, resumable, read without checkpoints."""
import json
import shutil

import pandas as pd
import pytest

from needle_core import landscape
from needle_core.config import make_config
from needle_core.io import atomic_write_json
from needle_core.sweep import Sweep

CONFIG = make_config("smoke", {"seeds": [0], "switch_times": [0, 2]})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("landscape")
    Sweep(CONFIG, root).run(progress=False)
    landscape.measure(CONFIG, root, [2], n_points=3, string_points=3, string_steps=2, n_eval=100, progress=False)
    return root


def test_barriers_of_both_paths_and_methods(store):
    frame = landscape.results(store)
    assert len(frame) == 2 * 2  # two paths × linear and string, one seed, one t_w
    assert set(frame.path) == {"cnn-efcn", "efcn-fcn"} and set(frame.method) == {"linear", "string"}
    assert (frame.barrier >= 0).all() and frame.seed.eq(0).all() and frame.switch_time.eq(2).all()
    # The path eFCN → FCN starts where CNN@t_w → eFCN ends.
    ends = frame.set_index(["path", "method"])
    assert ends.loc[("cnn-efcn", "linear"), "loss_b"] == pytest.approx(ends.loc[("efcn-fcn", "linear"), "loss_a"])


def test_each_scan_has_its_provenance(store):
    [record] = (store / "landscape").glob("*.json")
    prov = json.loads(record.read_text())
    assert prov["config_digest"] == CONFIG.digest() and prov["seed"] == 0 and prov["switch_time"] == 2
    assert prov["settings"] == dict(methods=["linear", "string"], n_points=3, string_points=3, string_steps=2,
                                    spring=0.5, n_eval=100)
    assert prov["wall_time_s"] > 0 and "git_commit" in prov and prov["torch"]
    [row] = landscape.records(store).to_dict("records")
    assert row["status"] == "done" and row["scanned"] and row["settings"] == prov["settings"]
    assert (row["seed"], row["switch_time"]) == (0, 2)


def test_what_is_missing_and_the_command_that_measures_it(store):
    assert landscape.missing(CONFIG, store, [0, 2]) == [dict(arch="vanilla", width=4, n_train=500, seed=0,
                                                             switch_time=0)]
    assert landscape.missing(CONFIG, store, [2]) == []
    assert landscape.command(CONFIG, store, [0]) == (
        f"python -m needle_core landscape --profile smoke --set 'seeds=[0]' --set 'switch_times=[0, 2]' "
        f"--out {store} --switch-times 0")
    assert landscape.command(make_config("smoke"), "runs/smoke", [0, 2], [1]) == \
        "python -m needle_core landscape --profile smoke --switch-times 0,2 --seeds 1"


def test_refuses_a_store_of_another_config(store):
    other = make_config("smoke", {"seeds": [0], "switch_times": [0, 2], "lr": 0.05})
    with pytest.raises(ValueError, match="another config"):
        landscape.measure(other, store, [2], progress=False)


def test_measure_resumes_and_reads_without_checkpoints(store, monkeypatch):
    [stored] = (store / "landscape").glob("*.parquet")
    written = stored.stat().st_mtime_ns
    for pt in store.rglob("*.pt"):  # a clone has the tidy rows, never the checkpoints
        pt.unlink()
    again = landscape.measure(CONFIG, store, [2], progress=False)  # nothing missing: nothing loaded
    assert stored.stat().st_mtime_ns == written
    pd.testing.assert_frame_equal(again, landscape.scans(store))
    # The checkpoints are looked for before the data set is loaded: a clone without them is
    # told so at once, and never downloads a data set it could not use.
    import needle_core.data

    def no_data(*args, **kwargs):
        raise AssertionError("the data set was loaded before the checkpoints were found")

    monkeypatch.setattr(needle_core.data, "load", no_data)
    with pytest.raises(landscape.WeightsMissing, match=r"switch-0\.pt is not here"):
        landscape.measure(CONFIG, store, [0], progress=False)


def test_a_diverged_efcn_is_recorded_not_measured(store, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(store, copy, ignore=shutil.ignore_patterns("landscape"))
    prov = copy / "runs" / "vanilla-w4-n500-s0" / "efcn-t0" / "provenance.json"
    # as a sweep writes it (recorded in the store's manifest; a hand edit is damage, tests/test_integrity.py)
    atomic_write_json(prov, {**json.loads(prov.read_text()), "status": "diverged"})
    assert landscape.measure(CONFIG, copy, [0], progress=False).empty  # no rows, and no error
    record = json.loads((copy / "landscape" / "vanilla-w4-n500-s0-t0.json").read_text())
    assert record["status"] == "diverged" and not list((copy / "landscape").glob("*.parquet"))
    assert landscape.missing(CONFIG, copy, [0]) == []  # nothing left to measure there
    assert landscape.records(copy)[["status", "scanned"]].values.tolist() == [["diverged", False]]


def test_empty_store_has_no_landscape(tmp_path):
    assert landscape.results(tmp_path).empty and landscape.scans(tmp_path).empty and landscape.records(tmp_path).empty
