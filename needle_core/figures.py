"""The book's figures, one function per figure, drawn for a 390-px phone and a desktop alike.

Each takes what the page computed (from :mod:`needle_core.analysis`) and returns a matplotlib
figure, :data:`~needle_core.plots.WIDTH` wide with one or two panels per row, so that its
smallest text stays at least :data:`~needle_core.plots.MIN_TEXT_PX` CSS px on a phone
(:func:`needle_core.plots.show` refuses one that would not).  No figure draws where or when it
was made: that is the page's provenance footer (:func:`needle_core.report.footer`).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from . import analysis, plots

TICKS = (0, 1, 2, 5, 10, 20, 50)


def epoch_ticks(epochs: int) -> list:
    return [t for t in TICKS if t < 0.75 * epochs] + [epochs]


def _legend(fig, handles, title=None, ncol=2, labels=None):
    kw = dict(loc="outside upper center", ncol=ncol, title=title)
    return fig.legend(handles=handles, **kw) if labels is None else fig.legend(handles, labels, **kw)


# --- Page 2 --------------------------------------------------------------------------------------

def shown_switch_times(config, at_most: int = 4) -> list:
    grid = sorted(config.switch_times)
    picks = np.unique(np.linspace(0, len(grid) - 1, min(at_most, len(grid))).round().astype(int))
    return [grid[i] for i in picks]


def training_curves(page, cfg, shown=None):
    """Test and train accuracy against epoch, one row per switch time (test left, train right)."""
    frame, config = page.frame, page.config
    acc = {split: analysis.over_seeds(frame, f"{split}_acc") for split in ("test", "train")}
    shown = shown or shown_switch_times(config)
    present = set(frame.role)
    branches = [r for r in ("cnn_control", "elcn", "efcn") if r in present]
    baselines = [r for r in ("fcn", "cnn") if r in present]
    ticks = epoch_ticks(config.epochs)
    fig, axes = plt.subplots(len(shown), 2, sharex=True, sharey="col", squeeze=False,
                             figsize=(plots.WIDTH, 1.75 * len(shown) + 1.3))
    for col, split in enumerate(("test", "train")):
        s = acc[split][analysis.select(acc[split], cfg)]
        for row, t in enumerate(shown):
            ax = axes[row, col]
            for role in baselines:
                q = s[s.role == role].sort_values("epoch")
                plots.band(ax, q.epoch, q["mean"], q.lo, q.hi, role, marker=False)
            for role in branches:
                q = s[(s.role == role) & (s.switch_time == t)].sort_values("epoch")
                plots.band(ax, q.epoch, q["mean"], q.lo, q.hi, role)
            ax.axvline(t, color="0.25", linewidth=0.9, linestyle=(0, (1, 2)))
            ax.axhline(page.chance, color="0.6", linewidth=0.8)
            plots.symlog_epochs(ax, ticks, min_gap=0.16)
            ax.set_xlim(0, config.epochs)
            ax.set_title(f"{split}, $t_w$ = {t}")
            if row == len(shown) - 1:
                ax.set_xlabel("epoch")
        low, high = axes[0, col].get_ylim()
        axes[0, col].set_ylim(max(low, 0), min(high, 1))
    for row in axes:
        row[0].set_ylabel("accuracy")
    handles = [Line2D([], [], **plots.style(r)) for r in baselines + branches]
    handles += [Line2D([], [], color="0.25", linewidth=0.9, linestyle=(0, (1, 2)), label="switch"),
                Line2D([], [], color="0.6", linewidth=0.8, label="chance")]
    _legend(fig, handles, analysis.label(cfg), ncol=3)
    return fig


# --- Page 3 --------------------------------------------------------------------------------------

def switch_time(page, cfg, acc, diffs, embedded, control):
    """Read-out accuracy against t_w (top) and the paired difference with the control (bottom)."""
    present = set(page.frame.role)
    a = acc[analysis.select(acc, cfg)]
    grid = sorted(a.switch_time.dropna().unique())
    span = [grid[0], grid[-1]]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(plots.WIDTH, 6.2), height_ratios=[1.3, 1])
    for role in ("fcn", "cnn"):
        q = a[a.role == role]
        if len(q):
            m, lo, hi = (float(q[c].iloc[0]) for c in ("mean", "lo", "hi"))
            plots.band(top, span, [m, m], [lo, lo], [hi, hi], role, marker=False,
                       label=f"{plots.LABELS[role]} ({page.config.span(role)[1]} epochs)")
    for role in [r for r in ("cnn_control",) if r in present] + embedded:
        q = a[a.role == role].sort_values("switch_time")
        plots.band(top, q.switch_time, q["mean"], q.lo, q.hi, role)
    top.axhline(page.chance, color="0.6", linewidth=0.8, label="chance")
    low, high = top.get_ylim()
    top.set_ylim(max(low, 0), min(high, 1))
    top.set(ylabel="test accuracy\n(read-out)")
    for role in embedded:
        d = diffs[role][analysis.select(diffs[role], cfg)].sort_values("switch_time")
        plots.band(bottom, d.switch_time, d["mean"], d.lo, d.hi, role,
                   label=f"{plots.LABELS[role]} − {plots.LABELS[control]}")
        for t, values in zip(d.switch_time, d.diffs):
            bottom.scatter(np.full(len(values), t), values, s=14, color=plots.COLORS[role],
                           alpha=0.7, linewidth=0, zorder=3)
    bottom.axhline(0, color="0.2", linewidth=0.9)
    bottom.set(xlabel="switch time $t_w$ (epochs)", ylabel="paired difference\n(read-out)")
    handles, labels = top.get_legend_handles_labels()
    more, more_labels = bottom.get_legend_handles_labels()
    more.append(Line2D([], [], color="0.4", marker="o", linestyle="", markersize=3.5))
    _legend(fig, handles + more, analysis.label(cfg), ncol=2, labels=labels + more_labels + ["one seed"])
    plots.symlog_epochs(bottom, grid, min_gap=0.09)
    bottom.set_xlim(grid[0] - 0.05 * (1 + grid[0]), grid[-1] * 1.08 + 0.1)
    return fig


# --- Page 4 --------------------------------------------------------------------------------------

DELTAS = {"delta": "δ", "delta_loc": "δ_loc", "delta_ws": "δ_ws"}


def deviations(frame) -> pd.DataFrame:
    """δ, δ_loc, δ_ws per role, switch time, layer and epoch: mean and interval over seeds."""
    by = ("role", "switch_time", "layer", "epoch")
    return pd.concat([analysis.over_seeds(frame, m, by=by).assign(metric=m) for m in DELTAS], ignore_index=True)


def deviation(page, dev, cfg, role, metrics, layers):
    """δ's against training time: one row per layer (and the network), one column per δ."""
    config = page.config
    grid = sorted(config.switch_times)
    colours = dict(zip(grid, plt.cm.viridis(np.linspace(0, 0.9, len(grid)))))
    d = dev[analysis.select(dev, cfg) & (dev.role == role)]
    fig, axes = plt.subplots(len(layers), len(metrics), sharex=True, sharey="row", squeeze=False,
                             figsize=(plots.WIDTH, 1.5 * len(layers) + 1.4))
    for i, layer in enumerate(layers):
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            for t in grid:
                q = d[(d.layer == layer) & (d.metric == metric) & (d.switch_time == t)].sort_values("epoch")
                ax.plot(q.epoch, q["mean"], color=colours[t], marker="o", markersize=2.5)
                ax.fill_between(q.epoch, q.lo.clip(lower=0), q.hi, color=colours[t], alpha=0.15, linewidth=0)
            plots.symlog_epochs(ax, [0, 5, config.epochs] if len(metrics) > 2 else epoch_ticks(config.epochs),
                                min_gap=0.2)
            ax.set_xlim(0, config.epochs)
            ax.set_ylim(bottom=0)
            if i == 0:
                ax.set_title(DELTAS[metric])
            if j == 0:
                ax.set_ylabel(layer)
            if i == len(layers) - 1:
                ax.set_xlabel("epoch")
    handles = [Line2D([], [], color=colours[t], marker="o", markersize=3, label=f"{t}") for t in grid]
    _legend(fig, handles, f"{plots.LABELS[role]} switched at $t_w$ =", ncol=min(len(grid), 6))
    return fig


# --- Page 6 --------------------------------------------------------------------------------------

METHOD_STYLE = {"linear": dict(color="0.25", marker="o"), "string": dict(color=plots.PALETTE[5], marker="D")}


def landscape(scans, cfg, paths):
    """Loss along the paths: one row per switch time, one column per path."""
    s = scans[analysis.select(scans, cfg) & (scans.metric == "loss")]
    times = sorted(s.switch_time.unique())
    fig, axes = plt.subplots(len(times), len(paths), squeeze=False, sharey="row",
                             figsize=(plots.WIDTH, 2.2 * len(times) + 1.6))
    for row, t in zip(axes, times):
        for ax, (path, a_name, b_name) in zip(row, paths):
            q = s[(s.switch_time == t) & (s.path == path)]
            for method, kw in METHOD_STYLE.items():
                for split, ls in (("train", "-"), ("test", "--")):
                    m = q[(q.method == method) & (q.split == split)]
                    for _, g in m.groupby("seed"):
                        g = g.sort_values("t")
                        ax.plot(g.t, g.value, linestyle=ls, linewidth=0.7, alpha=0.4, color=kw["color"])
                    mean = m.groupby("t").value.mean()
                    ax.plot(mean.index, mean.values, linestyle=ls, linewidth=2, markersize=3.5, **kw)
            ends = q[(q.method == "linear") & (q.split == "train")].groupby("t").value.mean()
            if len(ends):
                ax.plot([0, 1], [ends.iloc[0], ends.iloc[-1]], color="0.55", linewidth=0.9, linestyle=":")
            ax.set_title(f"{a_name} → {b_name}, $t_w$ = {t}")
            ax.set_xticks([0, 0.5, 1], [a_name, "", b_name])
        row[0].set_ylabel("loss (nats)")
    handles = [Line2D([], [], linewidth=2, markersize=3.5, label=method, **kw) for method, kw in METHOD_STYLE.items()]
    handles += [Line2D([], [], color="0.3", linestyle="-", label="train"),
                Line2D([], [], color="0.3", linestyle="--", label="test"),
                Line2D([], [], color="0.3", linewidth=0.7, alpha=0.4, label="one seed"),
                Line2D([], [], color="0.3", linewidth=2, label="mean over seeds"),
                Line2D([], [], color="0.55", linewidth=0.9, linestyle=":", label="chord (train)")]
    _legend(fig, handles, analysis.label(cfg), ncol=3)
    return fig


# --- Page 1 --------------------------------------------------------------------------------------

def embedded_matrix(cnn, efcn):
    """One block of the eFCN's first layer (top), the kernel it repeats and a zoom (below)."""
    import needle_core

    conv_name, layer = next(needle_core.embedded_layers(efcn))
    (hp, wp), (ho, wo) = layer.geometry.padded_hw, layer.geometry.out_hw
    weight = layer.weight.detach().cpu().numpy()
    block = weight[: ho * wo, : hp * wp]  # output channel 0 x input channel 0
    kernel = cnn.get_submodule(conv_name).weight.detach().cpu()[0, 0].numpy()
    dead = ~layer.geometry.alive.flatten().numpy()  # padding columns, one channel
    vmax = float(np.abs(kernel).max())
    values = dict(cmap=plots.WEIGHT_CMAP, vmin=-vmax, vmax=vmax, aspect="auto")
    grey = plt.matplotlib.colors.ListedColormap(["0.55"])

    def draw(ax, rows, cols, interpolation):
        ax.imshow(block[rows, cols], interpolation=interpolation, **values)
        shade = np.broadcast_to(dead[cols], block[rows, cols].shape)
        ax.imshow(np.ma.masked_where(~shade, np.ones(shade.shape)), cmap=grey, alpha=0.35, aspect="auto",
                  interpolation=interpolation)
        ax.grid(False)

    fig, axes = plt.subplot_mosaic([["block", "block"], ["kernel", "zoom"]], figsize=(plots.WIDTH, 6.4),
                                   height_ratios=[1, 1.1], width_ratios=[1, 2.2])
    ax = axes["block"]
    draw(ax, slice(None), slice(None), "antialiased")
    ax.set(title=f"{conv_name}: block {ho * wo:,} × {hp * wp:,}\nof {weight.shape[0]:,} × {weight.shape[1]:,}",
           xlabel=f"column: input position y·{wp} + x", ylabel=f"row: output i·{wo} + j")
    ax = axes["zoom"]
    n_out, n_in = 2, 6  # output rows i, input rows y
    draw(ax, slice(0, n_out * wo), slice(0, n_in * wp), "nearest")
    ax.set_xticks(np.arange(n_in + 1) * wp - 0.5, [f"{y}" for y in range(n_in + 1)])
    ax.set_yticks(np.arange(n_out + 1) * wo - 0.5, [f"{i}" for i in range(n_out + 1)])
    ax.grid(True, color="0.3", alpha=0.6, linewidth=0.6)
    ax.set(title=f"zoom: i < {n_out}, y < {n_in}", xlabel="input row y", ylabel="output row i")
    ax = axes["kernel"]
    image = ax.imshow(kernel, **(values | {"aspect": "equal"}))
    ax.set(title="kernel w[0, 0]", xlabel="kx", ylabel="ky", xticks=range(kernel.shape[1]),
           yticks=range(kernel.shape[0]))
    ax.grid(False)
    fig.colorbar(image, ax=[axes["kernel"], axes["zoom"]], label="weight", shrink=0.8, location="bottom")
    return fig


# --- Page 5 --------------------------------------------------------------------------------------

DIFF_STYLE = {"eLCN − control": dict(color=plots.COLORS["elcn"], linestyle="-.", marker="^"),
              "eFCN − control": dict(color=plots.COLORS["efcn"], linestyle="-", marker="D"),
              "eFCN − eLCN": dict(color="0.2", linestyle="--", marker="X")}


def _fit(ax, values, pad=0.35):
    lo, hi = np.nanmin(values), np.nanmax(values)
    span = max(hi - lo, 0.01)
    ax.set_ylim(lo - pad * span, hi + pad * span)


def _t_axis(ax, t_grid):
    if t_grid.max() > 10:
        ax.set_xscale("symlog", linthresh=1)
    if len(t_grid) <= 8:
        ax.set_xticks(t_grid)


def elcn_vs_efcn(page, ends, acc, summary, per_seed, control):
    """Per configuration: read-out accuracy against t_w, then the three paired differences."""
    groups = page.configurations()
    fig, axes = plt.subplots(2 * len(groups), 1, figsize=(plots.WIDTH, 5.6 * len(groups) + 0.4), squeeze=False)
    for i, group in enumerate(groups):
        ax_acc, ax_diff = axes[2 * i, 0], axes[2 * i + 1, 0]
        a = acc[analysis.select(acc, group)]
        t_grid = np.sort(a.switch_time.dropna().unique())
        for role in (control, "fcn", "elcn", "efcn"):
            q = a[a.role == role].sort_values("switch_time")
            if q.switch_time.isna().all():  # trained without a switch: the same at every t_w
                q = pd.concat([q] * len(t_grid)).assign(switch_time=t_grid)
            plots.band(ax_acc, q.switch_time, q["mean"], q.lo, q.hi, role, alpha=0.12,
                       label="CNN (control)" if role == "cnn" else None)
        _fit(ax_acc, ends[analysis.select(ends, group)].readout)
        ax_acc.set(ylabel="test accuracy\n(read-out)", title=analysis.label(group))
        ax_acc.legend(ncol=2)
        s, p = summary[analysis.select(summary, group)], per_seed[analysis.select(per_seed, group)]
        for name, kw in DIFF_STYLE.items():
            q = s[s.comparison == name].sort_values("switch_time")
            ax_diff.plot(q.switch_time, q["mean"], label=name, **kw)
            ax_diff.fill_between(q.switch_time, q.lo, q.hi, color=kw["color"], alpha=0.12, linewidth=0)
            ax_diff.plot(p.switch_time, p[name], linestyle="none", marker=".", color=kw["color"], alpha=0.7,
                         markersize=4)
        ax_diff.axhline(0, color="0.4", linewidth=0.8)
        _fit(ax_diff, p[list(DIFF_STYLE)].to_numpy())
        ax_diff.set(xlabel="switch time $t_w$ (epochs)", ylabel="paired difference\n(read-out)")
        ax_diff.legend(ncol=1)
        for ax in (ax_acc, ax_diff):
            _t_axis(ax, t_grid)
    return fig


LINES = {("efcn", "delta_loc"): dict(color=plots.COLORS["efcn"], linestyle=":", marker="o", label="eFCN δ_loc"),
         ("efcn", "delta_ws"): dict(color=plots.COLORS["efcn"], linestyle="-", marker="D", label="eFCN δ_ws"),
         ("elcn", "delta_ws"): dict(color=plots.COLORS["elcn"], linestyle="-.", marker="^", label="eLCN δ_ws")}


def elcn_deviation(page, dev, dev_summary):
    """Read-out δ_loc and δ_ws against t_w, two layers per row."""
    groups = page.configurations()
    layers = sorted(dev.layer.unique(), key=lambda name: (name == "network", name))
    cells = [(g, layer) for g in groups for layer in layers]
    rows = (len(cells) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(plots.WIDTH, 2.3 * rows + 1.0), squeeze=False)
    for ax, (group, layer) in zip(axes.flat, cells):
        g, d = dev_summary[analysis.select(dev_summary, group)], dev[analysis.select(dev, group)]
        for (role, metric), kw in LINES.items():
            q = g[(g.role == role) & (g.metric == metric) & (g.layer == layer)].sort_values("switch_time")
            ax.plot(q.switch_time, q["mean"], **kw)
            ax.fill_between(q.switch_time, q.lo, q.hi, color=kw["color"], alpha=0.12, linewidth=0)
            e = d[(d.role == role) & (d.metric == metric) & (d.layer == layer)]
            ax.plot(e.switch_time, e.readout, linestyle="none", marker=".", markersize=3, color=kw["color"],
                    alpha=0.7)
        shown = d[(d.layer == layer) & (d.metric != "delta")].readout
        ax.set(title=layer + (f", {analysis.label(group)}" if len(groups) > 1 else ""), xlabel="$t_w$",
               ylim=(0, 1.25 * shown.max()))
        _t_axis(ax, np.sort(g.switch_time.unique()))
    for ax in axes.flat[len(cells):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel("δ (read-out)")
    _legend(fig, axes[0, 0].get_legend_handles_labels()[0], None, ncol=3)
    return fig


# --- Page 7 --------------------------------------------------------------------------------------

def n_train(acc, ends, best, fixed, pairs, seeds, label, role, control, fixed_switch_time):
    """Read-out accuracy against n_train (top) and the paired gains at the fixed t_w (below)."""
    n_all = max([n for n in acc.n_train if pd.notna(n)], default=1) * 2

    def x_of(frame):
        return frame.n_train.fillna(n_all)  # the whole set, drawn right of the largest subset

    style = dict(zip(pairs, (dict(color=plots.COLORS["fcn"], linestyle=":", marker="v"),
                             dict(color=plots.COLORS[control], linestyle="--", marker="s"))))
    groups = list(acc[["arch", "width"]].drop_duplicates().itertuples(index=False))
    fig, axes = plt.subplots(2 * len(groups), 1, figsize=(plots.WIDTH, 5.8 * len(groups) + 0.4), squeeze=False)
    for i, group in enumerate(groups):
        ax_acc, ax_diff = axes[2 * i, 0], axes[2 * i + 1, 0]
        mine = (acc.arch == group.arch) & (acc.width == group.width)
        for name, frame, role_, kw in (
                ("cnn", acc[mine & (acc.role == control)], control, {}),
                ("fcn", acc[mine & (acc.role == "fcn")], "fcn", {}),
                ("fixed", fixed[(fixed.arch == group.arch) & (fixed.width == group.width)], role,
                 {"label": f"{label[role]}, $t_w$ = {fixed_switch_time}"}),
                ("best", best[(best.arch == group.arch) & (best.width == group.width)], role,
                 {"label": f"{label[role]}, best $t_w$"})):
            frame = frame.sort_values("n_train", na_position="last")
            line = plots.band(ax_acc, x_of(frame), frame["mean"], frame.lo, frame.hi, role_, alpha=0.12, **kw)
            if name == "best":
                line.set(linestyle=(0, (1, 1)), marker="*", markersize=8)
                for x, y, t in zip(x_of(frame), frame["mean"], frame.switch_time):
                    ax_acc.annotate(f"{t:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=9,
                                    color=plots.COLORS[role])
        sel = ends[(ends.arch == group.arch) & (ends.width == group.width)]
        lo, hi = sel.readout.min(), sel.readout.max()
        ax_acc.set(xscale="log", ylabel="test accuracy\n(read-out)", title=f"{group.arch} w{group.width}",
                   ylim=(lo - 0.3 * (hi - lo + 0.01), hi + 0.3 * (hi - lo + 0.01)))
        ax_acc.legend(ncol=2)
        values = []
        for name, p in pairs.items():
            p = p[(p.arch == group.arch) & (p.width == group.width)]
            kw = style[name]
            ax_diff.plot(x_of(p), p["mean"], label=f"{name} ($t_w$ = {fixed_switch_time})", **kw)
            ax_diff.fill_between(x_of(p), p.lo, p.hi, color=kw["color"], alpha=0.12, linewidth=0)
            s = seeds[name]
            s = s[(s.switch_time == fixed_switch_time) & (s.arch == group.arch) & (s.width == group.width)]
            ax_diff.plot(x_of(s), s["diff"], linestyle="none", marker=".", markersize=4, color=kw["color"],
                         alpha=0.7)
            values += list(s["diff"])
        lo, hi = min(values + [0]), max(values + [0])
        ax_diff.axhline(0, color="0.4", linewidth=0.8)
        ax_diff.set(xscale="log", xlabel="training images $n_{train}$", ylabel="paired difference\n(read-out)",
                    ylim=(lo - 0.3 * (hi - lo + 0.01), hi + 0.3 * (hi - lo + 0.01)))
        ax_diff.legend()
        for ax in (ax_acc, ax_diff):
            ticks = sorted(set(x_of(acc[mine])))
            ax.set_xticks(ticks, [f"{int(n):,}" if n in set(acc.n_train) else "all" for n in ticks])
            ax.minorticks_off()
    return fig


#: The trained-curve pairs of claim 6: the tested one in the eFCN's colour, the controls in
#: their networks' colours, the FCN <-> FCN control (the rule's) dashed.
CURVE_PAIRS = {"efcn-fcn": dict(color=plots.COLORS["efcn"], linestyle="-"),
               "fcn-fcn": dict(color=plots.COLORS["fcn"], linestyle="--"),
               "efcn-efcn": dict(color=plots.COLORS["efcn"], linestyle=":"),
               "cnn-cnn": dict(color=plots.COLORS["cnn"], linestyle=":")}


def curve_convergence(traces: pd.DataFrame, cfg):
    """How each trained curve converged: its barrier (nats of training loss above the chord,
    at the stopping rule's checks) against the SGD steps of its bend, one line per curve,
    coloured by pair; a cross where the rule stopped it (no cross: stopped by the budget).
    Without curves, the axes say so."""
    from .interpolate import barrier

    t = traces[analysis.select(traces, cfg) & (traces["method"] == "curve")] if len(traces) else traces
    fig, ax = plt.subplots(figsize=(plots.WIDTH, 3.4), layout="constrained")
    if t.empty:  # the figure keeps its number on every page: it says what is missing
        ax.text(0.5, 0.5, "no trained curves in this store", ha="center", va="center", transform=ax.transAxes)
    for task, g in (t.groupby("task", sort=True) if len(t) else []):
        pair = g["pair"].iloc[0]
        checks = g.groupby("step").apply(lambda c: barrier(c.assign(metric="loss", value=c["loss"])),
                                         include_groups=False)
        ax.plot(checks.index, checks.values, linewidth=1.0, **CURVE_PAIRS[pair])
        if g["stopped"].any():
            ax.plot(checks.index[-1], checks.values[-1], marker="x", color=CURVE_PAIRS[pair]["color"], markersize=5)
    ax.set(xlabel="SGD steps of the curve's bend", ylabel="barrier (nats)")
    handles = [Line2D([], [], linewidth=1.0, label=analysis.PAIR_LABELS[p], **kw) for p, kw in CURVE_PAIRS.items()]
    handles.append(Line2D([], [], color="0.3", marker="x", linestyle="", label="stopped by the rule"))
    _legend(fig, handles, analysis.label(cfg))
    return fig


#: The four paths of a curve task, from the straightest to the one trained to avoid high loss.
CURVE_METHOD_STYLE = {"linear": dict(color="0.25", marker="o"),
                      "linear-aligned": dict(color=plots.PALETTE[1], marker="s"),
                      "string": dict(color=plots.PALETTE[4], marker="D"),
                      "curve": dict(color=plots.PALETTE[2], marker="^")}


def _pair_order(frame: pd.DataFrame) -> list[str]:
    return [p for p in CURVE_PAIRS if p in set(frame["pair"])]


def curve_paths(scans: pd.DataFrame, cfg):
    """Training loss along every path of every curve task, as excess over the chord between
    the endpoints (nats; the barrier is each line's maximum): one panel per pair (the tested
    eFCN → FCN first, then the controls), one colour per path, one thin line per task (seed),
    a line style per t_w where there are several.  Without curves, the axes say so."""
    s = scans[analysis.select(scans, cfg) & (scans["metric"] == "loss") & (scans["split"] == "train")] \
        if len(scans) else scans
    pairs = _pair_order(s) if len(s) else []
    rows = max(1, (len(pairs) + 1) // 2)
    fig, axes = plt.subplots(rows, 2 if len(pairs) > 1 else 1, squeeze=False, sharex=True, sharey=True,
                             figsize=(plots.WIDTH, 2.1 * rows + 1.4), layout="constrained")
    if not pairs:
        axes[0, 0].text(0.5, 0.5, "no trained curves in this store", ha="center", va="center",
                        transform=axes[0, 0].transAxes)
    times = sorted(s["switch_time"].dropna().unique()) if pairs else []
    dashes = dict(zip(times, ["-", "--", ":", "-."] * len(times)))  # the tested t_w, told apart
    for ax, pair in zip(axes.flat, pairs):
        for (task, method), g in s[s["pair"] == pair].groupby(["task", "method"], sort=True):
            g = g.sort_values("t")
            chord = g["value"].iloc[0] + g["t"] * (g["value"].iloc[-1] - g["value"].iloc[0])
            t_w = g["switch_time"].iloc[0]
            ax.plot(g["t"], g["value"] - chord, linewidth=0.9, alpha=0.8, color=CURVE_METHOD_STYLE[method]["color"],
                    linestyle="-" if pd.isna(t_w) else dashes[t_w])
        ax.axhline(0, color="0.55", linewidth=0.8, linestyle=":")
        ax.set_title(analysis.PAIR_LABELS[pair])
        ax.set_xticks([0, 0.5, 1])
    for ax in axes.flat[len(pairs):] if pairs else []:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("loss − chord (nats)")
    for ax in axes[-1]:
        ax.set_xlabel("t along the path")
    handles = [Line2D([], [], linewidth=1.5, label=m, color=kw["color"]) for m, kw in CURVE_METHOD_STYLE.items()]
    if len(times) > 1:
        handles += [Line2D([], [], color="0.3", linewidth=1.0, linestyle=dashes[t], label=f"$t_w$ = {int(t)}")
                    for t in times]
    _legend(fig, handles, analysis.label(cfg))
    return fig


def curve_barriers(curves: pd.DataFrame, cfg):
    """The barrier of every path, per pair and t_w (one row each: the tested eFCN → FCN per
    tested t_w first, then the controls): one marker per seed and path, the path's mean over
    seeds as a bar.  Nats of training loss above the chord."""
    c = curves[analysis.select(curves, cfg)] if len(curves) else curves
    keys = [] if c.empty else sorted(
        {(r.pair, None if pd.isna(r.switch_time) else int(r.switch_time)) for r in c.itertuples()},
        key=lambda k: (list(CURVE_PAIRS).index(k[0]), -1 if k[1] is None else k[1]))
    fig, ax = plt.subplots(figsize=(plots.WIDTH, 0.42 * max(len(keys), 2) + 1.5), layout="constrained")
    if not keys:
        ax.text(0.5, 0.5, "no trained curves in this store", ha="center", va="center", transform=ax.transAxes)
    offsets = dict(zip(CURVE_METHOD_STYLE, np.linspace(-0.24, 0.24, len(CURVE_METHOD_STYLE))))
    for y, (pair, t) in enumerate(keys):
        rows = c[(c["pair"] == pair) & (c["switch_time"].isna() if t is None else c["switch_time"] == t)]
        for method, kw in CURVE_METHOD_STYLE.items():
            b = rows.loc[rows["method"] == method, "barrier"].astype(float)
            if b.empty:
                continue
            ax.plot(b, np.full(len(b), y + offsets[method]), linestyle="", markersize=4, alpha=0.8,
                    markerfacecolor="none", **kw)
            ax.plot([b.mean()] * 2, [y + offsets[method] - 0.09, y + offsets[method] + 0.09], color=kw["color"],
                    linewidth=2)
    ax.set_yticks(range(len(keys)), [f"{analysis.PAIR_LABELS[p]}" + (f", $t_w$={t}" if t is not None else "")
                                     for p, t in keys])
    ax.invert_yaxis()
    ax.axvline(0, color="0.55", linewidth=0.8, linestyle=":")
    ax.set_xlabel("barrier (nats above the chord)")
    handles = [Line2D([], [], linestyle="", markerfacecolor="none", markersize=4, label=m, **kw)
               for m, kw in CURVE_METHOD_STYLE.items()]
    handles.append(Line2D([], [], color="0.3", linewidth=2, label="mean over seeds"))
    _legend(fig, handles, analysis.label(cfg), ncol=3)
    return fig
