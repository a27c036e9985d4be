"""The landscape measurement: stored once as tidy rows, resumable, read without checkpoints."""
import ast
import json
from pathlib import Path
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from needle_core import analysis, landscape
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
                                    spring=0.5, n_eval=100, eval_images="class-balanced")
    assert prov["wall_time_s"] > 0 and "git_commit" in prov and prov["torch"]
    [row] = landscape.records(store).to_dict("records")
    assert row["status"] == "done" and row["scanned"] and row["settings"] == prov["settings"]
    assert (row["seed"], row["switch_time"]) == (0, 2)
    # the scorecard's claim 6 reports this time (it once said 0.0 s for 5,267 s of measuring)
    assert landscape.wall_times(store) == dict(string=prov["wall_time_s"], curve=0.0)
    assert landscape.wall_times(store, dict(arch="vanilla", width=4, n_train=500)) == landscape.wall_times(store)
    assert landscape.wall_times(store, dict(arch="vanilla", width=8, n_train=500))["string"] == 0.0


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


# -- claim 6 by trained curves: tasks of the sweep's graph (issue 18) -----------------------------

from needle_core.sweep import graph  # noqa: E402

CURVES = make_config("smoke", {"seeds": [0, 1], "switch_times": [0, 2], "kinds": ["fc"], "landscape_switch_times": [2],
                               "landscape_n_train": 100, "landscape_n_test": 100, "landscape_check_steps": 5,
                               "landscape_max_steps": 10})


def test_curve_tasks_are_opt_in_and_outside_the_digest():
    assert not [t for t in graph(CONFIG) if t.spec.role == "curve"]  # off unless landscape_switch_times
    assert CURVES.digest() == make_config("smoke", {"seeds": [0, 1], "switch_times": [0, 2]}).digest()
    tasks = {t.spec.run: t for t in graph(CURVES)}
    curves = [t for t in tasks.values() if t.spec.role == "curve"]
    assert sorted(t.spec.run.rsplit("/", 1)[1] for t in curves) == [
        "cnn-cnn-s0-s1", "efcn-efcn-s0-s1-t2", "efcn-fcn-s0-s0-t2", "efcn-fcn-s1-s1-t2", "fcn-fcn-s0-s1"]
    order = list(tasks)
    for t in curves:  # each needs its two endpoint runs, which come first in the graph
        assert all(n in tasks and order.index(n) < order.index(t.spec.run) for n in t.needs)
    tested = tasks["landscape/vanilla-w4-n500/efcn-fcn-s1-s1-t2"]
    assert tested.needs == ["vanilla-w4-n500-s1/efcn-t2", "vanilla-w4-n500-s1/fcn"]
    assert landscape.control_pairs([0, 1, 2]) == [(0, 1), (1, 2), (2, 0)] and landscape.control_pairs([3]) == []
    with pytest.raises(ValueError, match="not switch times"):
        make_config("smoke", {"landscape_switch_times": [3]})


def test_landscape_seeds_keep_the_curves_when_a_store_grows_by_seeds():
    grown = make_config("smoke", {"seeds": [0, 1, 2, 3], "switch_times": [0, 2], "kinds": ["fc"],
                                  "landscape_switch_times": [2], "landscape_seeds": [0, 1]})
    assert grown.digest() == CURVES.digest()  # the curves' seeds change no run's numbers
    names = lambda c: sorted(t.spec.run for t in graph(c) if t.spec.role == "curve")  # noqa: E731
    assert names(grown) == names(CURVES)  # seeds 2-3 add runs, not curves, and the control pairs stay
    assert any(t.spec.run == "vanilla-w4-n500-s3/efcn-t2" for t in graph(grown))
    for bad, message in (([0, 5], r"\[5\] are not among them"), ([1, 1], "repeats"), ([], "give seeds of the sweep"),
                         ([0.5], "not of type")):
        with pytest.raises(ValueError, match=message):
            make_config("smoke", {"seeds": [0, 1], "landscape_seeds": bad})
    # the converged profile's three-seed cycle, whatever the order landscape_seeds is given in
    three = lambda order: make_config("smoke", {"seeds": [0, 1, 2, 3, 4], "switch_times": [0, 2], "kinds": ["fc"],  # noqa: E731
                                                "landscape_switch_times": [2], "landscape_seeds": order})
    for order in ([0, 1, 2], [2, 1, 0]):
        assert [t.spec.run.rsplit("/", 1)[1] for t in graph(three(order)) if "/fcn-fcn-" in t.spec.run] == \
            ["fcn-fcn-s0-s1", "fcn-fcn-s1-s2", "fcn-fcn-s2-s0"]
    for given, read in (("null", None), ("[0]", [0]), ("1", [1]), (None, None)):  # as --set gives them
        assert make_config("smoke", {"seeds": [0, 1], "landscape_seeds": given}).landscape_seeds == read


def test_curve_tables_keep_the_tasks_the_config_plans():
    """landscape.planned_only: a curve of a seed beyond landscape_seeds (or a t_w beyond
    landscape_switch_times) is left out and named, so claim 6 keeps its registered seeds and
    control pairs; numbers stored as floats and NaN match the planned tasks."""
    base = dict(arch="vanilla", width=4.0, n_train=500.0)
    rows = pd.DataFrame([dict(base, pair=p, seed=s, other=o, switch_time=t, barrier=0.1)
                         for p, s, o, t in (("efcn-fcn", 0, 0, 2.0), ("efcn-fcn", 1, 1, 2.0), ("fcn-fcn", 0, 1, np.nan),
                                            ("efcn-fcn", 3, 3, 2.0), ("efcn-fcn", 0, 0, 0.0), ("fcn-fcn", 1, 3, np.nan))])
    grown = make_config("smoke", {"seeds": [0, 1, 3], "switch_times": [0, 2], "kinds": ["fc"],
                                  "landscape_switch_times": [2], "landscape_seeds": [0, 1]})
    kept, extra = landscape.planned_only(rows, grown)
    assert [f"{r.pair}-s{r.seed}-t{r.switch_time}" for r in kept.itertuples()] == [
        "efcn-fcn-s0-t2.0", "efcn-fcn-s1-t2.0", "fcn-fcn-s0-tnan"]
    assert extra == ["landscape/vanilla-w4-n500/efcn-fcn-s0-s0-t0", "landscape/vanilla-w4-n500/efcn-fcn-s3-s3-t2",
                     "landscape/vanilla-w4-n500/fcn-fcn-s1-s3"]
    unplanned = make_config("smoke", {"seeds": [0, 1]})  # plans no curve: keeps every row
    assert landscape.planned_only(rows, unplanned)[0].equals(rows)


def test_only_a_curve_task_brings_its_endpoints_and_their_trunks(tmp_path):
    sweep = Sweep(CURVES, tmp_path)
    runs = [t.spec.run for t in sweep.tasks(["*/efcn-fcn-s0-s0-t2"])]
    assert runs == ["vanilla-w4-n500-s0/cnn", "vanilla-w4-n500-s0/fcn", "vanilla-w4-n500-s0/efcn-t2",
                    "landscape/vanilla-w4-n500/efcn-fcn-s0-s0-t2"]


@pytest.fixture(scope="module")
def curved(tmp_path_factory):
    """A smoke sweep run without curve tasks, then again with them (the same store)."""
    root = tmp_path_factory.mktemp("curves")
    plain = make_config("smoke", {"seeds": [0, 1], "switch_times": [0, 2], "kinds": ["fc"]})
    Sweep(plain, root).run(progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("provenance.json")}
    Sweep(CURVES, root).run(progress=False)
    return root, stamps


def test_curve_tasks_join_an_existing_store_without_redoing_its_runs(curved):
    root, stamps = curved
    assert {p: p.stat().st_mtime_ns for p in root.rglob("provenance.json")} == stamps
    records = landscape.curve_records(root)
    assert len(records) == 5 and set(records["status"]) == {"done"}
    assert landscape.wall_times(root)["curve"] == pytest.approx(records["wall_time_s"].sum()) and records["wall_time_s"].gt(0).all()
    planned = records.iloc[:2]  # a table narrowed by planned_only: only its tasks count
    assert landscape.wall_times(root, curves=planned)["curve"] == pytest.approx(planned["wall_time_s"].sum())
    assert records["config_digest"].eq(CURVES.digest()).all()
    assert records["settings"].iloc[0] == landscape.curve_settings(CURVES)
    assert records["n_curve"].eq(100).all()
    controls = records[records["pair"] != "efcn-fcn"]
    assert controls["data"].str.contains("share none").all()  # synthetic: each seed draws its own images
    # every curve file is in the manifest, the tasks' flock files are not: verify calls it clean
    from needle_core.store import ResultStore

    assert ResultStore(root).verify()["problems"] == []


def test_curve_results_traces_and_the_decision(curved):
    root, _ = curved
    frame = landscape.curve_results(root)
    assert set(frame["method"]) == set(landscape.CURVE_METHODS) and len(frame) == 5 * 4
    assert (frame["barrier"] >= 0).all() and frame["test_acc_min"].between(0, 1).all()
    linear = frame[frame["method"] == "linear"].set_index("pair")
    curve = frame[frame["method"] == "curve"].set_index("pair")
    pd.testing.assert_series_equal(linear["loss_a"], curve["loss_a"])  # same endpoints, same images
    traces = landscape.curve_traces(root)
    assert set(traces["method"]) == {"string", "curve"}
    per_check = traces[traces["method"] == "curve"].groupby(["task", "check"]).size()
    assert per_check.eq(landscape.CURVE_POINTS).all()
    assert traces.groupby(["task", "method"])["step"].max().le(10).all()
    decision = landscape.curve_claim(frame)
    assert decision["verdict"] == "inconclusive" or decision["verdict"] in ("reproduces", "contradicted")
    assert list(decision["per_tw"]["switch_time"]) == [2] and decision["per_tw"]["n"].item() == 2
    # on the scorecard, claim 6 decided by the curves reports the curves' measuring time
    from needle_core import report

    page = report.load("smoke", root, {"seeds": [0, 1], "switch_times": [0, 2], "kinds": ["fc"],
                                       "landscape_switch_times": [2], "landscape_n_train": 100}, train=False)
    card = report.scorecard(page)[0].set_index("claim")
    records = landscape.curve_records(root)
    assert card.loc[6, "wall_time"] == pytest.approx(records["wall_time_s"].sum())
    # ... of the tasks the config plans only: with one landscape seed, the other seed's curves are not counted
    narrowed = report.load("smoke", root, {"seeds": [0, 1], "switch_times": [0, 2], "kinds": ["fc"],
                                           "landscape_switch_times": [2], "landscape_n_train": 100,
                                           "landscape_seeds": [0]}, train=False)
    mine = records["task"].isin([t.run for t in landscape.curve_tasks(narrowed.config)])
    assert 0 < mine.sum() < len(records)
    assert report.scorecard(narrowed)[0].set_index("claim").loc[6, "wall_time"] == pytest.approx(
        records.loc[mine, "wall_time_s"].sum())


def test_page_6b_tables_and_figures(curved, capsys, monkeypatch):
    """Page 6b's per-task table joins each task's barriers, test accuracy, steps and cost (per
    configuration: keys include the width), keeps a task whose endpoint diverged (nothing
    measured) as a row with its status, and the rule's section says "not measured" for a
    configuration without curves; the figures draw the store's curves, and say so when there
    are none."""
    import matplotlib

    matplotlib.use("Agg")
    from types import SimpleNamespace

    from needle_core import figures, plots, report

    root, _ = curved
    curves, records = landscape.curve_results(root), landscape.curve_records(root)
    tasks = report.curve_tasks(curves, records)
    assert len(tasks) == 5 and set(tasks["pair"]) == set(analysis.PAIR_LABELS.values()) and set(tasks["status"]) == {"done"}
    by_pair = curves[curves["method"] == "curve"].groupby("pair")["barrier"].mean()
    assert tasks.groupby("pair")["curve"].mean().sort_index().tolist() == pytest.approx(
        by_pair.rename(index=analysis.PAIR_LABELS).sort_index().tolist())
    assert (tasks["minutes"] * 60).sum() == pytest.approx(records["wall_time_s"].sum())
    steps = sorted(int(t["curve_steps"]) for t in records["timing"])
    assert sorted(tasks["curve steps"].astype(int)) == steps and all(0 < n <= 10 for n in steps)
    # another width's copy of every task: the same keys but the width, so the rows stay apart
    wide_c, wide_r = curves.assign(width=8, barrier=curves["barrier"] + 1), records.assign(width=8)
    both = report.curve_tasks(pd.concat([curves, wide_c]), pd.concat([records, wide_r]))
    assert len(both) == 10 and both["curve"].sum() == pytest.approx(2 * tasks["curve"].sum() + 5)
    # a task whose endpoint diverged: recorded, nothing measured, still a row
    lost = records.iloc[:1].assign(status="endpoint_diverged", seed=7, other=7, timing=None, wall_time_s=float("nan"))
    with_lost = report.curve_tasks(curves, pd.concat([records, lost], ignore_index=True))
    row = with_lost[with_lost["status"] == "endpoint_diverged"].iloc[0]
    assert len(with_lost) == 6 and row["seeds"] == "7" and pd.isna(row["curve"]) and row["stopped by the rule"] == ""
    assert "1 endpoint_diverged" in report.curve_provenance(pd.concat([records, lost]), 6)["trained curves"]
    # the rule's section on a configuration with no curve at all
    page = SimpleNamespace(config=SimpleNamespace(landscape_switch_times=[2]), curves_pending=None,
                           configurations=lambda: [{"arch": "vanilla", "width": 16, "n_train": 500}])
    monkeypatch.setattr("IPython.display.display", lambda obj: None)
    report.curve_rule(page, curves, landscape.curve_traces(root))
    assert "Claim 6 by trained curves (vanilla w16, n_train 500): not measured" in capsys.readouterr().out
    cfg = {"arch": "vanilla", "width": 4, "n_train": 500}
    for fig in (figures.curve_paths(landscape.curve_scans(root), cfg), figures.curve_barriers(curves, cfg),
                figures.curve_convergence(landscape.curve_traces(root), cfg)):
        assert plots.phone_text_px(fig) >= plots.MIN_TEXT_PX
    empty = figures.curve_barriers(curves.iloc[:0], cfg)
    assert any("no trained curves" in t.get_text() for t in empty.axes[0].texts)
    assert report.curve_tasks(curves.iloc[:0], records.iloc[:0]).empty


def test_page_6b_defaults_are_the_checked_ones():
    """The reference barriers of checks.curves apply exactly at the notebook's default overrides."""
    from needle_core import checks
    from needle_core.book import parameters_of

    source = Path(__file__).resolve().parent.parent / "notebooks" / "06_curves.ipynb"
    default = parameters_of(source)["overrides"]["default"]
    assert ast.literal_eval(default) == checks.CURVES_DEFAULTS


def test_a_fresh_clone_recreates_the_endpoints_of_a_missing_curve_only(curved, tmp_path):
    root, _ = curved
    clone = tmp_path / "clone"
    shutil.copytree(root, clone, ignore=shutil.ignore_patterns("*.pt", "*.pt.sha256", ".lock", "*.lock"))
    target = clone / "landscape" / "curves" / "vanilla-w4-n500" / "fcn-fcn-s0-s1"
    for suffix in (".json", ".parquet", "-trace.parquet"):
        Path(f"{target}{suffix}").unlink()
    Sweep(CURVES, clone).run(progress=False)
    record = json.loads(Path(f"{target}.json").read_text())
    assert record["recreated"] == {"vanilla-w4-n500-s0/fcn": 0.0, "vanilla-w4-n500-s1/fcn": 0.0}
    assert sorted(p.parent.name for p in (clone / "runs").rglob("final.pt")) == ["fcn", "fcn"]  # nothing else
    again = landscape.curve_results(clone)
    pd.testing.assert_frame_equal(again, landscape.curve_results(root))  # deterministic: the same numbers


def _barriers(tested, control, times=(2, 8)):
    rows = []
    for t in times:
        rows += [dict(pair="efcn-fcn", seed=s, other=s, switch_time=t, method="curve", barrier=b)
                 for s, b in enumerate(tested)]
    rows += [dict(pair="fcn-fcn", seed=s, other=(s + 1) % len(control), switch_time=None, method="curve", barrier=b)
             for s, b in enumerate(control)]
    return pd.DataFrame(rows)


def test_curve_claim_decides_by_the_paired_difference_with_the_control():
    far = landscape.curve_claim(_barriers([0.9, 1.0, 1.1, 0.95], [0.1, 0.12, 0.09, 0.11]))
    assert far["verdict"] == "reproduces" and (far["per_tw"]["lo"] > 0.05).all()
    near = landscape.curve_claim(_barriers([0.1, 0.11, 0.09, 0.1], [0.1, 0.12, 0.09, 0.11]))
    assert near["verdict"] == "contradicted"
    noisy = landscape.curve_claim(_barriers([0.9, 0.0, 0.5, 0.05], [0.1, 0.12, 0.09, 0.11]))
    assert noisy["verdict"] == "inconclusive"
    assert landscape.curve_claim(_barriers([0.9, 1.0], [])) ["verdict"] == "not measured"
    # seed 0's control is the mean of the pairs (3, 0) and (0, 1)
    diffs = landscape.curve_differences(_barriers([0.9, 1.0, 1.1, 0.95], [0.1, 0.12, 0.09, 0.11], times=(2,)))
    assert diffs.loc[diffs.seed == 0, "control"].item() == pytest.approx((0.1 + 0.11) / 2)
    described = far["described"]
    assert set(described["pair"]) == {"efcn-fcn", "fcn-fcn"}


def test_the_scorecard_decides_claim_6_by_trained_curves_where_the_store_has_them():
    # With curves, claim 6 is the curves' pre-registered rule (tested against the FCN <-> FCN
    # control); without them, the string rule of the 20-epoch edition; a campaign still
    # training leaves it pending.
    from needle_core import analysis

    cfg = dict(arch="vanilla", width=4, n_train=100)
    far = _barriers([0.9, 1.0, 1.1, 0.95], [0.1, 0.12, 0.09, 0.11]).assign(**cfg)
    six = analysis.curve_barrier_claim(far, cfg)
    assert six["verdict"] == landscape.curve_claim(far)["verdict"] == "reproduces"
    assert six["n"] == 4 and six["estimate"].startswith("t_w=2: ") and "FCN ↔ FCN 0.105" in six["estimate"]
    assert "99.75%" not in six["interval"] and "97.5%: t_w=2" in six["interval"]  # Bonferroni over 2 t_w
    assert "Garipov" in six["test"] and "FCN ↔ FCN" in six["test"]
    traces = pd.DataFrame(dict(task=["a", "a", "b"], method="curve", stopped=[False, True, False]))
    assert six["sensitivity"] == "not applicable: barriers are measured between finished runs" and \
        analysis.curve_barrier_claim(far, cfg, traces)["sensitivity"].endswith(
            "1 of 2 curves stopped by the step budget, not by the rule")
    assert analysis.curve_barrier_claim(far.iloc[:0], cfg) is None
    assert analysis.curve_barrier_claim(far, dict(cfg, width=8)) is None  # another configuration's curves
    near = _barriers([0.1, 0.11, 0.09, 0.1], [0.1, 0.12, 0.09, 0.11]).assign(**cfg)
    assert analysis.curve_barrier_claim(near, cfg)["verdict"] == "contradicted"
    assert analysis.pending(analysis.curve_barrier_claim(near, cfg), "campaign in progress")["verdict"] == "pending"


def test_curve_claim_needs_every_registered_switch_time_and_counts_only_finite_barriers():
    far = _barriers([0.9, 1.0, 1.1, 0.95], [0.1, 0.12, 0.09, 0.11])
    assert landscape.curve_claim(far, switch_times=[2, 8])["verdict"] == "reproduces"
    missing = landscape.curve_claim(far, switch_times=[2, 8, 16])  # t_w 16 registered, not measured
    assert missing["verdict"] == "not measured" and list(missing["per_tw"].n) == [4, 4, 0]
    nan = _barriers([0.9, 1.0, 1.1, 0.95], [0.1, float("nan"), float("nan"), float("nan")], times=(2,))
    per = landscape.curve_claim(nan)["per_tw"]
    assert per.n.item() == 2  # seeds 0 and 1 share the one finite control; seeds 2, 3 have none


def test_paths_are_read_on_class_balanced_images_not_a_split_s_first():
    # An ImageFolder split is stored class by class: its first 2,000 images of CIFAR-10 are two
    # classes, which is what the 20-epoch edition's landscape was read on.
    y = torch.arange(10).repeat_interleave(100)  # stored by class, as the JPEG copy
    x = torch.arange(1000).float()[:, None]
    xs, ys = landscape.eval_images(x, y, 200, 10)
    assert torch.bincount(ys, minlength=10).tolist() == [20] * 10 and (y[xs[:, 0].long()] == ys).all()
    assert landscape.eval_images(x, y, 200, 10)[0].equal(xs)  # one fixed draw
    assert landscape.eval_images(x, y, None, 10)[1] is y and landscape.eval_images(x, y, 5000, 10)[1] is y
    # the barriers say how they were read; the scorecard flags a point read on the first images
    from needle_core import analysis

    frame = pd.DataFrame([dict(arch="vanilla", width=4, n_train=500, seed=s, switch_time=2, path="efcn-fcn",
                               method="string", barrier=0.3 + 0.01 * s, eval_images=e) for s in (0, 1, 2)
                          for e in ["first"]])
    cfg = dict(arch="vanilla", width=4, n_train=500)
    assert "two classes" in analysis.landscape_claim(frame, cfg)["note"]
    assert "two classes" not in analysis.landscape_claim(frame.assign(eval_images="class-balanced"), cfg)["note"]


def test_curves_copied_into_another_store_are_listed_by_upgrade(curved, tmp_path):
    # The campaign measures curves beside the weights and copies their files into the published
    # store: upgrade must list them (they are a kind a reader uses), and verify then pass.
    from needle_core.store import ResultStore, upgrade

    root, _ = curved
    clone = tmp_path / "published"
    shutil.copytree(root, clone, ignore=shutil.ignore_patterns("curves", "*.lock", ".lock"))
    upgrade(clone, rebuild=True)  # a manifest that never listed a curve
    shutil.copytree(root / "landscape" / "curves", clone / "landscape" / "curves",
                    ignore=shutil.ignore_patterns("*.lock"))
    assert any("curves" in p for p in ResultStore(clone).verify()["problems"])
    out = upgrade(clone)
    assert not out["unexpected"] and len(out["vouched"]) == 3 * 5  # record, rows, trace of 5 tasks
    assert ResultStore(clone).verify()["problems"] == []


def test_accuracy_lost_describes_each_pair_with_an_interval_over_seeds():
    """landscape.accuracy_lost: the worse end minus the lowest along the trained curve (other
    paths ignored), per pair and t_w in PAIRS order; one pair has no interval; a curve that
    never dips below its worse end loses 0."""
    row = lambda pair, t, low, method="curve": dict(pair=pair, switch_time=t, method=method,  # noqa: E731
                                                    test_acc_a=0.6, test_acc_b=0.5, test_acc_min=low)
    curves = pd.DataFrame([row("cnn-cnn", np.nan, 0.30), row("cnn-cnn", np.nan, 0.40), row("cnn-cnn", np.nan, 0.35),
                           row("efcn-fcn", 9.0, 0.5), row("efcn-fcn", 2.0, 0.45), row("efcn-fcn", 2.0, 0.1, "linear")])
    lost = landscape.accuracy_lost(curves)
    assert [(p, None if np.isnan(t) else t) for p, t in zip(lost["pair"], lost["switch_time"])] == \
        [("efcn-fcn", 2.0), ("efcn-fcn", 9.0), ("cnn-cnn", None)]
    cnn = lost.iloc[2]
    half = stats.t.ppf(0.975, 2) * 0.05 / np.sqrt(3)  # lost 0.20, 0.10, 0.15: sd 0.05
    assert cnn["n"] == 3 and cnn["mean"] == pytest.approx(0.15) and cnn["max"] == pytest.approx(0.2)
    assert (cnn["lo"], cnn["hi"]) == (pytest.approx(0.15 - half), pytest.approx(0.15 + half))
    assert lost.iloc[0]["mean"] == pytest.approx(0.05) and np.isnan(lost.iloc[0]["lo"])  # one pair, no interval
    assert lost.iloc[1]["mean"] == 0.0
    assert landscape.accuracy_lost(curves.iloc[:0]).empty
