"""What a campaign that spans machines and sessions needs (issue 9): a store that grows by
seeds but refuses another config, the pre-registered read-out window, slices of a sweep,
trunks re-trained to recreate the switch checkpoints a clone lacks, and published stores
written from committed code only."""
from __future__ import annotations

import shutil
from pathlib import Path
import subprocess

import pandas as pd
import pytest

from needle_core.config import make_config
from needle_core.store import ResultStore
from needle_core.sweep import Sweep, published

#: One seed, two switch times, 3 epochs on 250 synthetic images: seconds on a CPU.
TINY = dict(epochs=3, seeds=[0], n_trains=[250], n_test=100, switch_times=[0, 2], kinds=["fc"], baselines=[],
            batch_size=50, threads=1)
KEY = ["run", "epoch", "metric", "layer"]


def tiny(**extra):
    return make_config("smoke", dict(TINY, **extra))


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEY).reset_index(drop=True)


@pytest.mark.parametrize("epochs, readout, window", [(20, 0.2, [17, 18, 19, 20]), (6, 0.2, [5, 6]),
                                                      (3, 0.0, [3]), (100, 0.2, list(range(81, 101)))])
def test_readout_window_is_the_last_fraction_of_the_epochs(epochs, readout, window):
    config = make_config("smoke", dict(epochs=epochs, readout=readout, switch_times=[0]))
    assert config.readout_epochs == window
    assert set(window) <= set(config.eval_epochs)


def test_digest_covers_what_changes_a_run_and_nothing_else():
    base = tiny().digest()
    for same in (dict(seeds=[0, 1, 2]), dict(switch_times=[2, 0]), dict(checkpoint_minutes=1.0),
                 dict(data_root="elsewhere"), dict(kinds=["fc", "lc"])):
        assert tiny(**same).digest() == base, same
    for other in (dict(lr=0.05), dict(threads=2), dict(switch_times=[0, 1]), dict(readout=0.1), dict(epochs=4)):
        assert tiny(**other).digest() != base, other


def test_fields_added_later_leave_the_digest_alone_at_their_defaults():
    # Stores published before fc_epochs, train_eval_subset and readout_every existed keep their digest.
    import hashlib
    import json

    from needle_core.config import _LATER_FIELDS, _NOT_IN_DIGEST
    from needle_core.data import identity

    config = tiny()
    old = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_DIGEST and k not in _LATER_FIELDS}
    old["switch_times"], old["dataset"] = sorted(set(old["switch_times"])), identity(config.dataset)
    assert config.digest() == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:10]
    for other in (dict(fc_epochs=2), dict(train_eval_subset=100), dict(readout_every=2), dict(precision="bf16")):
        assert tiny(**other).digest() != config.digest(), other


def test_fc_epochs_gives_every_network_its_own_budget_and_read_out(tmp_path):
    # The converged edition's schedule: the trunk trains `epochs`, a branch fc_epochs from its
    # switch, an FCN fc_epochs from 0; each read-out is the last fraction of its own budget,
    # every readout_every-th epoch; train metrics on a fixed balanced subset.
    config = tiny(epochs=4, fc_epochs=3, switch_times=[0, 2], readout=0.7, readout_every=2,
                  train_eval_subset=100, baselines=["fcn"])
    assert config.span("cnn") == (0, 4) and config.span("efcn", 2) == (2, 5) and config.span("fcn") == (0, 3)
    assert config.run_readout_epochs("efcn", 2) == [3, 5] and config.run_readout_epochs("cnn") == [2, 4]
    assert set(config.run_readout_epochs("efcn", 2)) <= set(config.run_eval_epochs("efcn", 2))
    frame = Sweep(config, tmp_path).run(progress=False)
    last = frame.groupby("run")["epoch"].max()
    assert last["vanilla-w4-n250-s0/cnn"] == 4 and last["vanilla-w4-n250-s0/fcn"] == 3
    assert last["vanilla-w4-n250-s0/efcn-t2"] == 5 and last["vanilla-w4-n250-s0/efcn-t0"] == 3
    from needle_core import analysis

    ends = analysis.readout(frame, "test_acc", config).set_index("run")
    assert ends.loc["vanilla-w4-n250-s0/efcn-t2", "evals"] == 2 and ends.loc["vanilla-w4-n250-s0/cnn", "evals"] == 2
    with pytest.raises(ValueError, match="fc_epochs"):
        tiny(fc_epochs=0)


def test_a_store_grows_by_seeds_and_refuses_another_config(tmp_path):
    Sweep(tiny(), tmp_path).run(progress=False)
    record = Sweep(tiny(seeds=[0, 1]), tmp_path)  # more seeds: the same runs for seed 0
    record.run(progress=False, only=["*-s1/cnn"])
    assert {s for s in ResultStore(tmp_path).provenance().seed} == {0, 1}
    assert (tmp_path / "config.json").exists() and record.record["config"]["seeds"] == [0, 1]
    with pytest.raises(ValueError, match="another config"):
        Sweep(tiny(lr=0.05), tmp_path)


def test_only_runs_the_matching_runs_and_their_trunks(tmp_path):
    sweep = Sweep(tiny(), tmp_path)
    assert [t.spec.run for t in sweep.tasks(["*/efcn-t2"])] == ["vanilla-w4-n250-s0/cnn", "vanilla-w4-n250-s0/efcn-t2"]
    with pytest.raises(ValueError, match="no run of the sweep matches"):
        sweep.tasks(["*/elcn-*"])


def test_missing_switch_checkpoints_are_recreated_by_retraining_the_trunk(tmp_path):
    """On a clone the tidy results are there and the checkpoints are not: a branch still to
    run re-trains its finished trunk to recreate them, identical to the original."""
    first = tidy(Sweep(tiny(), tmp_path).run(progress=False))
    store = ResultStore(tmp_path)
    branch = "vanilla-w4-n250-s0/efcn-t2"
    shutil.rmtree(store.run_dir(branch))
    for pt in tmp_path.rglob("*.pt"):
        pt.unlink()
    again = tidy(Sweep(tiny(), tmp_path).run(progress=False))
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    assert store.run_provenance(branch)["trunk_recreated"] == {"max_abs_diff": 0.0}
    assert sorted(p.name for p in store.run_dir("vanilla-w4-n250-s0/cnn").glob("switch-*.pt")) == \
        ["switch-0.pt", "switch-2.pt"]


def test_published_stores_refuse_a_dirty_tree(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (repo / ".gitignore").write_text("scratch/\n")
    assert published(repo / "runs" / "cpu") and not published(repo / "scratch" / "smoke")
    assert not published(tmp_path / "outside")


def test_a_dirty_tree_writes_into_a_published_store_only_when_told(tmp_path, monkeypatch):
    import needle_core.sweep as sweep_module

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.setattr(sweep_module, "git_commit", lambda: "0123abc-dirty")
    with pytest.raises(ValueError, match="uncommitted changes"):
        Sweep(tiny(), tmp_path / "runs" / "cpu").run(progress=False)
    assert not ResultStore(tmp_path / "runs" / "cpu").finished_runs()  # refused before training
    Sweep(tiny(), tmp_path / "runs" / "cpu", allow_dirty=True).run(progress=False, only=["*/cnn"])
    assert ResultStore(tmp_path / "runs" / "cpu").finished_runs() == ["vanilla-w4-n250-s0/cnn"]


def test_a_clone_without_the_data_reads_the_store_and_refuses_only_to_train(tmp_path):
    """The published store records its config, the data set's path and hash included: a
    clone re-renders it without the data; training what is missing needs the data; another
    copy of the data (other bytes) is refused with the command that runs into a new folder."""
    import tarfile

    from PIL import Image

    from needle_core.cli import recorded_config

    tree = tmp_path / "src" / "tiny"
    for split in ("train", "test"):
        for k, name in enumerate(("ant", "bee", "cat")):
            (tree / split / name).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (32, 32), (80 * k, 40 * i, 9)).save(tree / split / name / f"{i}.png")
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(tree / split, arcname=split)
    folder = dict(dataset=f"folder:{archive}", n_trains=[6], n_test=None, batch_size=3, data_root=str(tmp_path / "d"))
    store = tmp_path / "store"
    made = tidy(Sweep(tiny(**folder), store).run(progress=False, only=["*/efcn-t0"]))
    archive.unlink()
    config = recorded_config(store, make_config("smoke"))
    assert config.dataset == f"folder:{archive}" and config.n_trains == [6]
    pd.testing.assert_frame_equal(tidy(Sweep(config, store).run(progress=False, only=["*/efcn-t0"])), made)
    with pytest.raises(ValueError, match="still need training"):
        Sweep(config, store).run(progress=False)
    with tarfile.open(archive, "w:gz") as tar:  # another copy, other bytes: one image fewer
        tar.add(tree / "train", arcname="train")
    with pytest.raises(ValueError, match="another data set"):
        Sweep(config, store)


def test_reproduce_on_a_clone_without_the_data_renders_the_edition_pages_read_only(tmp_path, monkeypatch, capsys):
    """``reproduce --profile cpu`` on a clone (the published store, no data set, no
    checkpoints) trains nothing and re-executes the pages the edition renders with that
    profile, asking them to read only (train=False)."""
    from needle_core import book, cli

    store = tmp_path / "store"
    config = tiny(dataset=f"folder:{tmp_path / 'gone.tar.gz'}", name="smoke")
    record = dict(config=config.to_dict(), digest="0123456789", dataset_identity="sha256:feed")
    from needle_core import integrity
    from needle_core.io import atomic_write_json

    integrity.create(store)  # a store of this version: config.json listed in its manifest
    atomic_write_json(store / "config.json", record)
    monkeypatch.setattr(Sweep, "run", lambda *a, **k: pytest.fail("reproduce trained"))
    calls = []
    monkeypatch.setattr(book, "execute", lambda src, dst, params, **kw: calls.append((Path(src).stem, params)))
    monkeypatch.setattr(book, "EDITION", {"smoke": {"02_training_curves": {},
                                                    "scorecard": {"second_arm": "cpu-lr"}}})
    assert cli.main(["reproduce", "--profile", "smoke", "--out", str(store)]) == 0
    assert [name for name, _ in calls] == ["02_training_curves", "scorecard"]
    assert all(params["train"] is False for _, params in calls)
    assert calls[1][1]["second_arm"] == "cpu-lr"  # a page's own parameters (copies: tests/test_book.py)
    assert "re-rendering the finished runs" in capsys.readouterr().err


def test_bf16_is_a_scratch_experiment_never_a_published_one(tmp_path):
    # bf16 autocast changes every trained number: a sweep in it runs and says so in its
    # provenance, while a published store (tracked by git) refuses it before training anything.
    with pytest.raises(ValueError, match="precision='fp16'"):
        tiny(precision="fp16")
    frame = Sweep(tiny(precision="bf16"), tmp_path / "scratch").run(progress=False, only=["*/efcn-t2"])
    fp32 = Sweep(tiny(), tmp_path / "scratch-fp32").run(progress=False, only=["*/efcn-t2"])
    prov = ResultStore(tmp_path / "scratch").run_provenance("vanilla-w4-n250-s0/efcn-t2")
    assert prov["precision"] == "torch.float32 weights, bf16 autocast" and prov["config"]["precision"] == "bf16"
    assert ResultStore(tmp_path / "scratch-fp32").run_provenance("vanilla-w4-n250-s0/cnn")["precision"] == \
        "torch.float32"
    from needle_core import analysis  # every caption of its pages says so

    store = ResultStore(tmp_path / "scratch")
    assert analysis.describe(store.provenance(), tiny(precision="bf16"))["data"].endswith(", bf16 autocast")
    assert "autocast" not in analysis.describe(store.provenance(), tiny())["data"]
    loss = lambda f: f[(f.metric == "test_loss")].sort_values(["run", "epoch"])["value"].to_numpy()  # noqa: E731
    assert len(loss(frame)) == len(loss(fp32)) and (loss(frame) != loss(fp32)).any()  # another experiment
    assert abs(loss(frame) - loss(fp32)).max() < 0.02  # the same network a few bf16 roundings away (0.0017 measured)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    with pytest.raises(ValueError, match="published editions train in fp32 only"):
        Sweep(tiny(precision="bf16"), tmp_path / "runs" / "cpu").run(progress=False)
    assert not ResultStore(tmp_path / "runs" / "cpu").finished_runs()


def test_a_store_made_before_a_field_existed_names_that_field_when_a_config_changes_it(tmp_path, monkeypatch):
    # A store published before `precision` existed records no such key: a bf16 config must be
    # told it differs in precision, not that it came from "another data set".
    Sweep(tiny(), tmp_path).run(progress=False, only=["*/cnn"])
    record = Sweep(tiny(), tmp_path).record
    old = dict(record, config={k: v for k, v in record["config"].items() if k != "precision"})
    monkeypatch.setattr(Sweep, "record", property(lambda self: old))
    Sweep(tiny(), tmp_path)  # the default is what the old store meant
    with pytest.raises(ValueError, match=r"another config \(differs in precision;"):
        Sweep(tiny(precision="bf16"), tmp_path)


def test_runs_record_how_their_deviation_was_summed_and_older_ones_are_flagged(tmp_path):
    # δ summed before 2026-12-06 read low (one fp32 reduction per layer): a run says which
    # summation it used, and claim 3 flags a store whose eFCNs do not say.
    from needle_core import analysis
    from needle_core.subspace import DEVIATION_VERSION

    config = tiny()
    frame = Sweep(config, tmp_path).run(progress=False)
    prov = ResultStore(tmp_path).provenance()
    assert prov.loc[prov.role == "efcn", "deviation_version"].eq(DEVIATION_VERSION).all()
    assert analysis.OLD_DEVIATION not in analysis.deviation_claim(frame, prov, config)["note"]
    old = prov.assign(deviation_version=None)
    efcns = int((prov.role == "efcn").sum())
    assert f"{efcns} of {efcns} eFCN runs: {analysis.OLD_DEVIATION}" in analysis.deviation_claim(frame, old, config)["note"]
    mixed = prov.copy()  # seeds added after the fix: the note counts the old runs only
    mixed.loc[mixed.index[mixed.role == "efcn"][0], "deviation_version"] = None
    assert f"1 of {efcns} eFCN runs: " in analysis.deviation_claim(frame, mixed, config)["note"]
