"""Paired comparisons (paper.md §8): a branch's read-out against its baseline (the control
CNN, the trunk, or a network from scratch), seed by seed within a group, then averaged over
seeds with a t interval; a pair with a diverged run is counted and left out of the mean.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .readouts import BRANCH_ROLES, CONFIG_KEYS, GROUP_KEYS, per_switch_time, readout
from .stats import t_interval


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
