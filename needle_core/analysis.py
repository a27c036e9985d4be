"""Small pure functions on the tidy result frame (``needle_core.sweep.results``): final values,
intervals over seeds, paired comparisons and the claims scorecard.

The frame has one row per run × epoch × metric (× layer), with the run's spec columns (see
:meth:`needle_core.store.ResultStore.results`).  Runs of one *group* share ``arch``, ``width``,
``n_train`` and ``seed``: the trunk CNN (role ``cnn``), its branches (``efcn``/``elcn``, and
``cnn_control`` when the switch changes the learning rate) at every switch time, and the
baselines trained from scratch (``fcn``, ``lcn``).

Intervals are over seeds, with Student's t distribution (a handful of seeds: a normal
quantile would be too narrow).  Comparisons are paired seed by seed (paper.md §8): the
difference is taken within a group, then averaged.  A diverged run is never dropped
silently: :func:`final` keeps and flags it, :func:`paired` counts it (``n_diverged``) and
leaves it out of the mean, and :func:`claims` says so.

Nothing here trains anything; only :func:`exactness` and :func:`sizes` build networks.
"""
from __future__ import annotations

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

#: The abstract's claims (paper.md §1), in its words.
PAPER_CLAIMS = {
    1: "A CNN maps exactly to an equivalent FCN (eFCN): same outputs, every weight now free.",
    2: "Protocol: train the CNN for t_w epochs, embed it, then resume training in FC space.",
    3: "For all t_w, the eFCN's deviation from the CNN subspace stays small.",
    4: "For all t_w, the eFCN's final test accuracy beats a standard FCN of the same architecture "
       "trained from scratch (including t_w = 0).",
    5: "For some intermediate t_w, the eFCN beats the CNN it came from (an inverted U of accuracy "
       "against t_w).",
    6: "These are rare basins of the FC loss landscape with very good generalisation, reachable only "
       "through the CNN prior.",
    7: "The price: the eFCN is huge and sparse at embedding (hundreds of times the CNN's size).",
}

#: δ below this is "small" (claim 3): the part of the weights outside the CNN subspace is less
#: than half of their norm (an FCN trained from scratch has δ close to 1).
SMALL_DEVIATION = 0.5


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


def interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float, int]:
    """``(mean, lo, hi, n)``: the mean of the finite ``values`` and its ``level`` confidence
    interval with Student's t distribution (``n - 1`` degrees of freedom).

    ``n`` counts the finite values; with ``n = 0`` everything is NaN, with ``n = 1`` the
    interval is ``(nan, nan)`` (one value says nothing about the spread).
    """
    from scipy import stats

    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, math.nan, 1
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


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


# -- paired comparisons -----------------------------------------------------------------------
def control_role(frame: pd.DataFrame) -> str:
    """The baseline of "the eFCN beats the CNN": ``cnn_control`` when the sweep has it (the
    switch changes the learning rate), else the trunk ``cnn`` (paper.md §8)."""
    return "cnn_control" if (frame["role"] == "cnn_control").any() else "cnn"


def paired_seeds(frame: pd.DataFrame, role: str, against: str = "control", metric: str = "test_acc") -> pd.DataFrame:
    """Seed-by-seed final ``metric`` of ``role`` (a branch: ``efcn``, ``elcn``) and of its
    baseline ``against`` in the same group and, for a branch baseline, at the same switch time.

    ``against``: ``"control"`` (``cnn_control`` when present, else the trunk ``cnn``),
    ``"cnn"`` (the trunk, trained at constant settings for the whole budget),
    ``"cnn_control"``, ``"fcn"`` or ``"lcn"`` (trained from scratch: one per group, the same
    for every switch time).  One row per (configuration, switch time, seed): ``value``,
    ``baseline``, ``diff = value - baseline``, ``diverged`` (either run diverged) and
    ``against`` (the role actually used).
    """
    base_role = control_role(frame) if against == "control" else against
    if base_role not in ("cnn", "cnn_control", "fcn", "lcn", "efcn", "elcn"):
        raise ValueError(f"against={against!r}: use control, cnn, cnn_control, fcn or lcn.")
    ends = final(frame, metric)
    ends = ends[ends["layer"].isin(["", "network"])]
    mine = ends[ends["role"] == role]
    if mine.empty:
        raise ValueError(f"no {role!r} runs with metric {metric!r} in the frame (roles: "
                         f"{sorted(frame['role'].unique())}).")
    base = ends[ends["role"] == base_role]
    if base.empty:
        raise ValueError(f"no {base_role!r} runs with metric {metric!r} to compare {role!r} against.")
    on = GROUP_KEYS + (["switch_time"] if base_role in BRANCH_ROLES else [])
    base = base[on + ["value", "diverged"]].rename(columns={"value": "baseline", "diverged": "baseline_diverged"})
    out = mine[GROUP_KEYS + ["switch_time", "value", "diverged"]].merge(base, on=on, how="inner")
    out["diff"] = out["value"] - out["baseline"]
    out["diverged"] = out["diverged"] | out["baseline_diverged"]
    out["against"] = base_role
    return out.drop(columns="baseline_diverged").sort_values(CONFIG_KEYS + ["switch_time", "seed"]) \
        .reset_index(drop=True)


def paired(frame: pd.DataFrame, role: str, against: str = "control", metric: str = "test_acc",
           level: float = 0.95) -> pd.DataFrame:
    """The paired difference ``role − against`` of the final ``metric``, per configuration
    (arch, width, n_train) and switch time: ``mean``, its ``level`` t interval ``lo``/``hi``
    and ``n`` (pairs in which neither run diverged), ``n_diverged`` (pairs left out because
    a run diverged), ``role_mean``/``against_mean`` (the two means over the same pairs),
    ``against`` (the role used) and the per-seed values ``seeds`` and ``diffs`` (tuples, in
    seed order, diverged pairs included with their last measured values).  See
    :func:`paired_seeds` for ``against``.
    """
    seeds = paired_seeds(frame, role, against, metric)
    out = []
    for key, g in seeds.groupby(CONFIG_KEYS + ["switch_time"], dropna=False, sort=True):
        ok = g[~g["diverged"]]
        mean, lo, hi, n = interval(ok["diff"], level)
        out.append(dict(zip(CONFIG_KEYS + ["switch_time"], key), mean=mean, lo=lo, hi=hi, n=n,
                        n_diverged=int(g["diverged"].sum()), role_mean=float(ok["value"].mean()),
                        against_mean=float(ok["baseline"].mean()), against=g["against"].iloc[0],
                        seeds=tuple(int(s) for s in g["seed"]), diffs=tuple(float(d) for d in g["diff"])))
    return pd.DataFrame(out)


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

    from .embedding import embed
    from .models import INPUT_SHAPE, cnn

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

    from .embedding import embed
    from .models import INPUT_SHAPE, cnn

    with torch.device("meta"):
        net = cnn(arch, ch=width)
        counts = {"cnn": sum(p.numel() for p in net.parameters())}
        for kind in ("fc", "lc"):
            counts[f"e{kind}n"] = sum(p.numel() for p in embed(net, INPUT_SHAPE, kind=kind).parameters())
    return counts


# -- the scorecard ----------------------------------------------------------------------------
def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:+.{digits}f}"


def _ci(lo: float, hi: float, digits: int = 3) -> str:
    return "n/a (n < 2)" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{lo:+.{digits}f}, {hi:+.{digits}f}]"


def _status(mean: float, lo: float, n_diverged: int) -> str:
    """One switch time of a claim that a quantity is > 0: "yes" if its interval is above 0
    (and no pair diverged), "no" if its mean is ≤ 0, "undetermined" without a mean (every pair
    diverged), else "partly"."""
    if not np.isfinite(mean):
        return "undetermined"
    if mean <= 0:
        return "no"
    return "yes" if np.isfinite(lo) and lo > 0 and not n_diverged else "partly"


def _aggregate(statuses: Iterable[str], quantifier: str) -> str:
    """The verdict of a claim "for all t_w" or "for some t_w" from its per-t_w statuses."""
    s = list(statuses)
    if quantifier == "all":
        if "no" in s or all(x == "undetermined" for x in s):
            return "no"
        return "yes" if all(x == "yes" for x in s) else "partly"
    return "yes" if "yes" in s else "partly" if "partly" in s else "no"


def _pick(rows: pd.DataFrame, largest: bool) -> pd.Series:
    """The row with the largest (smallest) finite mean; the first row if no mean is finite."""
    finite = rows[np.isfinite(rows["mean"].astype(float))]
    if finite.empty:
        return rows.iloc[0]
    return finite.loc[finite["mean"].idxmax() if largest else finite["mean"].idxmin()]


DIVERGED_RULE = ("a t_w with a diverged run is at best partly; one where every pair diverged is undetermined "
                 "(undetermined everywhere: no)")


def _tw_list(rows: pd.DataFrame, digits: int = 3) -> str:
    return "; ".join(f"t_w={int(r.switch_time)}: {_fmt(r.mean, digits)} {_ci(r.lo, r.hi, digits)}"
                     + (f" ({r.n_diverged} diverged)" if r.n_diverged else "") for r in rows.itertuples())


def claims(frame: pd.DataFrame, provenance: pd.DataFrame, config=None, level: float = 0.95,
           metric: str = "test_acc") -> pd.DataFrame:
    """The scorecard: one row per claim of paper.md §1 and per configuration (arch, width,
    n_train) of the sweep, with the paper's wording (``paper``), our measurement
    (``measured``: a number, then per switch time where it depends on t_w), its ``interval``
    (``level``, t over seeds, paired by seed), ``n`` (seeds), ``reproduces`` (yes / partly /
    no / not tested) and the ``rule`` that decided it, a ``note`` (for claims 4 and 5: the
    trunk CNN's own accuracy against chance, since a CNN that learned nothing makes the
    comparison empty), and the provenance of the number: ``profile``, ``data``,
    ``hardware`` and ``wall_time`` (seconds of the runs used).

    Claims 1 and 7 are computed from needle_core directly (no training); 3, 4 and 5 from the
    sweep's final values, switch time by switch time (a switch time with a diverged run is at
    best "partly"; see :data:`DIVERGED_RULE`); 2 (the protocol) and 6 (an interpretation) are
    listed as not tested.  ``config`` is the sweep's config (profile, data set, classes).
    """
    import time

    pct = f"{level:.0%}"
    info = describe(provenance, config)
    rows = []

    def runs_of(cfg, roles):
        return provenance[select(provenance, cfg) & provenance["role"].isin(roles)]

    def add(claim, cfg, measured, interval_, n, verdict, rule, wall, hardware=None, profile=None, data=None,
            note=""):
        rows.append(dict(claim=claim, paper=PAPER_CLAIMS[claim], configuration=label(cfg), measured=measured,
                         interval=interval_, n=n, reproduces=verdict, rule=rule, note=note,
                         profile=profile or info["profile"], data=data or info["data"],
                         hardware=hardware or info["hardware"], wall_time=wall))

    from .plots import hardware as this_machine

    cfg_dict = _config_dict(config)
    classes = {"cifar100": 100}.get(cfg_dict.get("dataset"), 10) if cfg_dict else None

    def learned(cfg) -> str:
        """Whether the CNN learned anything: without that, claims 4 and 5 say nothing."""
        ends = final(frame[select(frame, cfg)], metric)
        mean, lo, hi, n = interval(ends.loc[(ends["role"] == "cnn") & ~ends["diverged"], "value"], level)
        if classes is None or not np.isfinite(mean):
            return ""
        chance = 1 / classes
        text = f"the trunk CNN's final {metric}: {mean:.3f} {_ci(lo, hi).replace('+', '')} (chance {chance:.3f})"
        if not (lo > chance if np.isfinite(lo) else mean > chance + 0.05):
            text += ": not clearly above chance, so this comparison says nothing about the paper's claim"
        return text

    for cfg in configurations(frame):
        # 1: exactness, from needle_core (no training, this machine, float64).
        start = time.perf_counter()
        err = exactness(cfg["arch"], int(cfg["width"]))
        rel = max(err["fc_rel"], err["lc_rel"])
        add(1, cfg, f"max relative error of the logits, float64: eFCN {err['fc_rel']:.1e}, eLCN {err['lc_rel']:.1e}",
            "deterministic (8 random inputs)", None, "yes" if rel < 1e-12 else "no",
            "yes if the eFCN's and eLCN's logits equal the CNN's to a relative 1e-12 in float64 (rounding, "
            "not approximation)", time.perf_counter() - start, hardware=this_machine(),
            profile="none (nothing trained)", data=f"{cfg['arch']} w{cfg['width']}, random init and inputs")

        # 2: the protocol is how the sweep runs, not a result.
        add(2, cfg, "implemented by the sweep (needle_core.run): branches switched at "
            + ", ".join(map(str, sorted(frame.loc[frame["switch_time"].notna(), "switch_time"].unique().astype(int)))),
            "", None, "not tested", "a protocol, not a measurable claim", 0.0)

        # 3: deviation at the end of training, whole network, every switch time.
        deltas = final(frame[select(frame, cfg)], "delta")
        deltas = deltas[deltas["layer"] == "network"]
        dev = deltas[deltas["role"] == "efcn"]
        if dev.empty:
            add(3, cfg, "no deviation measured (deviation=False or no eFCN)", "", 0, "not tested", "", 0.0)
        else:
            per_tw = []
            for t, g in dev.groupby("switch_time", sort=True):
                ok = g[~g["diverged"]]
                mean, lo, hi, n = interval(ok["value"], level)
                per_tw.append(dict(switch_time=t, mean=mean, lo=lo, hi=hi, n=n, n_diverged=int(g["diverged"].sum())))
            per_tw = pd.DataFrame(per_tw)
            fcn_dev = deltas[deltas["role"] == "fcn"]
            worst = _pick(per_tw, largest=True)
            statuses = [_status(SMALL_DEVIATION - r.mean, SMALL_DEVIATION - r.hi, r.n_diverged)
                        for r in per_tw.itertuples()]
            verdict = _aggregate(statuses, "all")
            measured = (f"final δ (network) of the eFCN, largest over t_w: {worst['mean']:.3f} at t_w="
                        f"{int(worst['switch_time'])}; per t_w: "
                        + "; ".join(f"t_w={int(r.switch_time)}: {r.mean:.3f}"
                                    + (f" ({r.n_diverged} diverged)" if r.n_diverged else "")
                                    for r in per_tw.itertuples())
                        + (f"; FCN from scratch: {fcn_dev['value'].mean():.3f}" if len(fcn_dev) else ""))
            add(3, cfg, measured, f"{pct} CI at t_w={int(worst['switch_time'])}: "
                + (f"[{worst['lo']:.3f}, {worst['hi']:.3f}]" if np.isfinite(worst["hi"]) else "n/a (n < 2)"),
                int(per_tw["n"].min()), verdict,
                f"small = δ < {SMALL_DEVIATION} (off-subspace norm under half the weights' norm; dead weights "
                "excluded). "
                f"yes: the {pct} upper bound is below it at every t_w; no: the mean reaches it at some t_w; "
                f"else partly; {DIVERGED_RULE}", float(runs_of(cfg, ["efcn"])["wall_time_s"].sum()))

        # 4: eFCN − FCN, paired by seed, every switch time.
        try:
            vs_fcn = paired(frame[select(frame, cfg)], "efcn", "fcn", metric, level)
        except ValueError as err:
            add(4, cfg, str(err), "", 0, "not tested", "", 0.0)
        else:
            verdict = _aggregate([_status(r.mean, r.lo, r.n_diverged) for r in vs_fcn.itertuples()], "all")
            worst = _pick(vs_fcn, largest=False)
            add(4, cfg, f"eFCN − FCN, final {metric}, smallest over t_w: {_fmt(worst['mean'])} at t_w="
                f"{int(worst['switch_time'])}; per t_w: {_tw_list(vs_fcn)}",
                f"{pct} CI at t_w={int(worst['switch_time'])}: {_ci(worst['lo'], worst['hi'])}",
                int(vs_fcn["n"].min()), verdict,
                f"paired by seed, diverged pairs counted and left out. yes: the {pct} CI is above 0 at every t_w; "
                f"no: the mean difference is ≤ 0 at some t_w; else partly; {DIVERGED_RULE}",
                float(runs_of(cfg, ["efcn", "fcn"])["wall_time_s"].sum()), note=learned(cfg))

        # 5: eFCN − control CNN, some intermediate switch time.
        try:
            vs_cnn = paired(frame[select(frame, cfg)], "efcn", "control", metric, level)
        except ValueError as err:
            add(5, cfg, str(err), "", 0, "not tested", "", 0.0)
        else:
            control = vs_cnn["against"].iloc[0]
            inner = vs_cnn[vs_cnn["switch_time"] > 0]
            if inner.empty:
                add(5, cfg, "no switch time > 0 in the sweep", "", 0, "not tested", "", 0.0)
            else:
                best = _pick(inner, largest=True)
                verdict = _aggregate([_status(r.mean, r.lo, r.n_diverged) for r in inner.itertuples()], "some")
                ends = vs_cnn.iloc[[0, -1]]["mean"]
                shape = ("inverted U (the peak is above both ends of the t_w grid)"
                         if len(vs_cnn) >= 3 and best["mean"] > ends.max()
                         and best["switch_time"] not in (vs_cnn["switch_time"].iloc[0], vs_cnn["switch_time"].iloc[-1])
                         else "no inverted U")
                name = {"cnn_control": "the controlled CNN (same checkpoint, same lr change)",
                        "cnn": "the trunk CNN (same checkpoint, same settings: the switch changes nothing "
                               "else)"}[control]
                add(5, cfg, f"eFCN − {'controlled ' if control == 'cnn_control' else ''}CNN, final {metric}, "
                    f"largest over t_w > 0: {_fmt(best['mean'])} at t_w="
                    f"{int(best['switch_time'])}; per t_w: {_tw_list(vs_cnn)}; {shape}",
                    f"{pct} CI at t_w={int(best['switch_time'])}: {_ci(best['lo'], best['hi'])}",
                    int(inner["n"].min()), verdict,
                    f"against {name}, paired by seed. yes: the {pct} CI is above 0 at some t_w > 0; "
                    "partly: the mean is > 0 at some t_w > 0 but no CI is above 0; no: the mean is ≤ 0 (or "
                    f"undetermined) at every t_w > 0; {DIVERGED_RULE}",
                    float(runs_of(cfg, ["efcn", control])["wall_time_s"].sum()), note=learned(cfg))

        # 6: an interpretation (needs the landscape / interpolation study).
        add(6, cfg, "not measured here (interpolation between solutions, needle_core.interpolate)", "", None,
            "not tested", "an interpretation; no number in this sweep tests it", 0.0)

        # 7: size at embedding, from needle_core, at the swept width and at the paper's (64).
        start = time.perf_counter()
        here = sizes(cfg["arch"], int(cfg["width"]))
        paper = sizes(cfg["arch"], 64)
        ratio, ratio64 = here["efcn"] / here["cnn"], paper["efcn"] / paper["cnn"]
        dense = paper["elcn"] / paper["efcn"]  # the eFCN's non-zeros at embedding are the eLCN's weights
        verdict = "yes" if ratio64 >= 100 and dense < 0.5 else "partly" if ratio64 >= 10 else "no"
        add(7, cfg, f"eFCN / CNN parameters: {ratio:,.1f}× at w{cfg['width']} ({here['efcn']:,} / {here['cnn']:,}); "
            f"{ratio64:,.1f}× at the paper's width 64 ({paper['efcn']:,} / {paper['cnn']:,}), of which at most "
            f"{dense:.1%} non-zero at embedding (the eLCN's {paper['elcn']:,} weights)",
            "deterministic", None, verdict,
            "at the paper's width 64. yes: ≥ 100× (\"hundreds of times\") and under half non-zero (sparse); "
            "partly: ≥ 10×; no: < 10×",
            time.perf_counter() - start, hardware=this_machine(), profile="none (nothing trained)",
            data=f"{cfg['arch']}, w{cfg['width']} and w64, counted on the meta device")
    out = pd.DataFrame(rows, columns=["claim", "paper", "configuration", "measured", "interval", "n", "reproduces",
                                      "rule", "note", "profile", "data", "hardware", "wall_time"])
    out["n"] = out["n"].astype("Int64")
    return out

