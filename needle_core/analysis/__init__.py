"""Small pure functions on the tidy result frame (``needle_core.sweep.results``): read-outs,
intervals over seeds, paired comparisons and the claims scorecard with its pre-registered
verdicts (book/preregistration.md).

The frame has one row per run × epoch × metric (× layer), with the run's spec columns (see
:meth:`needle_core.store.ResultStore.results`).  Runs of one *group* share ``arch``, ``width``,
``n_train`` and ``seed``: the trunk CNN (role ``cnn``), its branches (``efcn``/``elcn``, and
``cnn_control`` when the switch changes the learning rate) at every switch time, and the
baselines trained from scratch (``fcn``, ``lcn``).

A run's primary number is its *read-out*: the mean of its evaluations over the last 20% of
the budget (``SweepConfig.readout_epochs``; at lr 0.1 a single last epoch is mostly noise),
with the last-epoch value beside it.  Intervals are over seeds, with Student's t distribution
(a handful of seeds: a normal quantile would be too narrow).  Comparisons are paired seed by seed (paper.md §8): the
difference is taken within a group, then averaged.  A diverged run is never dropped
silently: :func:`final` and :func:`readout` keep and flag it, :func:`paired` counts it
(``n_diverged``) and leaves it out of the mean, and :func:`claims` recounts it at chance
accuracy in a sensitivity line.  Verdicts are symmetric (:class:`Rule`): *reproduces*,
*contradicted* or *inconclusive*, each with the smallest effect the seeds could detect.

Nothing here trains anything; only :func:`exactness` and :func:`sizes` build networks.
"""
from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from pathlib import Path

import math
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

#: Columns that identify a configuration (a group without its seed).
CONFIG_KEYS = ["arch", "width", "n_train"]
#: Columns that identify a group of runs sharing one trunk.
GROUP_KEYS = CONFIG_KEYS + ["seed"]
#: Roles that branch off a trunk at a switch time.
BRANCH_ROLES = ("efcn", "elcn", "cnn_control")


#: The pre-registered significance level and power (book/preregistration.md).
ALPHA = 0.05
POWER = 0.80
#: δ below this is "small" (claim 3): the part of the weights outside the CNN subspace is less
#: than half of their norm (an FCN trained from scratch has δ close to 1).
SMALL_DEVIATION = 0.5
#: A loss barrier (nats, training loss) above this separates two basins (claim 6).
BARRIER = 0.05
#: Claim 7, our reading of the abstract's "very large" and "highly sparse" (it gives no number):
#: at least ten times the CNN's parameters, at most a fifth of them non-zero at embedding.
LARGE, SPARSE = 10.0, 0.2

#: The abstract's sentence (NeurIPS version), as quoted in paper.md §1.
ABSTRACT_QUOTE = (
    "for all relax times, the deviation from the CNN subspace is small, and the final performance reached by "
    "the eFCN is higher than that reachable by a standard FCN of same architecture. More surprisingly, for some "
    "intermediate relax times, the eFCN outperforms the CNN it stemmed [from] ... The practical interest of our "
    "protocol is limited by the very large size of the highly sparse eFCN.")

#: paper.md §1's numbered reading of the abstract, in Markdown: the *italic* parts are our
#: interpretation, not the paper's words.
READING = {
    1: "A CNN maps exactly to an *equivalent FCN* (eFCN): same outputs, every weight now free.",
    2: "Protocol: train the CNN for `t_w` *epochs*, embed it, then resume training in FC space.",
    3: "For **all** `t_w`, the eFCN's deviation from the CNN subspace stays small.",
    4: "For **all** `t_w`, the eFCN's final test accuracy beats a standard FCN of the same architecture *trained "
       "from scratch* (*this includes `t_w = 0`: an untrained CNN, embedded*).",
    5: "For **some intermediate** `t_w`, the eFCN beats the CNN it came from (*so accuracy against `t_w` should "
       "rise then fall*).",
    6: "These are rare basins of the FC loss landscape with very good generalisation, \"can only be accessed "
       "thanks to the CNN prior, which helps navigate the landscape during the early stages of optimization\".",
    7: "The price: the eFCN is very large and highly sparse (*772x / 84x the CNN's parameters, our count from the "
       "authors' layer shapes*).",
}

#: Each claim's words, copied exactly from the abstract (NeurIPS wording, "relax time" where
#: arXiv v1 says "switch time t_w"); " ... " marks words left out.  Claim 6's words are the
#: paper's as paper.md §1 quotes them; claims 1 and 2 have no words in the quoted abstract, so
#: they get paper.md's description, marked as ours.
ABSTRACT = {
    1: "(our summary, not a quote) " + READING[1],
    2: "(our summary, not a quote) " + READING[2],
    3: "\"for all relax times, the deviation from the CNN subspace is small\"",
    4: "\"for all relax times, ... the final performance reached by the eFCN is higher than that reachable by a "
       "standard FCN of same architecture\"",
    5: "\"More surprisingly, for some intermediate relax times, the eFCN outperforms the CNN it stemmed [from]\"",
    6: "\"can only be accessed thanks to the CNN prior, which helps navigate the landscape during the early "
       "stages of optimization\"",
    7: "\"The practical interest of our protocol is limited by the very large size of the highly sparse eFCN.\"",
}

#: The book page behind each claim's number.
PAGES = {1: "01_embedding", 2: "02_training_curves", 3: "04_deviation", 4: "03_switch_time", 5: "03_switch_time",
         6: "06_landscape", 7: "01_embedding"}

#: The verdicts a claim can get.  Sampled claims (3-6): reproduces / contradicted /
#: inconclusive, or "not measured" when the profile has no data for it; 1 and 7 are computed
#: (reproduces / contradicted); 2 is the protocol.
VERDICTS = ("reproduces", "contradicted", "conflicting", "inconclusive", "pending", "not measured", "not a claim")


# -- final values and intervals ---------------------------------------------------------------
def final(frame: pd.DataFrame, metric: str = "test_acc", provenance: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each run's value of ``metric`` at the last epoch it was measured (its last evaluation;
    per layer for the deviation metrics).

    One row per run (× layer): the spec columns, ``layer``, ``epoch`` (the epoch of that
    value), ``value``, ``status`` and ``diverged`` (True for a run that diverged: its value
    is the last one measured *before* it diverged, so read it with the flag).  With
    ``provenance`` (``ResultStore.provenance()``), runs that have no row of ``metric`` at all
    (a branch whose trunk diverged before its switch time) are added with ``value`` NaN.
    """
    rows = frame[frame["metric"] == metric]
    keys = ["run", "layer"]
    if len(rows):
        last = rows.loc[rows.groupby(keys, sort=True)["epoch"].idxmax()]
    else:
        last = rows.copy()
    last = last.drop(columns="metric").reset_index(drop=True)
    if provenance is not None and len(provenance):
        missing = provenance[~provenance["run"].isin(last["run"])]
        if len(missing):
            spec = [c for c in last.columns if c in missing.columns and c not in ("epoch", "layer", "value")]
            extra = missing[spec].assign(layer="", epoch=np.nan, value=np.nan)
            last = pd.concat([last, extra[last.columns]], ignore_index=True)
    last["diverged"] = last["status"].astype(str).str.contains("diverged")
    return last.sort_values(["run", "layer"], kind="stable").reset_index(drop=True)


def spread(values: Iterable[float]) -> tuple[float, float, int]:
    """``(mean, sd, n)`` of the finite ``values`` (``sd`` with ``n - 1``; NaN for ``n < 2``)."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    return (float(x.mean()) if n else math.nan), (float(x.std(ddof=1)) if n > 1 else math.nan), n


def t_interval(mean, sd, n, level: float = 0.95):
    """``(lo, hi)``: the two-sided ``level`` Student-t interval of a mean of ``n`` values with
    standard deviation ``sd`` (scalars or arrays; NaN where ``n < 2``)."""
    from scipy import stats

    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(0.5 + level / 2, n - 1) * np.asarray(sd, dtype=float) / np.sqrt(n)
    return np.asarray(mean, dtype=float) - half, np.asarray(mean, dtype=float) + half


def interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float, int]:
    """``(mean, lo, hi, n)``: the mean of the finite ``values`` and its ``level`` confidence
    interval with Student's t distribution (``n - 1`` degrees of freedom).

    ``n`` counts the finite values; with ``n = 0`` everything is NaN, with ``n = 1`` the
    interval is ``(nan, nan)`` (one value says nothing about the spread).
    """
    mean, sd, n = spread(values)
    lo, hi = t_interval(mean, sd, n, level)
    return mean, float(lo), float(hi), n


def detectable(sd, n, alpha: float = ALPHA, power: float = POWER):
    """The smallest true effect that ``n`` paired values of standard deviation ``sd`` detect
    with probability ``power`` in a two-sided test at level ``alpha``:
    ``(t_{1-alpha/2, n-1} + t_{power, n-1}) · sd / √n`` (book/preregistration.md), in the
    values' units; NaN where ``n < 2``."""
    from scipy import stats

    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * np.asarray(sd, dtype=float) \
            / np.sqrt(n)


def per_switch_time(rows: pd.DataFrame, column: str, by: Iterable[str] = tuple(CONFIG_KEYS) + ("switch_time",),
                    last: str | None = None) -> pd.DataFrame:
    """``mean``, ``sd`` and ``n`` of the finite values of ``column`` per ``by`` (a value per
    seed), ``n_diverged`` (rows flagged ``diverged``: their value is NaN in the primary
    analysis) and, with ``last``, the mean of that column over the same rows (the last-epoch
    value beside the read-out)."""
    by = list(by)
    out = []
    for key, g in rows.groupby(by, dropna=False, sort=True):
        mean, sd, n = spread(g[column])
        row = dict(zip(by, key), mean=mean, sd=sd, n=n,
                   n_diverged=int(g["diverged"].sum()) if "diverged" in g else 0)
        if last:
            row["last"] = g.loc[np.isfinite(g[column].astype(float)), last].mean()
        out.append(row)
    return pd.DataFrame(out, columns=by + ["mean", "sd", "n", "n_diverged"] + (["last"] if last else []))


def readout_intervals(ends: pd.DataFrame, by: Iterable[str], level: float = 0.95) -> pd.DataFrame:
    """Per ``by``, the read-outs of :func:`readout`'s rows ``ends`` over seeds: ``mean`` and its
    ``level`` t interval ``lo``/``hi``, ``last`` (the mean last-epoch value of the same runs),
    ``n`` (runs that did not diverge) and ``diverged`` (runs left out)."""
    by = list(by)
    out = per_switch_time(ends, "readout", by, last="last").rename(columns={"n_diverged": "diverged"})
    out["lo"], out["hi"] = t_interval(out["mean"], out["sd"], out["n"], level)
    return out[by + ["mean", "lo", "hi", "last", "n", "diverged"]]


def over_seeds(frame: pd.DataFrame, metric: str, by: Iterable[str] = ("role", "switch_time", "epoch"),
               level: float = 0.95) -> pd.DataFrame:
    """Mean and ``level`` interval over seeds of ``metric``, per ``by`` (+ the configuration
    keys): columns ``by``..., ``mean``, ``lo``, ``hi``, ``n``.  Rows of diverged runs are
    kept (a diverged run has no rows after its divergence).  ``switch_time`` NaN (runs
    without a switch) is kept as its own group."""
    by = [c for c in CONFIG_KEYS if c not in by] + list(by)
    rows = frame[frame["metric"] == metric]
    out = []
    for key, g in rows.groupby(by, dropna=False, sort=True):
        mean, lo, hi, n = interval(g["value"], level)
        out.append(dict(zip(by, key if isinstance(key, tuple) else (key,)), mean=mean, lo=lo, hi=hi, n=n))
    return pd.DataFrame(out, columns=by + ["mean", "lo", "hi", "n"])


# -- configurations ---------------------------------------------------------------------------
def configurations(frame: pd.DataFrame) -> list[dict]:
    """The configurations (arch, width, n_train) of a frame, in order, as dicts."""
    return frame[CONFIG_KEYS].drop_duplicates().sort_values(CONFIG_KEYS).to_dict("records")


def select(frame: pd.DataFrame, cfg: Mapping) -> pd.Series:
    """The mask of the rows of ``frame`` in configuration ``cfg`` (arch, width, n_train; an
    n_train of None/NaN, the whole training set, matches NaN)."""
    sel = (frame["arch"] == cfg["arch"]) & (frame["width"] == cfg["width"])
    return sel & (frame["n_train"].isna() if pd.isna(cfg["n_train"]) else frame["n_train"] == cfg["n_train"])


def label(cfg: Mapping) -> str:
    """``"vanilla w64, n_train all"``: a configuration in words, for titles."""
    n = "all" if pd.isna(cfg["n_train"]) else f"{int(cfg['n_train']):,}"
    return f"{cfg['arch']} w{cfg['width']}, n_train {n}"


# -- the read-out -----------------------------------------------------------------------------
def readout_epochs(window=None, frame: pd.DataFrame | None = None) -> list[int]:
    """The epochs whose evaluations make a run's read-out (book/preregistration.md).

    ``window``: a :class:`~needle_core.config.SweepConfig` (its ``readout_epochs``), a config
    dict (its ``epochs`` and ``readout``), a list of epochs (taken as given), or None: the
    pre-registered fraction of the budget, the budget being ``frame``'s largest epoch.
    """
    from ..config import SweepConfig

    if window is None or isinstance(window, Mapping):
        d = dict(window or {})
        epochs = d.get("epochs") or int(frame["epoch"].max())
        return SweepConfig(epochs=int(epochs), readout=d.get("readout", SweepConfig.readout)).readout_epochs
    if hasattr(window, "readout_epochs"):
        return list(window.readout_epochs)
    return sorted(int(e) for e in window)


def run_windows(window):
    """The config whose runs each have a read-out window of their own budget (``fc_epochs``
    set: :meth:`~needle_core.config.SweepConfig.run_readout_epochs`), from a config or a config
    dict; None when every run shares one window."""
    from ..config import SweepConfig

    if isinstance(window, Mapping) and window.get("fc_epochs") is not None:
        fields = {f.name for f in dataclasses.fields(SweepConfig)}
        window = SweepConfig(**{k: v for k, v in window.items() if k in fields})
    return window if isinstance(window, SweepConfig) and window.fc_epochs is not None else None


def readout(frame: pd.DataFrame, metric: str = "test_acc", window=None,
            provenance: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each run's read-out of ``metric``: the mean of its evaluations at the read-out epochs
    (:func:`readout_epochs` of ``window``; per layer for the deviation metrics), in the
    metric's units.

    One row per run (× layer), :func:`final`'s columns with ``value`` renamed ``last`` (the
    last evaluation), plus ``readout`` and ``evals`` (how many evaluations it averages).  A
    diverged run has ``readout`` NaN (its evaluations stop before the window, or run into the
    divergence) and ``diverged`` True; so do the runs ``provenance`` adds (branches of a
    diverged trunk).
    """
    ends = final(frame, metric, provenance).rename(columns={"value": "last"})
    rows = frame[frame["metric"] == metric]
    per_run = run_windows(window)
    if per_run is None:
        rows = rows[rows["epoch"].isin(readout_epochs(window, frame))]
    else:  # each run's own window (fc_epochs): the role and switch time say which
        start = [None if pd.isna(t) else int(t) for t in rows["switch_time"]]
        windows = {key: set(per_run.run_readout_epochs(*key)) for key in set(zip(rows["role"], start))}
        rows = rows[[e in windows[key] for key, e in zip(zip(rows["role"], start), rows["epoch"])]]
    window_mean = rows.groupby(["run", "layer"])["value"].agg(readout="mean", evals="count").reset_index()
    out = ends.merge(window_mean, on=["run", "layer"], how="left")
    out["evals"] = out["evals"].fillna(0).astype(int)
    out.loc[out["diverged"], "readout"] = np.nan
    return out


def epoch_span(epochs: list[int]) -> str:
    """Sorted epochs in words: ``"epoch 6"``, ``"epochs 17–20"``, or listed when they are not
    consecutive (``"epochs 16, 18, 20"``)."""
    if len(epochs) == 1:
        return f"epoch {epochs[0]}"
    consecutive = epochs == list(range(epochs[0], epochs[-1] + 1))
    return "epochs " + (f"{epochs[0]}–{epochs[-1]}" if consecutive else ", ".join(str(e) for e in epochs))


def readout_label(window=None, frame: pd.DataFrame | None = None) -> str:
    """How the pages name a read-out (:func:`readout_epochs` of ``window`` and ``frame``):
    ``"read-out (mean over epochs 17–20)"``, ``"read-out (epoch 6)"`` for a one-epoch window."""
    if run_windows(window) is not None:
        return f"read-out (mean over the last {run_windows(window).readout:.0%} of each run's budget)"
    epochs = readout_epochs(window, frame)
    return f"read-out ({'' if len(epochs) == 1 else 'mean over '}{epoch_span(epochs)})"


# -- paired comparisons -----------------------------------------------------------------------
def control_role(frame: pd.DataFrame) -> str:
    """The baseline of "the eFCN beats the CNN": ``cnn_control`` when the sweep has it (the
    switch changes the learning rate), else the trunk ``cnn`` (paper.md §8)."""
    return "cnn_control" if (frame["role"] == "cnn_control").any() else "cnn"


def paired_seeds(frame: pd.DataFrame, role: str, against: str = "control", metric: str = "test_acc",
                 window=None, provenance: pd.DataFrame | None = None,
                 diverged_as: float | None = None) -> pd.DataFrame:
    """Seed-by-seed read-out of ``metric`` (:func:`readout` over ``window``) of ``role`` (a
    branch: ``efcn``, ``elcn``) and of its baseline ``against`` in the same group and, for a
    branch baseline, at the same switch time.

    ``against``: ``"control"`` (``cnn_control`` when present, else the trunk ``cnn``),
    ``"cnn"`` (the trunk, trained at constant settings for the whole budget),
    ``"cnn_control"``, ``"fcn"`` or ``"lcn"`` (trained from scratch: one per group, the same
    for every switch time).  One row per (configuration, switch time, seed): ``value``,
    ``baseline``, ``diff = value - baseline`` (NaN when either run diverged), the last-epoch
    values ``last``, ``baseline_last`` and ``last_diff``, ``diverged`` (either run diverged)
    and ``against`` (the role actually used).  ``provenance`` adds the branches of diverged
    trunks (diverged, no value); ``diverged_as`` replaces a diverged run's read-out (the
    sensitivity analysis: chance accuracy).
    """
    base_role = control_role(frame) if against == "control" else against
    if base_role not in ("cnn", "cnn_control", "fcn", "lcn", "efcn", "elcn"):
        raise ValueError(f"against={against!r}: use control, cnn, cnn_control, fcn or lcn.")
    ends = readout(frame, metric, window, provenance)
    ends = ends[ends["layer"].isin(["", "network"])]
    if diverged_as is not None:
        ends.loc[ends["diverged"], "readout"] = diverged_as
    mine = ends[ends["role"] == role]
    if mine.empty:
        raise ValueError(f"no {role!r} runs with metric {metric!r} in the frame (roles: "
                         f"{sorted(frame['role'].unique())}).")
    base = ends[ends["role"] == base_role]
    if base.empty:
        raise ValueError(f"no {base_role!r} runs with metric {metric!r} to compare {role!r} against.")
    on = GROUP_KEYS + (["switch_time"] if base_role in BRANCH_ROLES else [])
    base = base[on + ["readout", "last", "diverged"]].rename(
        columns={"readout": "baseline", "last": "baseline_last", "diverged": "baseline_diverged"})
    out = mine[GROUP_KEYS + ["switch_time", "readout", "last", "diverged"]].rename(columns={"readout": "value"}) \
        .merge(base, on=on, how="inner")
    out["diff"] = out["value"] - out["baseline"]
    out["last_diff"] = out["last"] - out["baseline_last"]
    out["diverged"] = out["diverged"] | out["baseline_diverged"]
    out["against"] = base_role
    return out.drop(columns="baseline_diverged").sort_values(CONFIG_KEYS + ["switch_time", "seed"]) \
        .reset_index(drop=True)


def paired(frame: pd.DataFrame, role: str, against: str = "control", metric: str = "test_acc",
           level: float = 0.95, window=None, provenance: pd.DataFrame | None = None,
           diverged_as: float | None = None) -> pd.DataFrame:
    """The paired difference ``role − against`` of the read-out of ``metric`` (the mean over
    the evaluations of ``window``, see :func:`readout_epochs`), per configuration (arch,
    width, n_train) and switch time: ``mean``, ``sd``, its ``level`` t interval ``lo``/``hi``
    and ``n`` (pairs in which neither run diverged), ``n_diverged`` (pairs left out because a
    run diverged, or counted at ``diverged_as``), ``last`` (the mean last-epoch difference
    over the same pairs), ``role_mean``/``against_mean`` (the two means over the same pairs),
    ``against`` (the role used) and the per-seed values ``seeds`` and ``diffs`` (tuples, in
    seed order, NaN for a diverged pair).  See :func:`paired_seeds` for the other arguments.
    """
    seeds = paired_seeds(frame, role, against, metric, window, provenance, diverged_as)
    keys = CONFIG_KEYS + ["switch_time"]
    out = per_switch_time(seeds, "diff", keys, last="last_diff")
    out["lo"], out["hi"] = t_interval(out["mean"], out["sd"], out["n"], level)
    extra = []
    for _, g in seeds.groupby(keys, dropna=False, sort=True):
        ok = g[np.isfinite(g["diff"])]
        extra.append(dict(role_mean=ok["value"].mean(),
                          against_mean=ok["baseline"].mean(), against=g["against"].iloc[0],
                          seeds=tuple(int(s) for s in g["seed"]), diffs=tuple(float(d) for d in g["diff"])))
    return pd.concat([out, pd.DataFrame(extra)], axis=1)


# -- provenance -------------------------------------------------------------------------------
def _config_dict(config) -> dict:
    if config is None:
        return {}
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def dataset_label(name: str) -> str:
    """A reader's name for a dataset string of the config: the JPEG copy of CIFAR-10 (an
    ImageFolder archive named ``cifar10-jpeg*``) is labelled as such, since accuracies on it
    run below those on the original batches."""
    if name.startswith("folder:"):
        base = Path(name[len("folder:"):]).name
        return "CIFAR-10 (JPEG copy)" if base.startswith("cifar10-jpeg") else f"ImageFolder {base}"
    return {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "synthetic": "synthetic"}.get(name, name)


def describe(provenance: pd.DataFrame, config=None, runs: Iterable[str] | None = None) -> dict:
    """What produced a result, for :func:`needle_core.plots.caption` and the scorecard:
    ``data`` (data set, subset sizes, architectures, seeds, epochs), ``profile``,
    ``hardware`` (the devices the runs ran on) and ``wall_time`` (seconds, summed over
    ``runs``, default all runs of ``provenance``).  ``config`` is the sweep's
    :class:`~needle_core.config.SweepConfig` (or its dict); without it the data is described
    from the provenance alone."""
    prov = provenance if runs is None else provenance[provenance["run"].isin(list(runs))]
    cfg = _config_dict(config)
    if cfg:
        n_train = ", ".join("all" if n is None else f"{n:,}" for n in cfg["n_trains"])
        n_test = "all" if cfg.get("n_test") is None else f"{cfg['n_test']:,}"
        nets = ", ".join(f"{a} w{w}" for a in cfg["archs"] for w in cfg["widths"])
        seeds = cfg["seeds"]
        data = (f"{dataset_label(cfg['dataset'])} ({n_train} train / {n_test} test), {nets}, {len(seeds)} seeds "
                f"({', '.join(map(str, seeds))}), {cfg['epochs']} epochs, batch {cfg.get('batch_size', 250)}, lr {cfg['lr']:g}"
                + (f"→{cfg['lr_after']:g}" if cfg.get("lr_after") is not None else ""))
        profile = cfg.get("name", "custom")
    else:
        nets = ", ".join(sorted({f"{a} w{w}" for a, w in zip(prov.get("arch", []), prov.get("width", []))}))
        seeds = sorted(set(prov.get("seed", [])))
        data = f"{nets}, {len(seeds)} seeds"
        profile = "unknown"
    devices = sorted({str(d) for d in prov.get("device", []) if d is not None and d == d})
    wall = float(pd.to_numeric(prov.get("wall_time_s", pd.Series(dtype=float))).fillna(0).sum())
    n_div = int(prov["status"].astype(str).str.contains("diverged").sum()) if "status" in prov else 0
    out = dict(data=data, profile=profile, hardware=", ".join(devices) or "unknown", wall_time=wall,
               runs=f"{len(prov)}" + (f" ({n_div} diverged)" if n_div else ""))
    return out


# -- claims that need no training -------------------------------------------------------------
def exactness(arch: str, width: int, n_inputs: int = 8, seed: int = 0, dtype=None) -> dict:
    """Claim 1, from needle_core directly: the largest |eFCN − CNN| and |eLCN − CNN| over the
    logits of ``n_inputs`` random inputs, absolute and relative to the largest |logit|, for a
    freshly initialised CNN (the embedding does not depend on the weights' values).
    ``dtype`` defaults to float64, where rounding is ~1e-16."""
    import torch

    from ..embedding import embed
    from ..models import INPUT_SHAPE, cnn

    dtype = dtype or torch.float64
    torch.manual_seed(seed)
    net = cnn(arch, ch=width).to(dtype).eval()
    x = torch.randn(n_inputs, *INPUT_SHAPE, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    out = {}
    with torch.no_grad():
        reference = net(x)
        scale = reference.abs().max().item()
        for kind in ("fc", "lc"):
            err = (embed(net, INPUT_SHAPE, kind=kind).eval()(x) - reference).abs().max().item()
            out[f"{kind}_abs"], out[f"{kind}_rel"] = err, err / scale
    return out


def sizes(arch: str, width: int) -> dict:
    """Claim 7: parameters of the CNN, its eFCN and its eLCN (counted on the meta device:
    nothing is allocated, so the paper's AlexNet costs nothing)."""
    import torch

    from ..embedding import embed
    from ..models import INPUT_SHAPE, cnn

    with torch.device("meta"):
        net = cnn(arch, ch=width)
        counts = {"cnn": sum(p.numel() for p in net.parameters())}
        for kind in ("fc", "lc"):
            counts[f"e{kind}n"] = sum(p.numel() for p in embed(net, INPUT_SHAPE, kind=kind).parameters())
    return counts


# -- verdicts ---------------------------------------------------------------------------------
_OTHER_SIDE = {"above": "below", "below": "above"}


def _pct(level: float) -> str:
    """``0.991667`` -> ``"99.17%"``, ``0.95`` -> ``"95%"``."""
    return f"{level * 100:.2f}".rstrip("0").rstrip(".") + "%"


@dataclass(frozen=True)
class Rule:
    """A pre-registered verdict rule (book/preregistration.md) on a quantity measured over
    seeds at each tested switch time.

    The claim puts the quantity ``side`` ("above" or "below") of ``threshold``.  It
    *reproduces* when the interval lies entirely on that side at ``reproduces`` ("all" or
    "some") of the tested t_w, is *contradicted* when it lies entirely on the other side (the
    threshold counts as the other side) at ``contradicted`` ("all"/"some") of them, and is
    *inconclusive* otherwise: symmetric.  Intervals are two-sided Student-t at 1 − ALPHA;
    for the verdicts named in ``corrected``, Bonferroni-corrected over the m tested t_w
    (1 − ALPHA/m), as a claim about "some" t_w needs.
    """

    side: str
    threshold: float
    reproduces: str
    contradicted: str
    corrected: tuple[str, ...] = ()

    def level(self, verdict: str, m: int) -> float:
        """The interval level that decides ``verdict`` over ``m`` tested switch times."""
        return 1 - ALPHA / max(m, 1) if verdict in self.corrected else 1 - ALPHA

    def level_words(self, verdict: str, m: int) -> str:
        level = self.level(verdict, m)
        return _pct(level) + (f" (Bonferroni over {m} t_w)" if verdict in self.corrected else "")

    def describe(self, m: int) -> str:
        """The rule in words, for ``m`` tested switch times."""
        every = {"all": "every tested t_w", "some": "some tested t_w"}
        iut = " (intersection-union test: no correction)" if self.reproduces == "all" \
            and "reproduces" not in self.corrected else ""
        return (f"Reproduces if the {self.level_words('reproduces', m)} interval lies entirely {self.side} "
                f"{self.threshold:g} at {every[self.reproduces]}{iut}; contradicted if the "
                f"{self.level_words('contradicted', m)} interval lies entirely {_OTHER_SIDE[self.side]} "
                f"{self.threshold:g} (or touches it) at {every[self.contradicted]}; otherwise inconclusive")


#: The rules of book/preregistration.md: claim 3 on the eFCN's δ (network), 4 on eFCN − FCN,
#: 5 on eFCN − CNN at the intermediate t_w, 6 on the string barrier eFCN → FCN (nats).
RULES = {
    3: Rule("below", SMALL_DEVIATION, "all", "some", ("contradicted",)),
    4: Rule("above", 0.0, "all", "some", ("contradicted",)),
    5: Rule("above", 0.0, "some", "all", ("reproduces", "contradicted")),
    6: Rule("above", BARRIER, "all", "all"),
}


def _where(times: pd.Series, m: int) -> str:
    """Which of the ``m`` tested switch times ``times`` are, in words."""
    if m and len(times) == m:
        return f"every tested t_w ({m})"
    if not len(times):
        return "no tested t_w"
    return "t_w = " + ", ".join(str(int(t)) for t in times) + f" only ({len(times)} of {m})"


def decide(stats: pd.DataFrame, rule: Rule) -> dict:
    """Apply ``rule`` to ``stats`` (one row per tested switch time: ``switch_time``, ``mean``,
    ``sd``, ``n``, as :func:`per_switch_time` gives).  Returns ``verdict`` (reproduces /
    contradicted / inconclusive), ``reason`` (where each interval lies, in words) and
    ``levels`` (the interval level that decides each verdict)."""
    m = len(stats)
    t = rule.threshold
    found, reasons, levels, sides = {}, [], {}, {}
    for verdict, side in (("reproduces", rule.side), ("contradicted", _OTHER_SIDE[rule.side])):
        levels[verdict] = rule.level(verdict, m)
        lo, hi = t_interval(stats["mean"], stats["sd"], stats["n"], levels[verdict])
        # The claimed side is strict; the threshold itself belongs to the other side (NaN: neither).
        on = (lo > t if verdict == "reproduces" else lo >= t) if side == "above" else \
            (hi < t if verdict == "reproduces" else hi <= t)
        found[verdict] = m > 0 and bool(on.all() if getattr(rule, verdict) == "all" else on.any())
        sides[verdict] = [int(x) for x in stats["switch_time"][on]]
        reasons.append(f"the {_pct(levels[verdict])} interval lies {side} {t:g} at "
                       f"{_where(stats['switch_time'][on], m)}")
    if (stats["n"] < 2).any():
        reasons.append("no interval (fewer than 2 seeds) at t_w = "
                       + ", ".join(str(int(x)) for x in stats.loc[stats["n"] < 2, "switch_time"]))
    verdict = "contradicted" if found["contradicted"] else "reproduces" if found["reproduces"] else "inconclusive"
    return dict(verdict=verdict, reason="; ".join(reasons), levels=levels, sides=sides)


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:+.{digits}f}"


def _ci(lo: float, hi: float, digits: int = 3) -> str:
    return "n/a (n < 2)" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:+.{digits}f}, {hi:+.{digits}f}]"


def _per_tw(stats: pd.DataFrame, texts: Iterable[str]) -> str:
    return "; ".join(f"t_w={int(t)}: {x}" for t, x in zip(stats["switch_time"], texts))


def sampled_verdict(stats: pd.DataFrame, rule: Rule, quantity: str) -> dict:
    """The scorecard fields of a claim that ``rule`` decides from ``stats`` (one row per tested
    switch time, :func:`per_switch_time`'s columns, ``last`` optional): ``test`` (the rule in
    words), ``estimate`` (mean per t_w, last-epoch mean beside it), ``interval`` (per t_w, at
    each level the rule uses), ``n`` (the fewest seeds at any t_w), ``detectable`` (per t_w,
    the smallest true effect the seeds detect with 80% power at the level that decides
    "reproduces"), ``verdict`` and ``reason``."""
    m = len(stats)
    decision = decide(stats, rule)
    levels = decision["levels"]
    estimate = _per_tw(stats, [_fmt(r.mean) + (f" (last epoch {_fmt(r.last)})" if "last" in stats else "")
                               + (f", {r.n_diverged} diverged" if r.n_diverged else "")
                               for r in stats.itertuples()])
    intervals = []
    for level in sorted(set(levels.values())):
        lo, hi = t_interval(stats["mean"], stats["sd"], stats["n"], level)
        intervals.append(f"{_pct(level)}: " + _per_tw(stats, [_ci(a, b) for a, b in zip(lo, hi)]))
    # At the pre-registered 5% level (book/preregistration.md), and, where the rule decides
    # "reproduces" at a Bonferroni-corrected level, at that level too.
    effects = [(1 - ALPHA, "the pre-registered two-sided 5% level")]
    if "reproduces" in rule.corrected:
        effects.append((levels["reproduces"], f"the deciding two-sided {_pct(1 - levels['reproduces'])} level "
                                              f"(Bonferroni over {m} t_w)"))
    detect = " · ".join(_per_tw(stats, ["n/a" if not np.isfinite(e) else f"{e:.3f}"
                                        for e in detectable(stats["sd"], stats["n"], 1 - level)])
                        + f" (80% power, {words})" for level, words in effects)
    return dict(test=f"{quantity}, at each tested t_w. " + rule.describe(m), estimate=estimate,
                interval=" · ".join(intervals), n=int(stats["n"].min()) if m else 0, detectable=detect,
                verdict=decision["verdict"], reason=decision["reason"], sides=decision["sides"])


def _sensitivity(again: dict | None, diverged: int, chance: float) -> str:
    """The sensitivity line: ``again``, the :func:`decide` of the paired read-outs with the
    diverged runs at chance accuracy (None when no run diverged)."""
    if not diverged:
        return "no run diverged: nothing to recount"
    return (f"{diverged} pair(s) with a diverged run, counted at chance ({chance:.3f}): {again['verdict']} "
            f"({again['reason']})")


#: The converged edition's spike (book/preregistration.md): an epoch's mean training loss more
#: than this many nats above the lowest earlier epoch mean of the same run.
SPIKE_RISE = 0.25


def spikes(frame: pd.DataFrame, rise: float | None = None) -> pd.DataFrame:
    """Loss spikes below the divergence threshold, per run.

    ``rise`` None (the 20-epoch edition, a post hoc definition: issue 17): a run *spikes*
    when its training loss after its start, evaluated on the training set (``train_loss``) or
    as an epoch's mean mini-batch loss (``epoch_loss``), exceeds its training loss evaluated
    at its start (epoch 0 for a trunk or a network from scratch, ``t_w`` for a branch).
    ``rise`` a number (the converged edition, pre-registered: :data:`SPIKE_RISE`): when an
    epoch's mean loss exceeds the lowest earlier epoch mean of the run by more than ``rise``.

    One row per run: ``run``, ``start_loss`` (the reference: the loss at the start, or the
    lowest earlier epoch mean before the peak rise), ``peak_loss`` (nats), ``peak_epoch`` and
    ``spiked``."""
    columns = ["run", "start_loss", "peak_loss", "peak_epoch", "spiked"]
    if rise is not None:
        epochs = frame[frame["metric"] == "epoch_loss"].dropna(subset=["value"]).sort_values(["run", "epoch"])
        if epochs.empty:
            return pd.DataFrame(columns=columns)
        lowest = epochs.groupby("run")["value"].transform(lambda v: v.cummin().shift(1))
        excess = epochs["value"] - lowest
        top = epochs.assign(start_loss=lowest, excess=excess.fillna(-np.inf))
        top = top.loc[top.groupby("run")["excess"].idxmax()]
        out = top.rename(columns={"value": "peak_loss", "epoch": "peak_epoch"})
        out["spiked"] = out["excess"] > rise
        return out[columns].reset_index(drop=True)
    evals = frame[frame["metric"] == "train_loss"].dropna(subset=["value"])
    if evals.empty:
        return pd.DataFrame(columns=columns)
    start = evals.loc[evals.groupby("run")["epoch"].idxmin(), ["run", "epoch", "value"]] \
        .rename(columns={"epoch": "start_epoch", "value": "start_loss"})
    after = frame[frame["metric"].isin(["train_loss", "epoch_loss"])].dropna(subset=["value"]).merge(start, on="run")
    after = after[after["epoch"] > after["start_epoch"]]
    if after.empty:
        return pd.DataFrame(columns=columns)
    peak = after.loc[after.groupby("run")["value"].idxmax(), ["run", "value", "epoch", "start_loss"]] \
        .rename(columns={"value": "peak_loss", "epoch": "peak_epoch"})
    peak["spiked"] = peak["peak_loss"] > peak["start_loss"]
    return peak[columns].reset_index(drop=True)


def _spike_line(frame: pd.DataFrame, primary: pd.DataFrame, rule: "Rule", against: str, redo,
                rise: float | None = None) -> str:
    """The sensitivity line for loss spikes: how many pairs of ``primary`` hold a run that
    spiked (:func:`spikes` with ``rise``), and the verdict of ``rule`` without them
    (``redo(frame)`` recomputes the paired table of a frame)."""
    spiked = spikes(frame, rise)
    spiked = set(spiked.loc[spiked["spiked"], "run"])
    what = (f"an epoch's training loss more than {rise:g} nats above the run's lowest earlier epoch" if rise
            else "a training loss after the start above the run's loss at its start")
    if not spiked:
        return f"no run spiked ({what})"
    pairs = _pairs(frame, primary, against)
    hit = pairs[pairs["runs"].apply(lambda runs: bool(runs & spiked))]
    per_tw = hit.groupby("switch_time").size()
    where = ", ".join(f"t_w={int(t)}: {k}" for t, k in per_tw.items())
    try:
        again = decide(redo(frame[~frame["run"].isin(spiked)]), rule)["verdict"]
    except ValueError:  # every run of a role spiked: nothing left to compare
        again = "not measured"
    return f"{len(hit)} of {len(pairs)} pairs hold a run that spiked ({what}; {where}); without them: {again}"


def _pairs(frame: pd.DataFrame, primary: pd.DataFrame, against: str) -> pd.DataFrame:
    """The runs of each pair behind ``primary`` (switch time × seed): ``{eFCN run, baseline run}``."""
    runs = frame.drop_duplicates("run")
    rows = []
    for r in primary.itertuples():
        for seed in r.seeds:
            mine = runs[(runs["role"] == "efcn") & (runs["seed"] == seed) & (runs["switch_time"] == r.switch_time)]
            base = runs[(runs["role"] == against) & (runs["seed"] == seed)
                        & ((runs["switch_time"] == r.switch_time) if against in BRANCH_ROLES else True)]
            rows.append(dict(switch_time=r.switch_time, seed=seed, runs=set(mine["run"]) | set(base["run"])))
    return pd.DataFrame(rows, columns=["switch_time", "seed", "runs"])


def pending(out: dict, why: str | None) -> dict:
    """A sampled claim of a campaign still training (``why``: what has landed, e.g.
    :attr:`needle_core.report.Results.pending`): no verdict until every pre-registered run has
    landed, since deciding on a partial sample would be optional stopping; the interim reading
    is kept in ``reason``, labelled as such.  ``out`` unchanged when ``why`` is None or the
    claim has no sampled verdict."""
    if not why or out["verdict"] in ("not measured", "not a claim"):
        return out
    return dict(out, verdict="pending", recounted="pending",
                reason=f"{why}: the pre-registered test decides once every run has landed; interim reading, not a "
                       f"verdict: {out['verdict']} ({out['reason']})")


def not_measured(why: str, verdict: str = "not measured") -> dict:
    """The scorecard fields of a claim this profile has no data for (never a verdict)."""
    return dict(test="", estimate=why, interval="", n=None, detectable="", verdict=verdict, reason=why,
                sensitivity="")


# -- the scorecard ----------------------------------------------------------------------------
def _window_words(window, frame: pd.DataFrame, metric: str) -> str:
    if run_windows(window) is not None:
        return f"read-out = mean {metric} over the evaluations in the last {run_windows(window).readout:.0%} of each " \
               "run's own budget"
    return f"read-out = mean {metric} over the evaluations at {epoch_span(readout_epochs(window, frame))}"


def deviation_claim(frame: pd.DataFrame, provenance: pd.DataFrame | None, window) -> dict:
    """Claim 3 from the eFCN's read-out of δ (whole network, dimensionless)."""
    dev = readout(frame, "delta", window, provenance)
    dev = dev[dev["layer"].isin(["network", ""])]
    efcn = dev[dev["role"] == "efcn"]
    if not efcn["evals"].any():
        return not_measured("no deviation measured (deviation=False, or no eFCN)")
    stats = per_switch_time(efcn, "readout", last="last")
    quantity = (f"δ of the whole eFCN ({_window_words(window, frame, 'δ')}); small = below "
                f"{SMALL_DEVIATION} (the part of the weights outside the CNN subspace under half their norm)")
    out = sampled_verdict(stats, RULES[3], quantity)
    diverged = int(stats["n_diverged"].sum())
    out["sensitivity"] = (f"diverged runs have no δ: {diverged} left out" if diverged
                          else "no run diverged: nothing to recount")
    fcn = spread(dev.loc[dev["role"] == "fcn", "readout"])
    out["note"] = f"the FCN from scratch: δ {fcn[0]:.3f} (n = {fcn[2]})" if fcn[2] else ""
    return out


def accuracy_claim(frame: pd.DataFrame, provenance: pd.DataFrame | None, window, claim: int, metric: str,
                   chance: float, against: str | None = None, grid: Iterable[float] | None = None) -> dict:
    """Claim 4 (eFCN − FCN at every t_w) or 5 (eFCN − CNN at the intermediate t_w: 0 < t_w <
    the grid's last), from the paired read-out of ``metric``; a diverged pair is left out,
    then counted at ``chance`` in the sensitivity line (its verdict in ``recounted``).

    ``against``: the baseline (default: the FCN for claim 4, the control CNN of
    :func:`control_role` for claim 5; "not measured" when the frame has none of it);
    ``grid``: the sweep's switch times, whose last is not intermediate (default: the largest
    in ``frame``, which a sweep still running may not have reached)."""
    against = against or ("fcn" if claim == 4 else "control")

    def tested(frame_, **how):
        """The paired table at the switch times the claim tests (claim 5: the intermediate ones)."""
        table = paired(frame_, "efcn", against, metric, window=window, provenance=provenance, **how)
        if claim == 5:  # intermediate: neither the untrained CNN nor the last switch time
            table = table[(table["switch_time"] > 0) & (table["switch_time"] < last)]
        return table.reset_index(drop=True)

    try:
        everything = paired(frame, "efcn", against, metric, window=window, provenance=provenance)
    except ValueError as err:
        return not_measured(f"not measured in this profile ({err})")
    last = max(grid) if grid is not None else everything["switch_time"].max()
    primary, recount = tested(frame), tested(frame, diverged_as=chance)
    if primary.empty:
        return not_measured(f"not measured in this profile: no intermediate t_w (0 < t_w < {last:g}) in the grid")
    base = primary["against"].iloc[0]
    name = {"fcn": "the FCN from scratch", "cnn": "the trunk CNN (same checkpoint, same settings)",
            "cnn_control": "the controlled CNN (same checkpoint, same change of learning rate)"}[base]
    quantity = (f"paired difference eFCN − {name}, {_window_words(window, frame, metric)}, "
                "diverged pairs left out")
    out = sampled_verdict(primary, RULES[claim], quantity)
    diverged = int(primary["n_diverged"].sum())
    again = decide(recount, RULES[claim]) if diverged else None
    out["sensitivity"] = _sensitivity(again, diverged, chance) + "; spikes: " \
        + _spike_line(frame, primary, RULES[claim], base, tested, SPIKE_RISE if run_windows(window) is not None else None)
    out["recounted"] = again["verdict"] if again else out["verdict"]
    return out


def landscape_claim(landscape: pd.DataFrame | None, cfg: Mapping) -> dict:
    """Claim 6 from the landscape measurements (columns ``seed``, ``switch_time``, ``path``
    "cnn-efcn"/"efcn-fcn", ``method`` "linear"/"string", ``barrier`` in nats of training
    loss): the string barrier eFCN → FCN is tested, the others described in ``note``."""
    if landscape is None or landscape.empty:
        return not_measured("not measured in this profile (no landscape measurements in the store)")
    rows = landscape[select(landscape, cfg)] if set(CONFIG_KEYS) <= set(landscape.columns) else landscape
    by = ["switch_time"]
    tested = rows[(rows["path"] == "efcn-fcn") & (rows["method"] == "string")]
    if tested.empty:
        return not_measured("not measured in this profile (no string path eFCN → FCN in the landscape data)")
    out = sampled_verdict(per_switch_time(tested, "barrier", by), RULES[6],
                          "barrier (largest excess of the training loss over the chord, nats) along the string "
                          "path eFCN (final) → FCN (final); a barrier separates two basins")
    out["sensitivity"] = "not applicable: barriers are measured between finished runs"
    if out["verdict"] == "reproduces":
        # Post hoc (issue 18): the rule has no control, so meeting it cannot carry the claim.
        out["reason"] = ("the pre-registered rule is met (" + out["reason"] + "), but post hoc it was found to have no "
                         "control: two FC networks trained from different seeds are also separated by a barrier along "
                         "untrained paths (Garipov et al. 2018; Draxler et al. 2018), so the barrier shows only that "
                         "the eFCN and the FCN are different networks; the book does not count this as reproduced")
        out["verdict"] = "inconclusive"
    described = []
    for (path, method), g in rows.drop(tested.index).groupby(["path", "method"], sort=True):
        stats = per_switch_time(g, "barrier", by)
        lo, hi = t_interval(stats["mean"], stats["sd"], stats["n"])
        described.append(f"{method} {path} barrier (95%): "
                         + _per_tw(stats, [f"{_fmt(a)} {_ci(b, c)}" for a, b, c in zip(stats["mean"], lo, hi)]))
    out["note"] = "described, not tested: " + "; ".join(described) if described else ""
    return out


def exactness_claim(cfg: Mapping) -> dict:
    """Claim 1, computed in float64 on this machine (no training)."""
    err = exactness(cfg["arch"], int(cfg["width"]))
    rel = max(err["fc_rel"], err["lc_rel"])
    return dict(test="computed: reproduces if the eFCN's and eLCN's logits equal the CNN's to a relative 1e-12 in "
                     "float64 (rounding, not approximation); else contradicted",
                estimate=f"max relative error of the logits: eFCN {err['fc_rel']:.1e}, eLCN {err['lc_rel']:.1e}",
                interval="deterministic (8 random inputs)", n=None, detectable="", sensitivity="",
                verdict="reproduces" if rel < 1e-12 else "contradicted",
                reason=f"largest relative error {rel:.1e} {'<' if rel < 1e-12 else '≥'} 1e-12")


def size_claim(cfg: Mapping) -> dict:
    """Claim 7, counted at the swept width and at the paper's (64) on the meta device."""
    here, paper = sizes(cfg["arch"], int(cfg["width"])), sizes(cfg["arch"], 64)
    ratio, ratio64 = here["efcn"] / here["cnn"], paper["efcn"] / paper["cnn"]
    dense = paper["elcn"] / paper["efcn"]  # the eFCN's non-zeros at embedding are the eLCN's weights
    holds = ratio64 >= LARGE and dense <= SPARSE
    return dict(test=f"computed at the paper's width 64: reproduces if the eFCN has at least {LARGE:g}× the CNN's "
                     f"parameters and at most {SPARSE:.0%} of them non-zero at embedding (our reading of \"very "
                     "large\" and \"highly sparse\": the abstract gives no number); else contradicted",
                estimate=f"eFCN / CNN parameters: {ratio:,.1f}× at w{cfg['width']} ({here['efcn']:,} / "
                         f"{here['cnn']:,}); {ratio64:,.1f}× at width 64 ({paper['efcn']:,} / {paper['cnn']:,}), "
                         f"of which at most {dense:.1%} non-zero at embedding (the eLCN's {paper['elcn']:,} weights)",
                interval="deterministic", n=None, detectable="", sensitivity="",
                verdict="reproduces" if holds else "contradicted",
                reason=f"{ratio64:,.1f}× {'≥' if ratio64 >= LARGE else '<'} {LARGE:g}×, {dense:.1%} "
                       f"{'≤' if dense <= SPARSE else '>'} {SPARSE:.0%} non-zero")


#: The scorecard's columns (see :func:`claims`).
COLUMNS = ["claim", "configuration", "abstract", "reading", "test", "estimate", "interval", "n", "detectable",
           "verdict", "arms", "reason", "sensitivity", "note", "page", "profile", "data", "hardware", "wall_time"]


def claims(frame: pd.DataFrame, provenance: pd.DataFrame, config=None, metric: str = "test_acc",
           landscape: pd.DataFrame | None = None, arm2: tuple | None = None,
           in_progress: str | None = None) -> pd.DataFrame:
    """The scorecard: one row per claim of paper.md §1 and per configuration (arch, width,
    n_train), decided by the pre-registered rules (book/preregistration.md, :data:`RULES`).

    Columns: ``abstract`` (the abstract's words, :data:`ABSTRACT`), ``reading`` (paper.md
    §1's reading, :data:`READING`), ``test`` (the rule in words), ``estimate`` (per switch
    time: the mean read-out, the last-epoch mean beside it), ``interval`` (per switch time,
    at the levels the rule uses), ``n`` (seeds: the fewest at any t_w), ``detectable`` (the
    smallest true effect the seeds detect with 80% power), ``verdict`` (:data:`VERDICTS`),
    ``reason`` (where the intervals lie), ``sensitivity`` (the verdict with diverged runs at
    chance accuracy), ``note`` (a description beside the test: the trunk CNN against chance,
    the FCN's δ, the barriers not tested), ``page`` (the book page behind the number) and
    the provenance: ``profile``, ``data``, ``hardware``, ``wall_time`` (seconds).

    ``config`` is the sweep's config (the read-out window, the number of classes; without it
    the pre-registered fraction of the frame's last epoch and 10 classes); ``landscape``
    the landscape measurements (claim 6 is "not measured" without them); ``arm2`` the
    ``(frame, provenance, config)`` of the arm that changes the learning rate at the switch
    (with its controlled CNN), optionally followed by its own ``in_progress``: claim 5 is then
    decided over both arms (:func:`both_arms`).  ``in_progress``: the campaign is still
    training (what has landed, in words): the sampled claims are *pending* (:func:`pending`).
    """
    import time

    from ..plots import hardware as this_machine

    info = describe(provenance, config)
    cfg_dict = _config_dict(config)
    window = config if run_windows(config) is not None else readout_epochs(config, frame)
    chance = 1 / {"cifar100": 100}.get(cfg_dict.get("dataset"), 10)
    rows = []
    for cfg in configurations(frame):
        sel, prov = frame[select(frame, cfg)], provenance[select(provenance, cfg)]

        def wall(roles, prov=prov):
            return float(prov.loc[prov["role"].isin(roles), "wall_time_s"].sum())

        start = time.perf_counter()
        computed = dict(hardware=this_machine(), profile="none (nothing trained)")
        one = exactness_claim(cfg)
        rows.append(dict(one, claim=1, wall_time=time.perf_counter() - start, **computed,
                         data=f"{cfg['arch']} w{cfg['width']}, random init and inputs"))
        grid = ", ".join(map(str, sorted(sel.loc[sel["switch_time"].notna(), "switch_time"].unique().astype(int))))
        rows.append(dict(not_measured(f"implemented by the sweep (needle_core.run): branches switched at {grid}",
                                      "not a claim"), claim=2, test="a protocol, not a measurable claim",
                         wall_time=wall(["cnn"])))
        rows.append(dict(pending(deviation_claim(sel, prov, window), in_progress), claim=3, wall_time=wall(["efcn"])))
        note = _learned(sel, window, metric, chance)
        switch_times = cfg_dict.get("switch_times")
        for claim in (4, 5):
            rows.append(dict(pending(accuracy_claim(sel, prov, window, claim, metric, chance, grid=switch_times),
                                     in_progress),
                             claim=claim, note=note, wall_time=wall(["efcn", "fcn" if claim == 4 else control_role(sel)])))
        if arm2 is not None:  # claim 5 again against the controlled CNN of the lr arm, then joined
            frame2, prov2, config2, in_progress2 = (*arm2, None)[:4]
            if frame2.empty:  # pre-registered but not run (yet): it cannot be left out silently
                second = dict(not_measured("no finished run in the second arm's store"), wall_time=0.0)
                info2 = dict(profile="not run", data="", hardware="")
            else:
                sel2, prov2_sel = frame2[select(frame2, cfg)], prov2[select(prov2, cfg)]
                window2 = config2 if run_windows(config2) is not None else readout_epochs(config2, frame2)
                second = pending(accuracy_claim(sel2, prov2_sel, window2, 5, metric, chance, against="cnn_control",
                                                grid=_config_dict(config2).get("switch_times")), in_progress2)
                second["wall_time"] = wall(["efcn", "cnn_control"], prov2_sel)
                info2 = describe(prov2_sel, config2)
            registered = cfg_dict.get("name") in JOINT_REGISTERED
            rows[-1] = dict(both_arms(rows[-1], second, registered), claim=5, note=note,
                            **{key: f"arm 1: {info[key]} ‖ arm 2: {info2[key]}" for key in ("profile", "data",
                                                                                            "hardware")})
        rows.append(dict(pending(landscape_claim(landscape, cfg), in_progress), claim=6, wall_time=0.0))
        start = time.perf_counter()
        rows.append(dict(size_claim(cfg), claim=7, wall_time=time.perf_counter() - start, **computed,
                         data=f"{cfg['arch']}, w{cfg['width']} and w64, counted on the meta device"))
        for row in rows[-7:]:
            row.update(configuration=label(cfg), abstract=ABSTRACT[row["claim"]], reading=READING[row["claim"]],
                       page=PAGES[row["claim"]])
            for key in ("profile", "data", "hardware"):
                row.setdefault(key, info[key])
    out = pd.DataFrame(rows).reindex(columns=COLUMNS)
    out["note"] = out["note"].fillna("")
    out["arms"] = out["arms"].astype(object).where(out["arms"].notna(), "")
    out["n"] = out["n"].astype("Int64")
    return out


#: How claim 5's two arms are read together.  Not in book/preregistration.md's first edition:
#: written after arm 1's result was seen (issue 17), so every page labels it *post hoc*.
JOINT_RULE = ("post hoc reading of the two arms (written after arm 1 was seen, not pre-registered): each arm's "
              "verdict is its own pre-registered test; when one arm has a corrected interval above 0 and the other "
              "one below 0, the claim is conflicting; an arm not measured leaves it inconclusive; otherwise the "
              "paper's protocol (arm 1) decides")


#: The editions whose pre-registration fixed :data:`JOINT_RULE` before their data.
JOINT_REGISTERED = ("converged",)


def _joint(arm1: Mapping, arm2: Mapping, key: str = "verdict") -> str:
    """Claim 5's verdict over its arms by :data:`JOINT_RULE` (post hoc): ``conflicting`` when
    the arms are significant in opposite directions, ``inconclusive`` when an arm is not
    measured, else arm 1's (the paper's protocol) verdict.  ``key`` names the verdict field
    (``recounted`` for the sensitivity line)."""
    verdicts = [arm.get(key, arm["verdict"]) for arm in (arm1, arm2)]
    if all(v == "not measured" for v in verdicts):
        return "not measured"
    if "pending" in verdicts:  # an arm still training: no joint verdict yet
        return "pending"
    if "not measured" in verdicts:
        return "inconclusive"
    sides = [arm.get("sides", {}) for arm in (arm1, arm2)] if key == "verdict" else \
        [{"reproduces": [1] if v == "reproduces" else [], "contradicted": [1] if v == "contradicted" else []}
         for v in verdicts]
    above = [bool(s.get("reproduces")) for s in sides]
    below = [bool(s.get("contradicted")) for s in sides]
    if (above[0] and below[1]) or (above[1] and below[0]):
        return "conflicting"
    return verdicts[0]


def both_arms(arm1: Mapping, arm2: Mapping, registered: bool = False) -> dict:
    """Claim 5 over the campaign's two arms, the paper's protocol first: arm 1 against the
    trunk CNN, arm 2 (learning rate changed at the switch, a deviation from the paper) against
    its controlled CNN, each decided by its own pre-registered test with its own Bonferroni
    correction; they are read together by :data:`JOINT_RULE` (post hoc, and said so).
    ``arm1`` and ``arm2`` are the scorecard fields of each arm (:func:`accuracy_claim`, with
    ``wall_time``); a field of the result gives both arms' values, labelled, and ``arms``
    the two verdicts in one line.  ``registered``: the edition's pre-registration fixed the
    joint reading before its data (the converged edition), so it is not labelled post hoc;
    its second arm trains every network at one lower lr."""
    second = "arm 2 (a lower lr for every network)" if registered else "arm 2 (lr changed at the switch)"
    arms = {"arm 1 (the paper's protocol)": arm1, second: arm2}

    def joined(key: str) -> str:
        return " ‖ ".join(f"{name}: {arm[key]}" for name, arm in arms.items() if arm.get(key))

    ns = [arm["n"] for arm in arms.values() if arm.get("n") is not None]
    verdict = _joint(arm1, arm2)
    recounted = _joint(arm1, arm2, "recounted")
    rule = ("pre-registered reading of the two arms: " + JOINT_RULE.split(": ", 1)[1]) if registered else JOINT_RULE
    return dict(test=joined("test") + " ‖ both arms: " + rule, estimate=joined("estimate"),
                interval=joined("interval"), n=min(ns) if ns else None, detectable=joined("detectable"),
                verdict=verdict, arms=f"arm 1 (paper's protocol): {arm1['verdict']} · {second}: {arm2['verdict']}",
                reason=f"arm 1 {arm1['verdict']}, arm 2 {arm2['verdict']} ‖ " + joined("reason"),
                sensitivity=f"both arms with diverged runs at chance: {recounted} ‖ " + joined("sensitivity"),
                wall_time=arm1.get("wall_time", 0.0) + arm2.get("wall_time", 0.0))


def _learned(frame: pd.DataFrame, window, metric: str, chance: float) -> str:
    """Whether the trunk CNN learned anything (its read-out against chance): without that,
    claims 4 and 5 say nothing about the paper."""
    cnn = readout(frame, metric, window)
    mean, lo, hi, n = interval(cnn.loc[cnn["role"] == "cnn", "readout"])
    if not np.isfinite(mean):
        return ""
    text = f"the trunk CNN's read-out {metric}: {mean:.3f} {_ci(lo, hi).replace('+', '')} (chance {chance:.3f})"
    if not (lo > chance if np.isfinite(lo) else mean > chance + 0.05):
        text += ": not clearly above chance, so this comparison says nothing about the paper's claim"
    return text
