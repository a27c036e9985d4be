"""The pre-registered verdict rules (book/preregistration.md) and how they decide: a
:class:`Rule` puts a quantity above or below a threshold at all or some switch times, and
is symmetric (*reproduces*, *contradicted* or *inconclusive*, Bonferroni-corrected where a
claim is about "some" t_w); the sensitivity lines (diverged runs at chance, loss spikes);
and the fields of a claim that gets no verdict (*pending*, *not measured*).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from .readouts import BRANCH_ROLES
from .stats import ALPHA, detectable, t_interval


#: δ below this is "small" (claim 3): the part of the weights outside the CNN subspace is less
#: than half of their norm (an FCN trained from scratch has δ close to 1).
SMALL_DEVIATION = 0.5
#: A loss barrier (nats, training loss) above this separates two basins (claim 6).
BARRIER = 0.05


#: The verdicts a claim can get.  Sampled claims (3-6): reproduces / contradicted /
#: inconclusive, or "not measured" when the profile has no data for it; 1 and 7 are computed
#: (reproduces / contradicted); 2 is the protocol.
VERDICTS = ("reproduces", "contradicted", "conflicting", "inconclusive", "pending", "not measured", "not a claim")


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


def pending(out: dict, why: str | None, planned: bool = True) -> dict:
    """A sampled claim of a campaign still training (``why``: what has landed, e.g.
    :attr:`needle_core.report.Results.pending`): no verdict until every pre-registered run has
    landed, since deciding on a partial sample would be optional stopping; the interim reading
    is kept in ``reason``, labelled as such.  A claim "not measured" yet is pending too when
    the campaign ``planned`` its measurement (False: a measurement the profile never makes
    stays "not measured").  ``out`` unchanged when ``why`` is None or the claim is not sampled."""
    if not why or out["verdict"] == "not a claim" or (out["verdict"] == "not measured" and not planned):
        return out
    interim = ("too little measured yet for an interim reading" if out["verdict"] == "not measured"
               else f"interim reading, not a verdict: {out['verdict']} ({out['reason']})")
    return dict(out, verdict="pending", recounted="pending",
                reason=f"{why}: the pre-registered test decides once every run has landed; {interim}")


def not_measured(why: str, verdict: str = "not measured") -> dict:
    """The scorecard fields of a claim this profile has no data for (never a verdict)."""
    return dict(test="", estimate=why, interval="", n=None, detectable="", verdict=verdict, reason=why,
                sensitivity="")
