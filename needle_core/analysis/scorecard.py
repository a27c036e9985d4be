"""The scorecard: one row per claim and configuration, with the abstract's words, our reading,
the test, the numbers, the verdict and the provenance (:func:`claims`), and the post hoc
reading of claim 5 over the campaign's two arms (:func:`both_arms`, :data:`JOINT_RULE`).
"""
from __future__ import annotations

from typing import Callable, Mapping

import pandas as pd

from .comparisons import control_role
from .per_claim import (_learned, accuracy_claim, curve_barrier_claim, deviation_claim, exactness_claim,
                        landscape_claim, size_claim)
from .provenance import _config_dict, describe
from .readouts import configurations, label, readout_epochs, run_windows, select
from .rules import not_measured, pending


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

#: The book page behind each claim's number (claim 6: 06_curves where the store plans trained curves).
PAGES = {1: "01_embedding", 2: "02_training_curves", 3: "04_deviation", 4: "03_switch_time", 5: "03_switch_time",
         6: "06_landscape", 7: "01_embedding"}


#: The scorecard's columns (see :func:`claims`).
COLUMNS = ["claim", "configuration", "abstract", "reading", "test", "estimate", "interval", "n", "detectable",
           "verdict", "arms", "reason", "post_hoc", "sensitivity", "note", "page", "profile", "data", "hardware", "wall_time"]


def claims(frame: pd.DataFrame, provenance: pd.DataFrame, config=None, metric: str = "test_acc",
           landscape: pd.DataFrame | None = None, arm2: tuple | None = None,
           curves: pd.DataFrame | None = None, curve_traces: pd.DataFrame | None = None,
           curve_records: pd.DataFrame | None = None, in_progress: str | None = None, curves_in_progress: str | None = None,
           landscape_seconds: Callable[[dict], dict] | None = None) -> pd.DataFrame:
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
    decided over both arms (:func:`both_arms`).  ``curves``, ``curve_traces`` and
    ``curve_records``: the trained curves of the store (:func:`needle_core.landscape.curve_results`,
    ``curve_traces``, ``curve_records``: the last counts the tasks whose endpoint diverged):
    claim 6 is then decided by the curves' rule, else by the string rule on ``landscape``.
    ``curves_in_progress``: its trained curves are still being measured (claim 6 pending).
    ``in_progress``: the campaign is still
    training (what has landed, in words): the sampled claims are *pending* (:func:`pending`).
    ``landscape_seconds``: a configuration's :func:`needle_core.landscape.wall_times`, claim
    6's measuring time (the curves' when they decide it, else the string's).
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
        if arm2 is not None:  # claim 5 again in the second arm, then joined
            frame2, prov2, config2, in_progress2 = (*arm2, None)[:4]
            if frame2.empty:  # pre-registered but not run (yet): it cannot be left out silently
                second = dict(pending(not_measured("no finished run in the second arm's store"), in_progress2),
                              wall_time=0.0)
                info2 = dict(profile="not run", data="", hardware="")
            else:
                sel2, prov2_sel = frame2[select(frame2, cfg)], prov2[select(prov2, cfg)]
                window2 = config2 if run_windows(config2) is not None else readout_epochs(config2, frame2)
                # Its baseline: the controlled CNN where the arm changes the lr at the switch (never the
                # constant-lr trunk instead), else its own trunk (an arm at one lower lr throughout).
                cfg2 = _config_dict(config2)
                base = "cnn_control" if cfg2.get("lr_after") not in (None, cfg2.get("lr")) else "cnn"
                second = pending(accuracy_claim(sel2, prov2_sel, window2, 5, metric, chance, against=base,
                                                grid=cfg2.get("switch_times")), in_progress2)
                second["wall_time"] = wall(["efcn", base], prov2_sel)
                info2 = describe(prov2_sel, config2)
            registered = cfg_dict.get("name") in JOINT_REGISTERED
            rows[-1] = dict(both_arms(rows[-1], second, registered), claim=5, note=note,
                            **{key: f"arm 1: {info[key]} ‖ arm 2: {info2[key]}" for key in ("profile", "data",
                                                                                            "hardware")})
        planned = cfg_dict.get("landscape_switch_times") or []  # the curves' t_w, fixed before any curve
        six = curve_barrier_claim(curves, cfg, curve_traces, planned or None, curve_records)
        rows.append(dict(pending(six or landscape_claim(landscape, cfg), curves_in_progress, planned=bool(planned)),
                         claim=6, page="06_curves" if planned or six else PAGES[6], wall_time=(landscape_seconds(cfg) if landscape_seconds else {}).get(
                             "curve" if six else "string", 0.0)))
        start = time.perf_counter()
        rows.append(dict(size_claim(cfg), claim=7, wall_time=time.perf_counter() - start, **computed,
                         data=f"{cfg['arch']}, w{cfg['width']} and w64, counted on the meta device"))
        for row in rows[-7:]:
            row.update(configuration=label(cfg), abstract=ABSTRACT[row["claim"]], reading=READING[row["claim"]],
                       page=row.get("page") or PAGES[row["claim"]])
            for key in ("profile", "data", "hardware"):
                row.setdefault(key, info[key])
    out = pd.DataFrame(rows).reindex(columns=COLUMNS)
    out["note"] = out["note"].fillna("")
    out["post_hoc"] = out["post_hoc"].fillna("")
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


def _where_arms_conflict(arm1: Mapping, arm2: Mapping, verdict: str) -> str:
    """A reading written on 2026-12-06 after arm 2 of the converged edition was seen, so
    labelled *post hoc* wherever it is shown (the registered verdict stands beside it): when
    the joint rule says conflicting although each arm's own test reproduces the claim, and no
    switch time has one arm's corrected interval above 0 and the other's below, the conflict
    lies between switch times, not between the protocols.  "" in every other case."""
    if verdict != "conflicting" or not all(arm.get("sides", {}).get("reproduces") for arm in (arm1, arm2)):
        return ""
    above, below = ([set(arm["sides"].get(side) or []) for arm in (arm1, arm2)] for side in ("reproduces", "contradicted"))
    if above[0] & below[1] or above[1] & below[0]:  # opposite directions at one t_w: a conflict between the arms
        return ""

    def at(arm: Mapping, side: str) -> str:
        return ", ".join(map(str, arm["sides"].get(side) or [])) or "none"

    below = "; ".join(f"arm {i} at t_w = {at(arm, 'contradicted')}" for i, arm in enumerate((arm1, arm2), 1)
                      if arm["sides"].get("contradicted"))
    return ("post hoc (written after the data were seen; the verdict is the registered one): each arm's own test "
            f"reproduces the claim, the eFCN beating its CNN at t_w = {at(arm1, 'reproduces')} in arm 1 and at "
            f"t_w = {at(arm2, 'reproduces')} in arm 2. The joint rule reads as a conflict the corrected intervals "
            f"below 0 ({below}): they lie at other switch times, which a claim about *some* intermediate t_w "
            "allows: the arms do not point in opposite directions at the switch times where the claim holds.")


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
                post_hoc=_where_arms_conflict(arm1, arm2, verdict),
                reason=f"arm 1 {arm1['verdict']}, arm 2 {arm2['verdict']} ‖ " + joined("reason"),
                sensitivity=f"both arms with diverged runs at chance: {recounted} ‖ " + joined("sensitivity"),
                wall_time=arm1.get("wall_time", 0.0) + arm2.get("wall_time", 0.0))
