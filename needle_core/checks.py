"""The numbers each page checks on every machine (its ``# NBVAL_CHECK_OUTPUT`` cell).

``make test`` re-runs the notebooks (nbval) and compares what these functions print with the
committed output.  Exact where every machine agrees (counts, statuses, the read-out window);
trained numbers within the tolerances of :mod:`needle_core.notebook`, against the smoke
defaults' reference values kept here, one function per page.  At other parameters a page
prints its numbers instead.
"""
from __future__ import annotations

import pandas as pd

from . import analysis, plots
from .notebook import (ACCURACY_TOLERANCE, BARRIER_TOLERANCE, DEVIATION_TOLERANCE, at_defaults, check_close,
                       check_order)


def _status(runs) -> dict:
    return dict(sorted((str(s), int(n)) for s, n in runs.status.value_counts().items()))


def training_curves(page, table) -> None:
    """Page 2: runs, statuses, epochs, the read-outs of every line (reference: the smoke
    defaults; CNN > eFCN t_w=4 is not checked: a margin of 0.017, inside the band)."""
    config, frame, runs = page.config, page.frame, page.runs
    print(f"profile {config.name}: {len(runs)} runs, status {_status(runs)}")
    print(f"evaluation epochs: {sorted(frame.loc[frame.metric == 'test_acc', 'epoch'].unique().tolist())}")
    print(f"read-out epochs: {config.readout_epochs}")
    read = {f"{r.arch} w{r.width} {r.role}" + ("" if pd.isna(r.switch_time) else f" t_w={int(r.switch_time)}"):
            r.mean for r in table.itertuples()}
    print("seeds per line:", sorted(set(table.seeds.astype(int))))
    if at_defaults(page.profile, page.overrides):
        check_close(read, {"vanilla w4 CNN": 0.285, "vanilla w4 eFCN t_w=0": 0.116,
                           "vanilla w4 eFCN t_w=2": 0.165, "vanilla w4 eFCN t_w=4": 0.269,
                           "vanilla w4 eLCN t_w=0": 0.123, "vanilla w4 eLCN t_w=2": 0.167,
                           "vanilla w4 eLCN t_w=4": 0.266, "vanilla w4 FCN": 0.107}, ACCURACY_TOLERANCE)
        check_order(read, ("vanilla w4 eFCN t_w=4", "vanilla w4 eFCN t_w=2", "vanilla w4 eFCN t_w=0"),
                    ("vanilla w4 eLCN t_w=4", "vanilla w4 eLCN t_w=0"), ("vanilla w4 CNN", "vanilla w4 FCN"))
    else:
        print(f"test accuracy, {page.label}:")
        for name, value in read.items():
            print(f"{name}: {value:.3f}")


def switch_time(page, pairs, control) -> None:
    """Page 3: the comparisons, their seed counts, the paired differences of the read-outs (and
    their signs where they clear the band; eFCN − CNN at t_w = 4 is inside it)."""
    config = page.config
    print(f"profile {config.name}, control: {control}, read-out epochs: {config.readout_epochs}")
    differences = {f"{r.arch} w{r.width} {r.comparison} t_w={int(r.switch_time)}": r.mean for r in pairs.itertuples()}
    print("seeds per difference:", sorted(set(pairs.n.astype(int))), "diverged:", int(pairs.n_diverged.sum()))
    if at_defaults(page.profile, page.overrides):
        check_close(differences, {
            "vanilla w4 eLCN − CNN t_w=0": -0.162, "vanilla w4 eLCN − CNN t_w=2": -0.119,
            "vanilla w4 eLCN − CNN t_w=4": -0.020, "vanilla w4 eLCN − FCN t_w=0": +0.016,
            "vanilla w4 eLCN − FCN t_w=2": +0.060, "vanilla w4 eLCN − FCN t_w=4": +0.159,
            "vanilla w4 eFCN − CNN t_w=0": -0.169, "vanilla w4 eFCN − CNN t_w=2": -0.120,
            "vanilla w4 eFCN − CNN t_w=4": -0.017, "vanilla w4 eFCN − FCN t_w=0": +0.010,
            "vanilla w4 eFCN − FCN t_w=2": +0.058, "vanilla w4 eFCN − FCN t_w=4": +0.162}, ACCURACY_TOLERANCE)
        print("eFCN − CNN < 0 at t_w = 0, 2:", all(differences[f"vanilla w4 eFCN − CNN t_w={t}"] < 0 for t in (0, 2)))
        print("eFCN − FCN > 0.03 at t_w = 2, 4:",
              all(differences[f"vanilla w4 eFCN − FCN t_w={t}"] > 0.03 for t in (2, 4)))
    else:
        print(f"paired differences of the {page.label}:")
        for name, value in differences.items():
            print(f"{name}: {value:+.3f}")


def deviation(page, table, layers) -> None:
    """Page 4: δ = 0 at the switch and δ² = δ_loc² + δ_ws² (exact), the read-out δ's within
    DEVIATION_TOLERANCE and their ordering."""
    config, frame = page.config, page.frame
    metrics = {"delta": "δ", "delta_loc": "δ_loc", "delta_ws": "δ_ws"}
    wide3 = table.set_index(["arch", "width", "role", "switch_time", "metric"])["mean"].unstack("metric")
    rows3 = frame[frame.metric.isin(metrics)].pivot_table(index=["run", "epoch", "layer"], columns="metric",
                                                         values="value")
    pythagoras = (rows3.delta ** 2 - rows3.delta_loc ** 2 - rows3.delta_ws ** 2).abs().max()
    at_switch = frame[frame.metric.isin(metrics) & (frame.epoch == frame.switch_time)].value.abs().max()
    print(f"profile {config.name}: {frame[frame.metric == 'delta'].run.nunique()} runs with δ, layers {layers}")
    print(f"read-out epochs: {config.readout_epochs}")
    print(f"δ, δ_loc, δ_ws at the switch < 1e-6: {at_switch < 1e-6}; max |δ² − δ_loc² − δ_ws²| < 1e-6: "
          f"{pythagoras < 1e-6}")
    read = {}
    for (arch, width, role, t), r in wide3.iterrows():
        when = "" if pd.isna(t) else f" t_w={int(t)}"
        for metric in metrics:
            read[f"{arch} w{width} {plots.LABELS[role]}{when} {metrics[metric]}"] = r[metric]
    print("eLCN δ_loc = 0 (locality kept):", all(v < 1e-6 for k, v in read.items() if "eLCN" in k and "δ_loc" in k))
    if at_defaults(page.profile, page.overrides):
        check_close({k: v for k, v in read.items() if k.endswith(" δ")}, {
            "vanilla w4 eFCN t_w=0 δ": 0.068, "vanilla w4 eFCN t_w=2 δ": 0.044, "vanilla w4 eFCN t_w=4 δ": 0.024,
            "vanilla w4 eLCN t_w=0 δ": 0.025, "vanilla w4 eLCN t_w=2 δ": 0.020, "vanilla w4 eLCN t_w=4 δ": 0.012,
            "vanilla w4 FCN δ": 0.999}, DEVIATION_TOLERANCE)
        check_order(read, ("vanilla w4 FCN δ", "vanilla w4 eFCN t_w=0 δ", "vanilla w4 eFCN t_w=2 δ",
                           "vanilla w4 eFCN t_w=4 δ"))
    else:
        print(f"the network's deviations, {page.label}:")
        for name, value in read.items():
            print(f"{name}: {value:.3f}")


def landscape(page, records, scans, table, left, switch_times, seeds) -> None:
    """Page 6: what was measured (exact) and the mean barriers within BARRIER_TOLERANCE."""
    print(f"profile {page.config.name}: seeds {seeds}, t_w {switch_times}")
    print("points:", {str(k): int(v) for k, v in records.status.value_counts().sort_index().items()},
          "missing:", len(left))
    print("rows per measured point:",
          sorted({int(n) for n in scans.groupby(analysis.GROUP_KEYS + ["switch_time"]).size()}))
    print("seeds per barrier:", sorted({int(n) for n in table.n}))
    means = {f"{analysis.label(r._asdict())} t_w={r.t_w} {r.path} {r.method}": r.mean for r in table.itertuples()}
    if at_defaults(page.profile, page.overrides) and (switch_times, seeds) == ([0, 2], [0, 1]):
        check_close(means, {
            "vanilla w4, n_train 500 t_w=0 CNN@t_w → eFCN linear": 0.023,
            "vanilla w4, n_train 500 t_w=0 CNN@t_w → eFCN string": 0.000,
            "vanilla w4, n_train 500 t_w=0 eFCN → FCN linear": 0.413,
            "vanilla w4, n_train 500 t_w=0 eFCN → FCN string": 0.341,
            "vanilla w4, n_train 500 t_w=2 CNN@t_w → eFCN linear": 0.010,
            "vanilla w4, n_train 500 t_w=2 CNN@t_w → eFCN string": 0.000,
            "vanilla w4, n_train 500 t_w=2 eFCN → FCN linear": 0.358,
            "vanilla w4, n_train 500 t_w=2 eFCN → FCN string": 0.298}, BARRIER_TOLERANCE)
    else:
        for name, value in means.items():
            print(f"{name}: {value:.3f}")


def embedding(arch, ch, sizes, exactness, copies, delta, same_weights) -> None:
    """Page 1: sizes (checked against the authors' code at the paper's VanillaCNN), exactness."""
    total = sizes.loc["total"]
    n_cnn, n_efcn, n_elcn = total.loc[["CNN", "eFCN", "eLCN"], "weights"]
    if (arch, ch) == ("vanilla", 64):
        assert (n_cnn, n_efcn) == (143_178, 110_606_602), (n_cnn, n_efcn)
    rel32, rel64 = (exactness[dtype]["max rel error"].max() for dtype in ("float32", "float64"))
    print(f"{arch} ch={ch}, parameters:")
    print(f"  CNN {n_cnn:,}")
    print(f"  eFCN {n_efcn:,} ({n_efcn / n_cnn:.1f}x the CNN), "
          f"{total.loc['eFCN', 'non-zero']:,} non-zero, "
          f"{total.loc['eFCN', 'dead']:.1%} dead")
    print(f"  eLCN {n_elcn:,} ({n_elcn / n_cnn:.1f}x the CNN)")
    print(f"copies per kernel weight P: {sorted(copies.values(), reverse=True)}")
    print(f"same function: float32 rel. error < 1e-5: {rel32 < 1e-5}, "
          f"float64 rel. error < 1e-12: {rel64 < 1e-12}")
    print(f"deviation from the CNN subspace at embedding: {delta:.1f}")
    print(f"to_cnn(eFCN) has the CNN's weights: {same_weights}")


def elcn_vs_efcn(page, summary, dev_summary, control, comparisons) -> None:
    """Page 5: accuracies, paired differences and the network's δ's of the read-outs."""
    runs = page.runs
    print(f"{page.profile}: {len(runs)} runs, status "
          f"{ {s: int(n) for s, n in runs.status.value_counts().items()} }, control = {control}")
    print(f"read-out epochs: {page.config.readout_epochs}")
    net_dev = dev_summary[dev_summary.layer == "network"]
    several = len(page.configurations()) > 1
    accuracies, deviations = {}, {}
    for key, g in summary.groupby(analysis.CONFIG_KEYS + ["switch_time"], dropna=False):
        *group, t = key
        cfg = dict(zip(analysis.CONFIG_KEYS, group))
        m = g.set_index("comparison")
        d = net_dev[(net_dev.switch_time == t) & analysis.select(net_dev, cfg)]
        where = (analysis.label(cfg) + ", " if several else "") + f"t_w={t:g}"
        accuracies |= {f"{where} eLCN": m.role_mean["eLCN − control"], f"{where} eFCN": m.role_mean["eFCN − control"],
                       f"{where} control": m.against_mean["eFCN − control"]}
        accuracies |= {f"{where} {name}": m["mean"][name] for name in comparisons}
        v = d.set_index(["role", "metric"])["mean"]
        deviations |= {f"{where} eFCN δ_loc": v["efcn", "delta_loc"], f"{where} eFCN δ_ws": v["efcn", "delta_ws"],
                       f"{where} eLCN δ_ws": v["elcn", "delta_ws"]}
    if at_defaults(page.profile, page.overrides):
        check_close(accuracies, {
            "t_w=0 eLCN": 0.123, "t_w=0 eFCN": 0.116, "t_w=0 control": 0.286, "t_w=0 eLCN − control": -0.162,
            "t_w=0 eFCN − control": -0.169, "t_w=0 eFCN − eLCN": -0.007,
            "t_w=2 eLCN": 0.166, "t_w=2 eFCN": 0.165, "t_w=2 control": 0.286, "t_w=2 eLCN − control": -0.119,
            "t_w=2 eFCN − control": -0.120, "t_w=2 eFCN − eLCN": -0.001,
            "t_w=4 eLCN": 0.266, "t_w=4 eFCN": 0.268, "t_w=4 control": 0.286, "t_w=4 eLCN − control": -0.020,
            "t_w=4 eFCN − control": -0.017, "t_w=4 eFCN − eLCN": +0.003}, ACCURACY_TOLERANCE)
        check_close(deviations, {
            "t_w=0 eFCN δ_loc": 0.061, "t_w=0 eFCN δ_ws": 0.029, "t_w=0 eLCN δ_ws": 0.025,
            "t_w=2 eFCN δ_loc": 0.039, "t_w=2 eFCN δ_ws": 0.020, "t_w=2 eLCN δ_ws": 0.020,
            "t_w=4 eFCN δ_loc": 0.022, "t_w=4 eFCN δ_ws": 0.011, "t_w=4 eLCN δ_ws": 0.012},
            DEVIATION_TOLERANCE, digits=4)
    else:
        for name, value in (accuracies | deviations).items():
            print(f"{name}: {value:.4f}")


def n_train(page, table, best, pairs, n_trains, switch_times, fixed_switch_time, control, ntrain_dir) -> None:
    """Page 7: the sweep's shape, the best t_w per size, read-outs and paired differences."""
    def n_of(n):
        return "all" if pd.isna(n) else int(n)

    print(f"{page.profile}: n_train {n_trains}, t_w {switch_times}, fixed t_w {fixed_switch_time}, "
          f"{len(page.runs)} runs, control = {control}")
    print(f"read-out epochs: {page.config.readout_epochs}")
    values = {}
    for (arch, width, n), g in table.groupby(analysis.CONFIG_KEYS, dropna=False, sort=True):
        values |= {f"{arch} w{width} n_train={n_of(n)} {k}": v for k, v in zip(g.network, g["mean"])}
        b = best[analysis.select(best, dict(arch=arch, width=width, n_train=n))].iloc[0]
        print(f"{arch} w{width} n_train={n_of(n)}: best t_w {b.switch_time:g}")
    for name, p in pairs.items():
        values |= {f"{name} {r.arch} w{r.width} n={n_of(r.n_train)}": r.mean for r in p.itertuples()}
    if at_defaults(page.profile, page.overrides) and ntrain_dir is None and n_trains == [250, 500]:
        check_close(values, {
            "vanilla w4 n_train=250 CNN": 0.171, "vanilla w4 n_train=250 eFCN t_w=0": 0.104,
            "vanilla w4 n_train=250 eFCN t_w=2": 0.129, "vanilla w4 n_train=250 FCN": 0.102,
            "vanilla w4 n_train=500 CNN": 0.285, "vanilla w4 n_train=500 eFCN t_w=0": 0.116,
            "vanilla w4 n_train=500 eFCN t_w=2": 0.165, "vanilla w4 n_train=500 FCN": 0.107,
            "eFCN − FCN vanilla w4 n=250": +0.027, "eFCN − FCN vanilla w4 n=500": +0.058,
            "eFCN − CNN vanilla w4 n=250": -0.043, "eFCN − CNN vanilla w4 n=500": -0.120}, ACCURACY_TOLERANCE)
        check_order(values, ("vanilla w4 n_train=500 CNN", "vanilla w4 n_train=250 CNN"),
                    ("vanilla w4 n_train=500 CNN", "vanilla w4 n_train=500 eFCN t_w=2", "vanilla w4 n_train=500 FCN"))
    else:
        print(f"test accuracy, {page.label}:")
        for name, value in values.items():
            print(f"{name}: {value:.3f}")


#: Page 6b's default overrides (the smoke profile plans no curves): its reference values hold there.
CURVES_DEFAULTS = {"landscape_switch_times": [2], "landscape_n_train": 100, "landscape_n_test": 100,
                   "landscape_check_steps": 5, "landscape_max_steps": 20}


def curves(page, curves, traces, records) -> None:
    """Page 6b: the curve tasks measured (exact: pairs, paths, checks, statuses) and the mean
    barrier of each pair and path within BARRIER_TOLERANCE of the smoke defaults' reference."""
    from .landscape import CURVE_POINTS, curve_tasks

    planned = curve_tasks(page.config)
    print(f"profile {page.config.name}: {len(records)} of {len(planned)} curve tasks measured, status "
          f"{dict(sorted((str(s), int(n)) for s, n in records['status'].value_counts().items())) if len(records) else {}}")
    if curves.empty:
        return
    print("tasks per pair:", {p: int(n) for p, n in records.groupby("pair").size().sort_index().items()})
    print("paths per task:", sorted({int(n) for n in curves.groupby(["pair", "seed", "other", "switch_time"],
                                                                     dropna=False).size()}))
    curve = traces[traces["method"] == "curve"]
    print("points per check of a curve:", sorted({int(n) for n in curve.groupby(["task", "check"]).size()}),
          f"(the rule's grid: {CURVE_POINTS})")
    finite = curves["barrier"].astype(float)
    print("every barrier finite and ≥ 0:", bool(finite.notna().all() and (finite >= 0).all()))
    means = {f"{analysis.PAIR_LABELS[p]} {m}": float(g["barrier"].mean())
             for (p, m), g in curves.groupby(["pair", "method"], sort=True)}
    if page.profile == "smoke" and page.overrides == CURVES_DEFAULTS:
        check_close(means, CURVES_REFERENCE, BARRIER_TOLERANCE)
    else:
        for name, value in means.items():
            print(f"{name}: {value:.3f}")


#: Mean barriers of page 6b at its defaults: the same to 3 decimals with the default (avx512) kernels
#: and one thread as with avx2 and two (make test-other-cpu), 2026-12-06.
CURVES_REFERENCE = {
    "CNN ↔ CNN curve": 0.396, "CNN ↔ CNN linear": 0.468, "CNN ↔ CNN linear-aligned": 0.375, "CNN ↔ CNN string": 0.324,
    "eFCN ↔ eFCN curve": 0.218, "eFCN ↔ eFCN linear": 0.259, "eFCN ↔ eFCN linear-aligned": 0.247,
    "eFCN ↔ eFCN string": 0.149,
    "eFCN → FCN curve": 0.310, "eFCN → FCN linear": 0.358, "eFCN → FCN linear-aligned": 0.348,
    "eFCN → FCN string": 0.242,
    "FCN ↔ FCN curve": 0.010, "FCN ↔ FCN linear": 0.083, "FCN ↔ FCN linear-aligned": 0.085, "FCN ↔ FCN string": 0.000}
