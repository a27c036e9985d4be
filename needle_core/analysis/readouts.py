"""A run's number: its value at the last epoch it was measured (:func:`final`) and its
*read-out*, the mean of its evaluations over the last 20% of the budget (:func:`readout`,
:func:`readout_epochs`); the configurations of a frame; and the read-outs summarised over
seeds, per switch time.  A diverged run is kept and flagged, never dropped.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .stats import interval, spread, t_interval


#: Columns that identify a configuration (a group without its seed).
CONFIG_KEYS = ["arch", "width", "n_train"]
#: Columns that identify a group of runs sharing one trunk.
GROUP_KEYS = CONFIG_KEYS + ["seed"]
#: Roles that branch off a trunk at a switch time.
BRANCH_ROLES = ("efcn", "elcn", "cnn_control")


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
    rows = window_rows(frame, metric, window)
    window_mean = rows.groupby(["run", "layer"])["value"].agg(readout="mean", evals="count").reset_index()
    out = ends.merge(window_mean, on=["run", "layer"], how="left")
    out["evals"] = out["evals"].fillna(0).astype(int)
    out.loc[out["diverged"], "readout"] = np.nan
    return out


def window_rows(frame: pd.DataFrame, metric: str, window=None) -> pd.DataFrame:
    """The rows of ``metric`` inside each run's read-out window (:func:`readout_epochs` of
    ``window``, or each run's own window when the config gives FC runs a budget of their own)."""
    rows = frame[frame["metric"] == metric]
    per_run = run_windows(window)
    if per_run is None:
        return rows[rows["epoch"].isin(readout_epochs(window, frame))]
    start = [None if pd.isna(t) else int(t) for t in rows["switch_time"]]  # role and t_w say which window
    windows = {key: set(per_run.run_readout_epochs(*key)) for key in set(zip(rows["role"], start))}
    return rows[[e in windows[key] for key, e in zip(zip(rows["role"], start), rows["epoch"])]]


#: The pre-registered convergence rule (converged edition): training accuracy changing by less
#: than FLAT between the first and the last evaluation of the read-out window; the trunk CNN must
#: also reach TRUNK_ACCURACY before the largest switch time.
FLAT = 0.01
TRUNK_ACCURACY = 0.99


def convergence(frame: pd.DataFrame, window=None, provenance: pd.DataFrame | None = None,
                largest_switch_time: int | None = None) -> pd.DataFrame:
    """Whether each run converged, by the pre-registered rule.  One row per run, :func:`final`'s
    columns (``diverged`` included) and: ``start`` and ``end``, its training accuracy at the
    first and last evaluation of its read-out window; ``change`` = end − start; ``flat``
    (|change| < :data:`FLAT`, never for a diverged run); for the trunk CNN, ``reached``: the
    first epoch at which its training accuracy is at least :data:`TRUNK_ACCURACY` (NaN if never)
    and ``at_largest``: its training accuracy at ``largest_switch_time`` (default: the frame's
    largest switch time); ``converged``: flat, and for a trunk, at least TRUNK_ACCURACY at the
    largest switch time.  A trunk is evaluated at the switch times, so "before t_w" can only be
    read as "by the evaluation at t_w": ``reached`` says when.  Accuracies as fractions."""
    ends = final(frame, "train_acc", provenance).drop(columns=["epoch", "value"])
    rows = window_rows(frame, "train_acc", window).sort_values("epoch", kind="stable")
    first_last = rows.groupby("run")["value"].agg(start="first", end="last", evals="count").reset_index()
    out = ends.merge(first_last, on="run", how="left")
    out["evals"] = out["evals"].fillna(0).astype(int)
    out["change"] = out["end"] - out["start"]
    out["flat"] = ~out["diverged"] & (out["evals"] >= 2) & (out["change"].abs() < FLAT)
    train = frame[(frame["metric"] == "train_acc") & (frame["role"] == "cnn")]
    if largest_switch_time is None:
        times = frame["switch_time"].dropna()
        largest_switch_time = int(times.max()) if len(times) else None
    at = train[train["epoch"] == largest_switch_time].groupby("run")["value"].first()
    reached = train[train["value"] >= TRUNK_ACCURACY].groupby("run")["epoch"].min()
    out["at_largest"] = out["run"].map(at)
    out["reached"] = out["run"].map(reached)
    trunk = out["role"] == "cnn"
    out["converged"] = out["flat"] & (~trunk | (out["at_largest"] >= TRUNK_ACCURACY))
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
