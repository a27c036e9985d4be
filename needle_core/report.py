"""What a page of the book shows besides its figures: the results it reads, its tables as HTML,
its provenance footer, and the scorecard in plain words.

A figure notebook reads like a figure script::

    page = report.load("cpu")                       # the published store, checked
    figures.switch_time(page)                       # needle_core.figures
    report.table(frame, "tab-switch-pairs", "...")  # an HTML table with stable ids
    report.footer(page)                             # provenance, folded, at the end

Tables are HTML (notebook Markdown is shown as text by this Jupyter Book), their element ids
are fixed by their key (a re-rendered page changes only where a number changed), and a wide
table shows the columns a reader needs with the rest behind a fold.  Machine details (CPU
name, wall times, code commits) appear only in :func:`footer`.  Nothing here computes a result:
the numbers come from :mod:`needle_core.analysis`.
"""
from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from . import analysis, landscape, plots
from .book import edition_page


# --- Loading a page's results ----------------------------------------------------------------

@dataclass
class Results:
    """One sweep's results as a page reads them."""
    profile: str
    root: Path
    config: object
    frame: pd.DataFrame
    runs: pd.DataFrame
    overrides: dict = field(default_factory=dict)
    progress: "Progress | None" = None  # a campaign still training (load(in_progress=True))

    @property
    def pending(self) -> str | None:
        """Why claims 3-5 have no verdict yet ("campaign in progress: ..."), or None when every
        pre-registered run has landed."""
        return self.progress.pending if self.progress else None

    @property
    def curves_pending(self) -> str | None:
        """Why claim 6 has no verdict yet ("trained curves in progress: ..."), or None when every
        curve its rule reads is measured (or the config plans none)."""
        return self.progress.curves_pending if self.progress else None

    @property
    def campaign(self) -> list[str]:
        """How far a campaign still training is, a line per part (runs, curves), [] when done."""
        p = self.progress
        return [line for line in (p.pending, p.curves_pending, p.curves_describing) if line] if p else []

    @property
    def chance(self) -> float:
        return 1 / (100 if self.config.dataset == "cifar100" else 10)

    @property
    def label(self) -> str:
        """The read-out's name, e.g. "read-out (mean of epochs 17–20)"."""
        return analysis.readout_label(self.config)

    def describe(self, runs: pd.DataFrame | None = None) -> dict:
        return analysis.describe(self.runs if runs is None else runs, self.config)

    def configurations(self) -> list[dict]:
        return analysis.configurations(self.frame)


@dataclass(frozen=True)
class Progress:
    """How much of a pre-registered campaign has landed in its store: its runs and its curve
    tasks (the trained curves of claim 6), each against what the config plans."""
    planned: int  # runs of the pre-registered config (every seed)
    finished: int
    seeds: tuple  # the pre-registered seeds
    landed: tuple  # the seeds with at least one finished run
    complete: tuple  # the seeds whose every run has landed
    curves_planned: int
    curves_finished: int
    deciding_planned: int  # the curve tasks claim 6's rule reads (landscape.DECIDING_PAIRS)
    deciding_finished: int
    endpoints_missing: int | None = None  # runs some curve task joins, not yet finished (None: unknown,
    #                                       any missing run may be one)

    @property
    def pending(self) -> str | None:
        """Why claims 3-5 have no verdict yet (runs still training), or None."""
        if self.finished >= self.planned:
            return None
        return (f"campaign in progress: {self.finished} of {self.planned} runs landed; complete seeds: "
                f"{', '.join(map(str, self.complete)) or 'none'} (of {', '.join(map(str, self.seeds))})")

    @property
    def curves_pending(self) -> str | None:
        """Why claim 6 has no verdict yet (a curve task its rule reads, or a run, still to come), or
        None.  The curves that only describe (eFCN ↔ eFCN, CNN ↔ CNN) never hold the verdict:
        once every curve the rule reads is measured, no further curve can change it, nor can a
        run that is no curve's endpoint (a seed beyond ``landscape_seeds``)."""
        runs_wait = self.pending is not None if self.endpoints_missing is None else self.endpoints_missing > 0
        if not self.curves_planned or (self.deciding_finished >= self.deciding_planned and not runs_wait):
            return None
        return (f"trained curves in progress: {self.curves_finished} of {self.curves_planned} measured "
                f"({self.deciding_finished} of the {self.deciding_planned} that claim 6's rule reads)")

    @property
    def curves_describing(self) -> str | None:
        """The curves still to be measured once claim 6's verdict is given (they only describe), or None."""
        if self.curves_pending or self.curves_finished >= self.curves_planned:
            return None
        return (f"trained curves that describe (eFCN ↔ eFCN, CNN ↔ CNN) in progress: {self.curves_finished} of "
                f"{self.curves_planned} measured; every curve claim 6's rule reads is measured")


def progress(config, root) -> Progress:
    """The tasks of ``config``'s graph (its seeds are the pre-registered ones) that ``root``
    holds: runs, and the curve tasks of its ``landscape_switch_times``."""
    from .store import ResultStore
    from .sweep import finished, graph

    store = ResultStore(root)
    tasks = graph(config)
    specs = [t.spec for t in tasks]
    runs = [s for s in specs if s.role != "curve"]
    curves = [s for s in specs if s.role == "curve"]
    done = [s for s in runs if store.is_finished(s.run)]
    endpoints = {run for t in tasks if t.spec.role == "curve" for run in t.needs}
    landed = tuple(seed for seed in config.seeds if any(s.seed == seed for s in done))
    complete = tuple(seed for seed in config.seeds if all(s in done for s in runs if s.seed == seed))
    measured = [finished(store, s) for s in curves]
    deciding = [m for s, m in zip(curves, measured) if s.pair in landscape.DECIDING_PAIRS]
    return Progress(len(runs), len(done), tuple(config.seeds), landed, complete, len(curves), sum(measured),
                    len(deciding), sum(deciding), len(endpoints - {s.run for s in done}))


def load(profile: str, results_dir=None, overrides: Mapping | None = None, train: bool = True,
         seeds: Sequence[int] | None = None, in_progress: bool = False) -> Results:
    """The sweep of ``profile`` (with ``overrides``) read from ``results_dir`` (default
    ``runs/<profile>``; fetched on Colab when it is a published store), trained first only if
    runs are missing and ``train``.

    The page shows exactly the config's seeds (``overrides={"seeds": [0, 1, 2]}`` of a store
    that has five reads three): runs of other seeds in the store are left out, and a seed
    the store lacks with ``train=False`` is refused (``ValueError``), never labelled as shown.
    ``seeds`` is refused unless it is the config's (:func:`refuse_seeds`).

    ``in_progress`` (with ``train=False``): a campaign still training is read as it stands,
    the seeds that have at least one finished run, and ``Results.progress`` counts what has
    landed against the pre-registered config; the scorecard then marks its sampled verdicts
    *pending* (:func:`needle_core.analysis.claims`)."""
    from .config import make_config
    from .notebook import results_root
    from .store import ResultStore
    from .sweep import default_root, results as sweep_results

    overrides = dict(overrides or {})
    config = make_config(profile, overrides)
    refuse_seeds(seeds, config)
    root = results_root(results_dir or default_root(profile))
    state = None
    if in_progress and not train:
        state = progress(config, root)
        if state.landed and state.landed != state.seeds:
            overrides["seeds"] = list(state.landed)
            if config.landscape_seeds is not None:  # the curves' seeds that have landed (or every landed one)
                overrides["landscape_seeds"] = [s for s in config.landscape_seeds if s in state.landed] or None
            config = make_config(profile, overrides)
    with warnings.catch_warnings():
        if state is not None and state.pending:  # counted in ``progress``, not warned
            warnings.filterwarnings("ignore", message=".* lacks .* of the config's runs")
        frame = sweep_results(profile, root, overrides, train=train)
    runs = ResultStore(root).provenance()
    wanted = set(config.seeds)
    missing = sorted(wanted - set(frame.get("seed", pd.Series(dtype=int))))
    if missing and len(frame):
        raise ValueError(f"seeds {missing} have no runs in {Path(root).as_posix()} (train={train}): this page "
                         f"would show fewer seeds than its labels say. Train them, or set overrides={{'seeds': "
                         f"{sorted(wanted - set(missing))}}}.")
    if len(frame):
        frame = frame[frame.seed.isin(wanted)].reset_index(drop=True)
        runs = runs[runs.seed.isin(wanted)].reset_index(drop=True)
    return Results(profile, Path(root), config, frame, runs, overrides, state)


def scorecard(page: Results, arm2: Results | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The scorecard of ``page``'s store, claim 5 over ``arm2`` too when given, as the scorecard
    and the Findings page both read it: ``(card, barriers, curves)``, the card of
    :func:`needle_core.analysis.claims`, the string-path landscape measurements and the trained
    curves it was decided from (either may be empty).  A campaign still training
    (``load(in_progress=True)``) gets pending verdicts."""
    barriers, tables = landscape.results(page.root), curve_tables(page, ("curves", "traces", "records"))
    curves = tables["curves"]
    card = analysis.claims(page.frame, page.runs, page.config, landscape=barriers, curves=curves,
                           curve_traces=tables["traces"], curve_records=tables["records"],
                           arm2=arm2 and (arm2.frame, arm2.runs, arm2.config, arm2.pending),
                           in_progress=page.pending, curves_in_progress=page.curves_pending,
                           landscape_seconds=lambda cfg: landscape.wall_times(page.root, cfg, tables["records"]))
    # Each claim's details live on this edition's page (the converged edition's page 3 is
    # 03_switch_time_converged, not the 20-epoch 03_switch_time).
    card["page"] = card["page"].map(lambda source: edition_page(page.profile, source))
    return card, barriers, curves


#: The readers of the trained-curve tables (:func:`curve_tables`).
CURVE_TABLES = {"curves": landscape.curve_results, "traces": landscape.curve_traces, "scans": landscape.curve_scans,
                "records": landscape.curve_records}


def curve_tables(page: Results, names: Sequence[str] = tuple(CURVE_TABLES)) -> dict[str, pd.DataFrame]:
    """The store's trained-curve tables ``names`` (of :data:`CURVE_TABLES`: ``curves``,
    ``traces``, ``scans``, ``records``), kept to the tasks ``page.config`` plans (its
    ``landscape_seeds`` and ``landscape_switch_times``): a task beyond them (curves of seeds
    added later, say) would change claim 6's seeds and control pairs, so it is left out, with a
    warning that names it."""
    tables, extra = {}, set()
    for name in names:
        reader = CURVE_TABLES[name]
        tables[name], beyond = landscape.planned_only(reader(page.root), page.config)
        extra |= set(beyond)
    if extra:
        warnings.warn(f"{len(extra)} curve task(s) in {Path(page.root).as_posix()} are not planned by its config "
                      f"(landscape_seeds, landscape_switch_times) and are left out: {', '.join(sorted(extra))}.")
    return tables


def refuse_seeds(seeds, config) -> None:
    """``ValueError`` unless ``seeds`` is None or the config's seeds: the analysis of a page
    pairs and averages every seed of the store, so a subset would be a false label."""
    if seeds is not None and sorted(seeds) != sorted(config.seeds):
        raise ValueError(f"seeds={list(seeds)}: this page analyses every seed of its sweep ({list(config.seeds)}) "
                         "and cannot show a subset. Leave seeds=None, or set overrides={'seeds': [...]} to "
                         "run (or read) a sweep of those seeds only.")


# --- Tables ------------------------------------------------------------------------------------

def _formats(frame: pd.DataFrame, digits: int, percent: Iterable[str] = ()) -> dict:
    formats = {}
    for column in frame.columns:
        kind = frame[column].dtype
        if column in percent:
            formats[column] = "{:.%d%%}" % max(digits - 2, 0)
        elif pd.api.types.is_integer_dtype(kind):
            formats[column] = "{:,}"
        elif pd.api.types.is_float_dtype(kind):
            whole = frame[column].dropna().map(float.is_integer).all()
            formats[column] = "{:,.0f}" if whole else "{:,.%df}" % digits
    return formats


def table_html(frame: pd.DataFrame, key: str, caption: str | None = None, digits: int = 3,
               formats: Mapping | None = None, na: str = "–", percent: Iterable[str] = (),
               index: bool = False) -> str:
    """``frame`` as an HTML table whose ids derive from ``key`` only (``T_<key>``): the same
    table gives the same bytes on every run."""
    style = frame.style.format(_formats(frame, digits, percent) | dict(formats or {}), na_rep=na)
    if not index:
        style = style.hide(axis="index")
    style = style.set_uuid(key).set_table_attributes('class="dataframe needle-table"')
    if caption:
        style = style.set_caption(html.escape(caption))
    return style.to_html()


def table(frame: pd.DataFrame, key: str, caption: str | None = None, show: Sequence[str] | None = None,
          fold: str = "All columns", **kwargs):
    """Display ``frame`` as a table (:func:`table_html`) in a horizontally scrolling box, showing
    only the columns ``show`` (default: all) with the full table behind a ``<details>`` fold."""
    from IPython.display import HTML, display

    main = frame if show is None else frame[list(show)]
    body = f'<div class="needle-scroll" id="{key}">{table_html(main, key, caption, **kwargs)}</div>'
    if show is not None and len(show) < frame.shape[1]:
        body += (f'<details class="needle-fold"><summary>{html.escape(fold)}</summary><div class="needle-scroll">'
                 f'{table_html(frame, key + "-all", None, **kwargs)}</div></details>')
    display(HTML(body))


# --- Provenance, at the end of a page --------------------------------------------------------

def commits(values) -> str:
    """Short commits of provenance values, '-dirty' kept."""
    return ", ".join(sorted({str(c)[:7] + ("-dirty" if str(c).endswith("-dirty") else "")
                             for c in pd.Series(values).dropna()}))


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 60 else f"{s / 60:.1f} min" if s < 3600 else f"{s / 3600:.1f} h"


def provenance_rows(results: Results | None, extra: Mapping | None = None) -> dict:
    """What produced a page: the store, its runs (by role and status), data, hardware, the
    summed training time and the code commits of the runs, then ``extra``."""
    rows = {}
    if results is not None:
        runs, info = results.runs, results.describe()
        roles = ", ".join(f"{n} {r}" for r, n in runs.get("role", pd.Series(dtype=str)).value_counts()
                          .sort_index().items())
        status = ", ".join(f"{n} {s}" for s, n in runs.get("status", pd.Series(dtype=str)).value_counts()
                           .sort_index().items())
        digests = ", ".join(sorted({str(d) for d in runs.get("config_digest", pd.Series(dtype=str)).dropna()}))
        rows = {"profile": f"{results.config.name} (config {digests or 'not recorded'})",
                "store": f"{results.root.as_posix()}: {len(runs)} runs ({roles}); {status}",
                "data": info["data"],
                "read-out": results.label,
                "hardware": info["hardware"],
                "training time": f"{_seconds(info['wall_time'])} (summed over runs)",
                "code of the runs": commits(runs.get("git_commit", []))}
        campaign = "; ".join(results.campaign)
        if campaign:
            rows["campaign"] = campaign
    return rows | dict(extra or {})


def footer(results: Results | None = None, extra: Mapping | None = None) -> None:
    """Display the page's provenance (:func:`provenance_rows`) and the versions of this
    session, folded, as the last thing on the page."""
    import platform

    import torch
    from IPython.display import HTML, display

    import needle_core

    rows = provenance_rows(results, extra) | {
        "rendered with": f"needle_core {needle_core.__version__}, torch {torch.__version__}, "
                         f"Python {platform.python_version()}"}
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in rows.items())
    display(HTML(f'<details class="needle-provenance"><summary>Provenance: what produced this page</summary>'
                 f'<dl>{items}</dl></details>'))


# --- The scorecard in plain words ------------------------------------------------------------

#: What each claim says, in a phrase (the verdict table's first column).
CLAIM_SHORT = {
    1: "A CNN is exactly an FCN (the eFCN)",
    2: "The protocol: train, embed at t_w, train on",
    3: "The eFCN stays near the CNN subspace, for every t_w",
    4: "The eFCN beats an FCN from scratch, for every t_w",
    5: "The eFCN beats its CNN, for some intermediate t_w",
    6: "The eFCN sits in a basin the FCN does not reach",
    7: "The price: the eFCN is huge and sparse",
}


def page_link(name: str) -> str:
    """``03_switch_time`` -> an HTML link "page 3" to the built page."""
    return f'<a href="{name}.html">page {int(name[:2])}</a>'


def _number(value: float, digits: int = 3) -> str:
    return f"{value:+.{digits}f}".replace("-", "−")


def _range(lo: float, hi: float, digits: int = 3) -> str:
    return f"[{_number(lo, digits)}, {_number(hi, digits)}]"


def _seeds(table: pd.DataFrame) -> str:
    n = int(table["n"].max()) if "n" in table and len(table) else 0
    return f"{n} seed{'s' if n != 1 else ''}"


def arm_name(config) -> str:
    """What an arm of claim 5 does, in words, from its config: "lr 0.1 throughout, the
    paper's protocol", "lr 0.05 throughout", "lr 0.1, then 0.01 after the switch, with a
    controlled CNN"."""
    after = getattr(config, "lr_after", None)
    if after is not None and after != config.lr:
        return f"lr {config.lr:g}, then {after:g} after the switch, with a controlled CNN"
    return f"lr {config.lr:g} throughout" + (", the paper's protocol" if config.lr == 0.1 else "")


def measured(claim: int, card_row, results: Results, arm2: Results | None = None,
             barriers: pd.DataFrame | None = None, curves: pd.DataFrame | None = None) -> str:
    """One plain sentence of what the runs measured for ``claim``, with its numbers (read-outs,
    95% intervals over seeds) computed by :mod:`needle_core.analysis`."""
    cfg = {k: getattr(card_row, k) for k in analysis.CONFIG_KEYS if hasattr(card_row, k)} or \
        results.configurations()[0]
    frame, config = results.frame, results.config
    if claim == 1:
        return f"The eFCN and the eLCN reproduce the CNN's logits in float64 ({card_row.estimate}): rounding, not approximation."
    if claim == 2:
        return f"Not a claim but the method: {card_row.estimate}."
    if claim == 7:
        return f"The {card_row.estimate}."
    if claim == 3:
        d = analysis.readout(frame, "delta", window=config)
        d = d[(d.layer == "network") & (d.role == "efcn")]
        iv = analysis.readout_intervals(d, analysis.CONFIG_KEYS + ["switch_time"])
        iv = iv[analysis.select(iv, cfg)]
        if iv.empty:
            return "No eFCN has a deviation δ in this store yet."
        text = (f"The eFCN's read-out δ is {iv['mean'].min():.3f} to {iv['mean'].max():.3f} across the "
                f"{len(iv)} switch times")
        if iv.hi.isna().all():
            return text + f" ({_seeds(iv)}: no interval yet), against the bound 0.5 (an FCN from scratch has δ ≈ 1)."
        worst = iv.loc[iv.hi.idxmax()]
        return (text + f"; the highest 95% upper bound is {worst.hi:.3f} (t_w = {worst.switch_time:g}), against the "
                       "bound 0.5 (an FCN from scratch has δ ≈ 1).")
    if claim == 4:
        p = analysis.paired(frame, "efcn", "fcn", window=config)
        p = p[analysis.select(p, cfg)].sort_values("switch_time")
        if p.empty:
            return "No eFCN has its FCN from scratch in this store yet."
        text = (f"eFCN − FCN from scratch, paired by seed: {_number(p['mean'].min())} to "
                f"{_number(p['mean'].max())} in test accuracy across the {len(p)} switch times")
        if p.lo.isna().all():
            return text + f" ({_seeds(p)}: no interval yet)."
        above = p[p.lo > 0].switch_time
        return (text + f"; the 95% interval is above 0 at {len(above)} of them (t_w = "
                       f"{', '.join(f'{t:g}' for t in above) or 'none'}), and includes 0 at t_w = "
                       f"{', '.join(f'{t:g}' for t in p[p.lo <= 0].switch_time) or 'none'}.")
    if claim == 5:
        parts = []
        for arm, res in ((1, results), (2, arm2)):
            if res is None:
                continue
            name = f"arm {arm} ({arm_name(res.config)})"
            p = analysis.paired(res.frame, "efcn", "control", window=res.config)
            grid = sorted(res.config.switch_times)  # the registered grid: its inner t_w are intermediate
            p = p[(p.switch_time > grid[0]) & (p.switch_time < grid[-1])].sort_values("switch_time")
            if p.empty:
                parts.append(f"{name}: no intermediate switch time has landed yet")
                continue
            best = p.loc[p["mean"].idxmax()]
            where = (f"95% interval {_range(best.lo, best.hi)}" if pd.notna(best.lo) else f"{_seeds(p)}: no interval yet")
            parts.append(f"{name}: eFCN − its CNN {_number(best['mean'])} at best (t_w = {best.switch_time:g}, "
                         f"{where}), {_number(p['mean'].min())} at worst")
        agree = (" Each arm's own test reproduces the claim; the registered joint rule calls it conflicting "
                 "because an arm is below its CNN at other switch times (post hoc reading in the details)."
                 if getattr(card_row, "post_hoc", "") else "")
        return "; ".join(parts) + "." + agree
    if claim == 6:
        mine = curves[analysis.select(curves, cfg)] if curves is not None and len(curves) else None
        per = landscape.curve_claim(mine)["per_tw"].dropna(subset=["tested"]) if mine is not None else None
        if per is not None and len(per):
            where = f"t_w = {per.switch_time.iloc[0]:g}" if len(per) == 1 else f"the {len(per)} switch times"
            return (f"A trained curve from the eFCN to the FCN rises {_span(per.tested, 3)} nats above the chord at "
                    f"{where}, one between two FCNs from scratch {_span(per.control, 3)}; their paired difference "
                    f"is {_signed_span(per)} (the rule's margin: 0.05).")
        if barriers is None or not len(barriers):
            planned = getattr(results.config, "landscape_switch_times", None)
            if planned and results.curves_pending:  # registered, still to be measured: say so, not "none"
                return (f"Trained curves eFCN → FCN, with their controls, pre-registered at t_w = "
                        f"{', '.join(map(str, planned))}: {results.curves_pending}.")
            return "No landscape measurements in this store."
        b = barriers[(barriers.method == "string") & (barriers.path == "efcn-fcn")] \
            if "path" in barriers and (barriers.path == "efcn-fcn").any() else barriers[barriers.method == "string"]
        means = b.groupby("switch_time").barrier.apply(lambda v: analysis.interval(v)[:3])
        lo = min(m[1] for m in means)
        return (f"The string path from the eFCN to the FCN climbs {min(m[0] for m in means):.2f} to "
                f"{max(m[0] for m in means):.2f} nats of training loss above the chord at the {len(means)} switch "
                f"times measured (lowest 95% lower bound {lo:.2f}; a barrier means > 0.05).")
    return str(card_row.estimate)


def verdict_table(card: pd.DataFrame, sentences: Mapping[int, str], key: str = "tab-verdicts") -> None:
    """The scorecard's summary: one row per claim (and configuration): the claim in a phrase, the
    verdict, what was measured in one sentence, and the page behind it.  Verdicts are whatever
    :data:`needle_core.analysis.VERDICTS` holds."""
    rows = []
    several = card.configuration.nunique() > 1
    for r in card.itertuples():
        verdict = str(r.verdict)
        where = f" ({r.configuration})" if several else ""
        # data-label: the column's name, shown before each cell where the table stacks (a phone)
        rows.append(f'<tr class="verdict-{verdict.replace(" ", "-")}"><td data-label="claim">{r.claim}</td>'
                    f"<td>{html.escape(CLAIM_SHORT.get(r.claim, str(r.reading)))}{html.escape(where)}</td>"
                    f'<td data-label="verdict"><strong>{html.escape(verdict)}</strong></td>'
                    f"<td>{html.escape(sentences.get(r.claim, ''))}</td>"
                    f'<td data-label="details">{page_link(r.page)}</td></tr>')
    from IPython.display import HTML, display

    display(HTML(f'<div class="needle-scroll" id="{key}"><table class="dataframe needle-table needle-verdicts">'
                 "<thead><tr><th>claim</th><th>the paper says</th><th>verdict</th><th>what we measured</th>"
                 f"<th>details</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"))


#: What the book calls each edition's arm-1 profile.
EDITION_NAMES = {"converged": "converged edition", "cpu": "20-epoch edition", "smoke": "smoke run"}


def editions_table(cards: Mapping[str, pd.DataFrame], key: str = "tab-editions") -> None:
    """The verdict of every claim in each edition, side by side, one row per claim: ``cards``
    maps an edition's profile to its :func:`scorecard` table; a claim judged per arm shows
    each arm's verdict under the joint one."""
    from IPython.display import HTML, display

    def cell(card, claim, label):
        rows = card[card["claim"] == claim]
        if rows.empty:
            return f'<td data-label="{html.escape(label)}">–</td>'
        parts = []
        for r in rows.itertuples():
            arms = f'<br><span class="needle-arms">{html.escape(str(r.arms))}</span>' if r.arms else ""
            where = f" ({html.escape(r.configuration)})" if rows["configuration"].nunique() > 1 else ""
            parts.append(f"<strong>{html.escape(str(r.verdict))}</strong>{where}{arms}")
        return (f'<td data-label="{html.escape(label)}" class="verdict-{str(rows.iloc[0].verdict).replace(" ", "-")}">'
                f'{"<br>".join(parts)}</td>')

    claims = sorted(set().union(*(set(c["claim"]) for c in cards.values())))
    head = "".join(f"<th>{html.escape(EDITION_NAMES.get(p, p))}</th>" for p in cards)
    body = "".join(f'<tr><td data-label="claim">{c}</td><td>{html.escape(CLAIM_SHORT.get(c, ""))}</td>'
                   + "".join(cell(card, c, EDITION_NAMES.get(p, p)) for p, card in cards.items()) + "</tr>" for c in claims)
    display(HTML(f'<div class="needle-scroll" id="{key}"><table class="dataframe needle-table needle-editions">'
                 f"<thead><tr><th>claim</th><th>the paper says</th>{head}</tr></thead><tbody>{body}</tbody>"
                 "</table></div>"))


def verdict_counts(card: pd.DataFrame) -> str:
    """"5 reproduce (claims 1, 3, 5, 6, 7), 1 inconclusive (claim 4), ..." in the order of
    :data:`needle_core.analysis.VERDICTS` (and any verdict the card has beyond them)."""
    parts = []
    for verdict in list(analysis.VERDICTS) + sorted(set(card.verdict) - set(analysis.VERDICTS)):
        claims = sorted(set(card.loc[card.verdict == verdict, "claim"]))
        if claims:
            parts.append(f"{verdict}: claim{'s' if len(claims) > 1 else ''} {', '.join(map(str, claims))}")
    return "; ".join(parts)


# --- Tables the figure pages share -----------------------------------------------------------

def paired_table(page, roles: Sequence[str], against: Sequence[str] = ("control", "fcn")) -> pd.DataFrame:
    """The paired differences of the read-outs of each role in ``roles`` against each baseline
    in ``against`` that the sweep has, one row per comparison and switch time, with a
    ``comparison`` column ("eFCN − CNN") and the per-seed differences as text."""
    present = set(page.frame.role)
    parts = []
    for role in roles:
        for base in against:
            if base != "control" and base not in present:
                continue
            table = analysis.paired(page.frame, role, base, window=page.config)
            if len(table):
                parts.append(table.assign(
                    comparison=f"{plots.LABELS[role]} − {plots.LABELS[table.against.iloc[0]]}"))
    pairs = pd.concat(parts, ignore_index=True)
    pairs["per seed"] = pairs.diffs.map(lambda d: ", ".join(f"{x:+.3f}" for x in d))
    return pairs


#: Reader's names of the analysis frames' columns.
NAMES = {"switch_time": "t_w", "role_mean": "read-out", "against_mean": "baseline read-out", "mean": "difference",
         "lo": "95% lo", "hi": "95% hi", "last": "last epoch", "n_diverged": "diverged"}


def deviation_table(table: pd.DataFrame) -> pd.DataFrame:
    """Read-out intervals of δ, δ_loc, δ_ws (one row per metric) as one row per network and
    switch time: the three means, δ's 95% interval as text and δ's mean last epoch."""
    import numpy as np

    names = {"delta": "δ", "delta_loc": "δ_loc", "delta_ws": "δ_ws"}
    wide = table.set_index(analysis.CONFIG_KEYS + ["role", "switch_time", "metric"])[["mean", "lo", "hi", "last"]] \
        .unstack("metric")
    out = pd.DataFrame({names[m]: wide[("mean", m)] for m in names}
                       | {"δ 95%": [f"[{lo:.3f}, {hi:.3f}]" if np.isfinite(hi) else "–"
                                    for lo, hi in zip(wide[("lo", "delta")], wide[("hi", "delta")])],
                          "δ last epoch": wide[("last", "delta")]}).reset_index()
    out["role"] = out.role.map(plots.LABELS)
    return out.rename(columns={"switch_time": "t_w"})


# --- Page 6: the landscape measurements of a sweep -------------------------------------------

def _points_in_words(points, several: bool) -> str:
    """Points as 'seed 0 at t_w 2, 8; seed 1 at t_w 2'."""
    groups = {}
    for p in points:
        key = (f"{analysis.label(p)}, " if several else "") + f"seed {p['seed']}"
        groups.setdefault(key, []).append(str(p["switch_time"]))
    return "; ".join(f"{key} at t_w {', '.join(ts)}" for key, ts in groups.items())


def landscape_points(page, switch_times=None, seeds=None, train: bool = True, **settings) -> dict:
    """The landscape measurements of ``page``'s store for ``switch_times`` (None: those stored,
    else the grid's first and middle one) and ``seeds`` (None: the config's), measuring the
    missing ones first when ``train`` and the checkpoints are here.  Returns the chosen
    ``switch_times``, ``seeds``, the ``scans``, ``barriers`` and ``records`` of those points,
    the ``done`` records, the points ``left`` unmeasured and a ``note`` saying why."""
    from . import landscape

    config, root = page.config, page.root
    if "fc" not in config.kinds:
        raise ValueError(f"{root} has no eFCN branches (kinds={config.kinds}).")
    grid = sorted(config.switch_times)
    if switch_times is None:
        stored = landscape.records(root)
        switch_times = sorted({int(t) for t in stored.switch_time}) or sorted({grid[0], grid[len(grid) // 2]})
    seeds = list(config.seeds) if seeds is None else list(seeds)
    if sorted(set(switch_times) - set(grid)) or sorted(set(seeds) - set(config.seeds)):
        raise ValueError(f"switch_times {switch_times} and seeds {seeds} must be among the sweep's "
                         f"{grid} and {config.seeds}.")
    todo = landscape.missing(config, root, switch_times, seeds)
    why = "train=False: nothing is measured here"
    if todo and train:
        try:
            landscape.measure(config, root, switch_times, seeds, **settings)
        except landscape.WeightsMissing as err:  # the checkpoints are not here (a clone)
            why = str(err).split(": ")[0]
    left = landscape.missing(config, root, switch_times, seeds)
    several = len(config.archs) * len(config.widths) * len(config.n_trains) > 1
    note = (f"{len(left)} point(s) not measured ({why}): {_points_in_words(left, several)}. Where the sweep "
            f"trained, measure them with: {landscape.command(config, root, switch_times, seeds)}") if left else ""

    def chosen(table):
        return table[table.seed.isin(seeds) & table.switch_time.isin(switch_times)] if len(table) else table

    scans, barriers, records = (chosen(f(root)) for f in (landscape.scans, landscape.results, landscape.records))
    done = records[(records.status == "done") & records.scanned] if len(records) else records
    first = "eval_images" in barriers and barriers["eval_images"].eq("first").any()
    return dict(switch_times=switch_times, seeds=seeds, scans=scans, barriers=barriers, records=records,
                done=done, left=left, note=note, caveat=f"Caveat: {analysis.FIRST_IMAGES}." if first else None)


def barrier_table(points: dict, configurations) -> pd.DataFrame:
    """Per configuration, switch time, path and method: the barrier's mean over seeds, its 95%
    interval, the seeds with a barrier, the diverged and missing points, the per-seed values."""
    from . import landscape

    barriers, records, seeds = points["barriers"], points["records"], points["seeds"]
    methods = sorted(set(barriers.method)) if len(barriers) else ["linear", "string"]
    rows = []
    for cfg in configurations:
        b, r = barriers[analysis.select(barriers, cfg)], records[analysis.select(records, cfg)]
        for t in points["switch_times"]:
            diverged = int((r[r.switch_time == t].status != "done").sum())
            for path, a_name, b_name in landscape.PATHS:
                for method in methods:
                    g = b[(b.switch_time == t) & (b.path == path) & (b.method == method)].sort_values("seed")
                    mean, lo, hi, n = analysis.interval(g.barrier)
                    rows.append(dict(cfg, t_w=t, path=f"{a_name} → {b_name}", method=method, mean=mean, lo=lo, hi=hi,
                                     n=n, diverged=diverged, missing=len(seeds) - g.seed.nunique() - diverged,
                                     per_seed=", ".join(f"s{s}: {x:.3f}" for s, x in zip(g.seed, g.barrier))))
    return pd.DataFrame(rows)


def settings_text(settings) -> str:
    """The distinct settings dicts of measured points or tasks, each as "key value, ..." (lists
    joined by "/"), "; "-separated: one line of a provenance footer."""
    return "; ".join(sorted({", ".join(f"{k} {'/'.join(map(str, v)) if isinstance(v, list) else v}"
                                       for k, v in s.items()) for s in settings}))


def landscape_provenance(points: dict) -> dict:
    """The footer's lines for the landscape measurements: settings, wall time, machines, code."""
    done = points["done"]
    if not len(done):
        return {"landscape": "no point measured"}
    return {"landscape points": f"{len(done)} measured (seeds {points['seeds']} × t_w {points['switch_times']}), "
                                f"{len(points['left'])} missing",
            "landscape settings": settings_text(done["settings"]),
            "landscape time": f"{_seconds(float(done.wall_time_s.sum()))} on {', '.join(sorted(set(done.device)))}",
            "code of the landscape": commits(done.git_commit)}


# --- The scorecard's details -------------------------------------------------------------------

def inline_html(text) -> str:
    """A line of Markdown (``**bold**``, ``*italic*``, ``code``) as HTML, for a table cell."""
    from markdown_it import MarkdownIt

    return "" if pd.isna(text) else MarkdownIt().renderInline(str(text))


#: The rule of each sampled claim, in a phrase (book/preregistration.md has the full text; claim 6's
#: is in its details).
RULES = {
    3: "small if the 95% interval of δ lies below 0.5 at every switch time",
    4: "holds if the 95% interval of eFCN − FCN lies above 0 at every switch time",
    5: "each arm holds if, at some intermediate switch time, the Bonferroni-corrected interval of eFCN − its CNN "
       "lies above 0; how the two arms are read together is in the claim's details",
}

#: Columns of the claims frame that the summary shows; every other column goes into the details.
_SHOWN = {"claim", "configuration", "abstract", "reading", "verdict", "page", "reason"}


def claim_details(card: pd.DataFrame, key: str = "claim") -> None:
    """One fold per claim (and configuration) with every column of the claims frame but those
    the summary shows: the test, estimates, intervals, seeds, detectable effect, sensitivity,
    note, provenance, and any column :func:`needle_core.analysis.claims` gains.  Each fold's
    id is ``<key>-<claim>`` (a second card on one page needs its own ``key``)."""
    from IPython.display import HTML, display

    several = card.configuration.nunique() > 1
    blocks = []
    for r in card.to_dict("records"):
        rows = "".join(f"<dt>{html.escape(str(k).replace('_', ' '))}</dt><dd>{html.escape(str(v)).replace(' ‖ ', '<br>')}</dd>"
                       for k, v in r.items() if k not in _SHOWN and k not in ("wall_time", "hardware")
                       and v is not None and not (isinstance(v, float) and pd.isna(v)) and str(v) != "")
        where = f" ({html.escape(str(r['configuration']))})" if several else ""
        blocks.append(f'<details class="needle-claim" id="{key}-{r["claim"]}"><summary>Claim {r["claim"]}{where}: '
                      f'<strong>{html.escape(str(r["verdict"]))}</strong>: {html.escape(str(r.get("reason", "")))}'
                      f"</summary><dl>{rows}</dl></details>")
    display(HTML("".join(blocks)))


#: The claims whose tests read the runs of every seed: an amendment that adds seeds changes these
#: only (claim 6 reads the curves of ``landscape_seeds``, which stay the registered ones).
SEEDED_CLAIMS = (3, 4, 5)


def seed_list(seeds) -> str:
    """Seeds in words: "0-2" for a run of consecutive seeds, "3 and 4", else "0, 2, 5"."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return " and ".join(map(str, seeds)) if len(seeds) == 2 else ", ".join(map(str, seeds))


def amendment_reading(card: pd.DataFrame, amended_card: pd.DataFrame, registered: Results,
                      amended: Results) -> str:
    """The amendment's reading beside the registered verdicts, in words (Markdown): the same
    tests over the amended config's seeds (``amended``, its card ``amended_card``) against the
    registered ones (``registered``, ``card``).  While a run of the amendment is missing it
    says how far it is and gives no verdict (reading the seeds that have landed would be
    optional stopping); then each sampled claim's verdict, with the registered one beside it
    where they differ."""
    if amended.progress is None:  # without it a half-trained seed would be read as if complete
        raise ValueError("the amended reading needs its progress: load it with report.load(..., train=False, "
                         "in_progress=True).")
    kept, grown = tuple(registered.config.seeds), amended.progress.seeds
    added = sorted(set(grown) - set(kept))
    if not added or not set(kept) <= set(grown):
        raise ValueError(f"an amendment must read every registered seed and more: seeds {list(grown)} against the "
                         f"registered {list(kept)}; give amendment={{'seeds': [...]}} accordingly.")
    head = (f"Seeds {seed_list(added)} of arm 1 were added by an amendment written after the verdicts on seeds "
            f"{seed_list(kept)} had been seen (the pre-registration's last section). Adding seeds after an "
            "inconclusive result is optional stopping, so the registered verdicts stand and this reading is "
            "shown beside them, never in their place.")
    curves = getattr(amended.config, "landscape_seeds", None)
    if curves is not None and getattr(amended.config, "landscape_switch_times", None):
        head += f" Claim 6 stays on the trained curves of seeds {seed_list(curves)}."
    if amended.pending:
        return f"{head} It is still training ({amended.pending}); its reading is given once every run has landed."
    mine = amended_card.set_index("claim").verdict
    theirs = card.set_index("claim").verdict
    claims = [c for c in SEEDED_CLAIMS if c in mine.index]
    parts = [f"claim {c}: **{mine[c]}**" + (f" (registered: {theirs[c]})" if mine[c] != theirs.get(c) else "")
             for c in claims]
    differ = [c for c in claims if mine[c] != theirs.get(c)]
    tail = (f"It differs from the registered verdict on claim{'s' if len(differ) > 1 else ''} "
            f"{', '.join(map(str, differ))}." if differ else "It agrees with the registered verdict on every claim.")
    return (f"{head} Over seeds {seed_list(grown)}, by the same tests at the same levels: "
            f"{'; '.join(parts)}. {tail} These seeds include the ones already seen, and were added because "
            "their result was inconclusive, so the tests' error rates are not the nominal ones: a description "
            "with intervals, not a calibrated verdict.")


def claims_in_words(card: pd.DataFrame) -> None:
    """The table of each claim in the abstract's words and in ours (Markdown rendered)."""
    from IPython.display import HTML, display

    rows = "".join(f"<tr><td>{r.claim}</td><td>{inline_html(r.abstract)}</td><td>{inline_html(r.reading)}</td></tr>"
                   for r in card.drop_duplicates("claim").itertuples())
    display(HTML('<div class="needle-scroll" id="tab-claims-words"><table class="dataframe needle-table">'
                 "<thead><tr><th>claim</th><th>the abstract (verbatim)</th><th>our reading</th></tr></thead>"
                 f"<tbody>{rows}</tbody></table></div>"))


def claims_provenance(card: pd.DataFrame) -> dict:
    """The footer's line per claim: profile, data, hardware, training time (computed claims:
    none, they run when the page is rendered)."""
    out = {}
    for r in card.itertuples():
        trained = str(r.profile).startswith("none")
        doing = "measuring the landscape" if r.claim == 6 else "training"  # claim 6 trains paths, not runs
        out[f"claim {r.claim}"] = (f"{r.profile}; {r.data}; {r.hardware}"
                                   + ("" if trained else f"; {_seconds(float(r.wall_time))} of {doing}"))
    return out


# --- The Findings page: numbers to glue into prose -------------------------------------------

def findings(page: Results, arm2: Results | None, barriers: pd.DataFrame | None, card: pd.DataFrame) -> dict:
    """The numbers the Findings page states, by key (floats; strings for switch-time lists and
    verdicts), each computed from the stores by :mod:`needle_core.analysis`."""
    f, cfg = page.frame, page.config
    out = {}
    ends = analysis.readout(f, "test_acc", window=cfg)
    acc = analysis.readout_intervals(ends, analysis.CONFIG_KEYS + ["role", "switch_time"])
    for role in ("cnn", "fcn"):
        row = acc[acc.role == role].iloc[0]
        out |= {f"{role}-acc": float(row["mean"]), f"{role}-lo": float(row.lo), f"{role}-hi": float(row.hi)}
    out["seeds"] = len(cfg.seeds)
    out["n-train"] = max(n for n in cfg.n_trains if n is not None)
    out["epochs"] = cfg.epochs
    out["width"] = cfg.widths[0]
    out["n-tw"] = len(cfg.switch_times)
    vs_fcn = analysis.paired(f, "efcn", "fcn", window=cfg).sort_values("switch_time")
    out |= {"fcn-gain-min": float(vs_fcn["mean"].min()), "fcn-gain-max": float(vs_fcn["mean"].max()),
            "fcn-gain-tw-max": float(vs_fcn.loc[vs_fcn["mean"].idxmax(), "switch_time"]),
            "fcn-gain-clear": ", ".join(f"{t:g}" for t in vs_fcn[vs_fcn.lo > 0].switch_time) or "none",
            "fcn-gain-unclear": ", ".join(f"{t:g}" for t in vs_fcn[vs_fcn.lo <= 0].switch_time) or "none"}
    vs_cnn = analysis.paired(f, "efcn", "control", window=cfg)
    mid = vs_cnn[vs_cnn.switch_time.isin(sorted(cfg.switch_times)[1:-1])].sort_values("switch_time")
    out |= {"arm1-min": float(mid["mean"].min()), "arm1-max": float(mid["mean"].max()),
            "arm1-below": ", ".join(f"{t:g}" for t in mid[mid.hi < 0].switch_time) or "none"}
    last = vs_cnn.sort_values("switch_time").iloc[-1]
    out |= {"arm1-last": float(last["mean"]), "arm1-last-tw": float(last.switch_time)}
    if arm2 is not None:
        p2 = analysis.paired(arm2.frame, "efcn", "control", window=arm2.config).sort_values("switch_time")
        for i, r in enumerate(p2.itertuples()):
            out |= {f"arm2-tw{i}": float(r.switch_time), f"arm2-d{i}": float(r.mean), f"arm2-lo{i}": float(r.lo),
                    f"arm2-hi{i}": float(r.hi)}
        out["arm2-seeds"] = len(arm2.config.seeds)
        out["arm2-lr"] = float(arm2.config.lr_after)
    d = analysis.readout(f, "delta", window=cfg)
    dn = analysis.readout_intervals(d[d.layer == "network"], analysis.CONFIG_KEYS + ["role", "switch_time"])
    e = dn[dn.role == "efcn"]
    out |= {"delta-min": float(e["mean"].min()), "delta-max": float(e["mean"].max()), "delta-hi": float(e.hi.max()),
            "delta-fcn": float(dn[dn.role == "fcn"]["mean"].iloc[0])}
    if barriers is not None and len(barriers):
        s = barriers[barriers.method == "string"]
        per = lambda path: s[s.path == path].groupby("switch_time").barrier.mean()  # noqa: E731
        out |= {"barrier-min": float(per("efcn-fcn").min()), "barrier-max": float(per("efcn-fcn").max()),
                "barrier-cnn-max": float(per("cnn-efcn").max())}
    for r in card.itertuples():
        out[f"verdict-{r.claim}"] = str(r.verdict)
    paper = analysis.sizes(cfg.archs[0], 64)
    out |= {"size-ratio": paper["efcn"] / paper["cnn"], "size-dense": 100 * paper["elcn"] / paper["efcn"]}
    return out


def _times(values) -> str:
    """Switch times as words: "49, 151" (sorted), or "none"."""
    return ", ".join(f"{t:g}" for t in sorted(values)) or "none"


def _span(values, digits: int) -> str:
    """A range in words: "1.32 to 1.84"; "0.000 (all 9)" where every value rounds alike; one
    number for one value; "none" without any."""
    values = pd.Series(values, dtype=float).dropna()
    if values.empty:
        return "none"
    low, high = f"{values.min():.{digits}f}", f"{values.max():.{digits}f}"
    if len(values) == 1:
        return low
    return f"{low} (all {len(values)})" if low == high else f"{low} to {high}"


def _signed_span(frame: pd.DataFrame) -> str:
    """A paired difference's range over switch times in words, "−0.115 to +0.027"; "+0.000 (all 3)"
    where every value rounds alike ("none" if empty)."""
    means = frame["mean"].dropna()
    if means.empty:
        return "none"
    low, high = _number(means.min()), _number(means.max())
    if len(means) == 1:
        return low
    return f"{low} (all {len(means)})" if low == high else f"{low} to {high}"


def _arm_numbers(res: Results, tag: str) -> dict:
    """One arm's numbers for the converged Findings page, keys prefixed ``tag``: lr, seeds
    (registered, and landed while the campaign trains), trunks at 0.99 training accuracy; the
    FC networks' convergence, divergence and spikes (diverged runs included); the eFCN against
    the FCN from scratch per t_w (95% intervals: claim 4's rule), and against its CNN at the
    intermediate t_w at the level of claim 5's test (Bonferroni over them); the read-outs of
    the trunk and the FCN.  Diverged pairs are left out (and counted on the scorecard)."""
    f, cfg, runs = res.frame, res.config, res.runs
    conv = analysis.convergence(f, cfg, runs, largest_switch_time=max(cfg.switch_times))
    spiked = set(analysis.spikes(f, analysis.SPIKE_RISE).query("spiked").run)
    trunk, fc = conv[conv.role == "cnn"], conv[conv.role != "cnn"]
    acc = analysis.readout_intervals(analysis.readout(f, "test_acc", window=cfg),
                                     analysis.CONFIG_KEYS + ["role", "switch_time"])
    registered = res.progress.seeds if res.progress else tuple(cfg.seeds)
    seeds = f"{len(registered)}" + (f" ({len(cfg.seeds)} landed so far)" if len(cfg.seeds) < len(registered) else "")
    out = {"lr": float(cfg.lr), "seeds": seeds, "n-tw": len(cfg.switch_times),
           "trunks": len(trunk), "trunks-fit": int((trunk.reached <= max(cfg.switch_times)).sum()),
           "fc-runs": len(fc), "fc-converged": int(fc.converged.sum()), "fc-diverged": int(fc.diverged.sum()),
           "fc-spiked": len(spiked & set(fc.run)),
           "cnn-acc": _span(acc[acc.role == "cnn"]["mean"], 3), "fcn-acc": _span(acc[acc.role == "fcn"]["mean"], 3)}
    vs_fcn = analysis.paired(f, "efcn", "fcn", window=cfg, provenance=runs)
    best = vs_fcn.dropna(subset=["mean"]).sort_values("mean").tail(1)
    out |= {"fcn-range": _signed_span(vs_fcn), "fcn-best-tw": _times(best.switch_time),
            "fcn-above": _times(vs_fcn[vs_fcn.lo > 0].switch_time),
            "fcn-below": _times(vs_fcn[vs_fcn.hi < 0].switch_time)}
    grid = sorted(cfg.switch_times)
    mid = [t for t in grid if 0 < t < grid[-1]]  # claim 5's intermediate t_w, as its test reads them
    level = 1 - 0.05 / max(len(mid), 1)
    vs_cnn = analysis.paired(f, "efcn", "control", level=level, window=cfg, provenance=runs)
    vs_cnn = vs_cnn[vs_cnn.switch_time.isin(mid)]
    out |= {"cnn-level": f"{100 * level:g}%", "cnn-range": _signed_span(vs_cnn),
            "cnn-above": _times(vs_cnn[vs_cnn.lo > 0].switch_time),
            "cnn-below": _times(vs_cnn[vs_cnn.hi < 0].switch_time)}
    return {f"{tag}-{key}": value for key, value in out.items()}


def findings_converged(page: Results, arm2: Results | None, card: pd.DataFrame, curves: pd.DataFrame) -> dict:
    """The numbers the converged edition's Findings page states, by key (one configuration:
    the edition's): each arm's (:func:`_arm_numbers`, ``arm1-``/``arm2-``; none of ``arm2-``
    without a second arm), the eFCN's deviation δ in arm 1 per t_w, the barriers of the trained
    curves and of the paths that describe them, and every claim's verdict, with claim 5's
    post hoc reading as a sentence ("" where there is none)."""
    cfg = page.config
    out = {"width": cfg.widths[0], "n-train": max((n for n in cfg.n_trains if n is not None), default=50_000),
           "epochs": cfg.epochs, "fc-epochs": cfg.fc_epochs or cfg.epochs, **_arm_numbers(page, "arm1"),
           **(_arm_numbers(arm2, "arm2") if arm2 else {})}
    d = analysis.readout(page.frame, "delta", window=cfg)
    dn = analysis.readout_intervals(d[d.layer == "network"], analysis.CONFIG_KEYS + ["role", "switch_time"])
    e = dn[dn.role == "efcn"].dropna(subset=["mean"])
    out |= {"delta-range": _span(e["mean"], 3), "delta-fcn": _span(dn[dn.role == "fcn"]["mean"], 3),
            "delta-largest-tw": _times(e.nlargest(1, "mean").switch_time),
            "delta-smallest-tw": _times(e.nsmallest(1, "mean").switch_time),
            "delta-below": _times(e[e.hi < analysis.SMALL_DEVIATION].switch_time)}
    out["curve-acc-describing"] = "No curve that only describes has been measured yet."  # until one is
    out |= {"curve-images": cfg.landscape_n_train, "curve-weights": f"{analysis.sizes(cfg.archs[0], cfg.widths[0])['efcn'] / 1e6:.1f}"}
    if curves is not None and len(curves):
        for pair in ("efcn-fcn", "fcn-fcn"):
            for method in landscape.CURVE_METHODS:  # nats; 3 decimals for the trained curve, whose barrier can be 0
                values = curves.loc[(curves.pair == pair) & (curves.method == method), "barrier"]
                out[f"{pair}-{method}"] = _span(values, 3 if method == "curve" else 2)
        trained = curves[curves.method == "curve"]
        lost = landscape.accuracy_lost(curves)
        deciding = lost.pair.isin(landscape.DECIDING_PAIRS)
        out |= {"curves": int(trained.pair.isin(landscape.DECIDING_PAIRS).sum()),
                "curve-acc-drop": float(lost.loc[deciding, "max"].max())}

        def barrier_span(r):
            b = trained.loc[(trained.pair == r.pair) & (trained.switch_time.isna() if pd.isna(r.switch_time)
                                                        else trained.switch_time == r.switch_time), "barrier"]
            return _span(b, 3)

        described = [f"{r.mean:.3f} " + (f"[{r.lo:.3f}, {r.hi:.3f}]".replace("-", "−") if pd.notna(r.lo) else
                                          "(one pair: no interval)") + " along "
                     f"{analysis.PAIR_LABELS.get(r.pair, r.pair)}"
                     + ("" if pd.isna(r.switch_time) else f" at t_w = {int(r.switch_time)}")
                     + f" (n = {r.n}, barrier {barrier_span(r)} nats)" for r in lost[~deciding].itertuples()]
        if described:
            out["curve-acc-describing"] = ("On the curves that only describe, the test accuracy lost below the worse "
                                           "end (mean over the pairs of seeds, 95% t-interval) is "
                                           + "; ".join(described) + ".")
    for r in card.itertuples():
        out[f"verdict-{r.claim}"] = str(r.verdict)
    reading = str(card.loc[card.claim == 5, "post_hoc"].iloc[0])
    out["post-hoc-5"] = f"The scorecard adds a reading, {reading}" if reading else ""
    return out


def glue_all(values: Mapping, prefix: str = "f-") -> None:
    """Glue every value under ``prefix + key`` for the page's prose: numbers as numbers
    (``{glue:text}`f-cnn-acc:.3f```), text as Markdown (``{glue:md}`f-verdict-4```)."""
    from IPython.display import Markdown
    from myst_nb import glue

    for key, value in values.items():
        glue(prefix + key, value if isinstance(value, (int, float)) else Markdown(str(value)), display=False)


# --- Page 5: eLCN against eFCN ---------------------------------------------------------------

#: The three paired comparisons of page 5 (first network, baseline).
COMPARISONS = {"eLCN − control": ("elcn", "control"), "eFCN − control": ("efcn", "control"),
               "eFCN − eLCN": ("efcn", "elcn")}


def per_seed_table(page) -> pd.DataFrame:
    """One row per trunk seed and switch time: the read-outs of the eLCN, the eFCN, their
    control and the FCN, and the three paired differences of :data:`COMPARISONS`."""
    key = analysis.GROUP_KEYS + ["switch_time"]
    rows, window = page.frame, page.config
    seeds = {name: analysis.paired_seeds(rows, a, b, window=window) for name, (a, b) in COMPARISONS.items()}
    fcn_pairs = analysis.paired_seeds(rows, "efcn", "fcn", window=window)
    out = (seeds["eLCN − control"][key + ["value", "baseline"]].rename(columns={"value": "eLCN", "baseline": "control"})
           .merge(seeds["eFCN − control"][key + ["value"]].rename(columns={"value": "eFCN"}), on=key, how="outer")
           .merge(fcn_pairs[key + ["baseline"]].rename(columns={"baseline": "FCN"}), on=key, how="outer"))
    for name, frame in seeds.items():
        out = out.merge(frame[key + ["diff"]].rename(columns={"diff": name}), on=key, how="outer")
    diverged = pd.concat([f[key + ["diverged"]] for f in seeds.values()]).groupby(key)["diverged"].any()
    return out.merge(diverged.reset_index(), on=key, how="left")


def paired_summary(page) -> pd.DataFrame:
    """:func:`needle_core.analysis.paired` of every comparison of :data:`COMPARISONS`."""
    return pd.concat([analysis.paired(page.frame, a, b, window=page.config).assign(comparison=name)
                      for name, (a, b) in COMPARISONS.items()], ignore_index=True)


def deviation_readouts(page, roles=("efcn", "elcn")) -> pd.DataFrame:
    """Each run's read-out of δ, δ_loc and δ_ws, per layer, for ``roles``."""
    dev = pd.concat([analysis.readout(page.frame, m, window=page.config).assign(metric=m)
                     for m in ("delta", "delta_loc", "delta_ws")])
    return dev[dev.role.isin(list(roles))]


def delta_shares(dev: pd.DataFrame) -> pd.DataFrame:
    """For the whole network, seed by seed then over seeds: the eFCN's δ, the locality share of
    its squared deviation δ_loc²/δ², the eLCN's δ_ws and the ratio of the two δ_ws (read-out and
    last epoch)."""
    net = dev[dev.layer == "network"].set_index(analysis.GROUP_KEYS + ["switch_time", "role", "metric"])[
        ["readout", "last"]].unstack(["role", "metric"])
    quantities = {"eFCN δ": lambda v: v["efcn", "delta"],
                  "eFCN δ_loc²/δ²": lambda v: v["efcn", "delta_loc"] ** 2 / v["efcn", "delta"] ** 2,
                  "eLCN δ_ws": lambda v: v["elcn", "delta_ws"],
                  "eFCN δ_ws / eLCN δ_ws": lambda v: v["efcn", "delta_ws"] / v["elcn", "delta_ws"]}
    shares = pd.concat([pd.DataFrame({"readout": f(net["readout"]), "last": f(net["last"])}).assign(quantity=name)
                        for name, f in quantities.items()]).reset_index()
    share = analysis.readout_intervals(shares, analysis.CONFIG_KEYS + ["switch_time", "quantity"])
    wide = share.pivot_table(index="switch_time", columns="quantity", values=["mean", "last"])
    out = pd.DataFrame({"t_w": wide.index})
    for name in quantities:
        out[name] = wide[("mean", name)].to_numpy()
        out[f"{name} (last epoch)"] = wide[("last", name)].to_numpy()
    return out


# --- Page 7: the switch against the training-set size ----------------------------------------

def ntrain_grid(profile: str, overrides: Mapping, n_trains=None, switch_times=None, fixed_switch_time=None,
                kind: str = "fc") -> dict:
    """Page 7's sweep: the profile with ``n_trains`` (None: [250, 500] for smoke, else a quarter,
    a half and all of the profile's training set), ``switch_times`` (None: the grid's first and
    middle one) and one kind of branch; ``fixed_switch_time`` must be one of them."""
    from .config import make_config

    base = make_config(profile, dict(overrides))
    if n_trains is None:
        if profile == "smoke":
            n_trains = [250, 500]
        else:
            full = {"cifar10": 50_000, "cifar100": 50_000}.get(base.dataset)
            largest = max((n for n in base.n_trains if n is not None), default=full)
            if largest is None:
                raise ValueError(f"give n_trains explicitly for dataset {base.dataset!r}.")
            step = 100 if base.dataset == "cifar100" else 10  # whole classes
            n_trains = [largest // 4 // step * step, largest // 2 // step * step,
                        None if None in base.n_trains else largest]
    if switch_times is None:
        grid = sorted(base.switch_times)
        switch_times = sorted({grid[0], grid[len(grid) // 2]})
    fixed_switch_time = max(switch_times) if fixed_switch_time is None else fixed_switch_time
    if fixed_switch_time not in switch_times:
        raise ValueError(f"fixed_switch_time={fixed_switch_time} is not among {switch_times}.")
    return dict(n_trains=n_trains, switch_times=switch_times, fixed_switch_time=fixed_switch_time,
                role={"fc": "efcn", "lc": "elcn"}[kind],
                overrides={**overrides, "n_trains": n_trains, "switch_times": switch_times, "kinds": [kind]})


def ntrain_table(acc: pd.DataFrame, labels: Mapping) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The read-outs by network (rows) and training-set size (columns): the long table (with a
    ``network`` column) and the wide one for the page."""
    table = acc.assign(network=acc.role.map(labels) + acc.switch_time.map(lambda t: "" if pd.isna(t) else f" t_w={t:g}"))
    table = table.assign(size=table.n_train.map(lambda n: "all" if pd.isna(n) else f"{int(n):,}"))
    wide = table.pivot_table(index=["arch", "width", "network"], columns="size", values=["mean", "last"], sort=False)
    sizes = list(dict.fromkeys(table["size"]))
    out = pd.DataFrame(index=wide.index)
    for size in sizes:
        out[f"n_train {size}"] = wide[("mean", size)]
        out[f"n_train {size} (last epoch)"] = wide[("last", size)]
    return table, out.reset_index()


def same_trunks(page, profile: str, overrides: Mapping) -> None:
    """Print whether the trunk CNNs of ``page`` have the same last-epoch test accuracy as in the
    profile's own store (``runs/<profile>``) where both have them: an exactness check."""
    from .store import ResultStore
    from .sweep import default_root

    main_store = ResultStore(default_root(profile))
    main = main_store.results() if main_store.finished_runs() and not overrides else pd.DataFrame()
    if len(main):
        main_cnn = analysis.final(main, "test_acc").query("role == 'cnn'")
        here_cnn = analysis.final(page.frame, "test_acc").query("role == 'cnn'")
        same = here_cnn.merge(main_cnn, on=analysis.GROUP_KEYS, suffixes=("", "_main"))
        print(f"{len(same)} trunk(s) in both stores; identical last-epoch test accuracy: "
              f"{bool((same.value == same.value_main).all())}")
    else:
        print(f"no finished runs in {default_root(profile)} to compare with")


# --- Page 1: the embedding -------------------------------------------------------------------

def embedding_errors(cnn, efcn, elcn, seed: int, n_inputs: int, device) -> pd.DataFrame:
    """The largest |difference| from the CNN's logits of the eFCN, the eLCN and to_cnn(eFCN) on
    ``n_inputs`` random inputs, absolute and relative to the largest |logit|, in float32 and
    float64 (the networks are put back to float32)."""
    import torch

    import needle_core
    from .models import INPUT_SHAPE

    def errors(dtype):
        x = torch.randn(n_inputs, *INPUT_SHAPE, generator=torch.Generator().manual_seed(seed), dtype=dtype).to(device)
        nets = {"eFCN": efcn, "eLCN": elcn, "to_cnn(eFCN)": needle_core.to_cnn(efcn)}
        out = {}
        with torch.no_grad():
            reference = cnn.to(dtype)(x)
            for name, net in nets.items():
                diff = (net.to(dtype)(x) - reference).abs().max().item()
                out[name] = {"max abs error": diff, "max rel error": diff / reference.abs().max().item()}
        return pd.DataFrame(out).T

    table = pd.concat({"float32": errors(torch.float32), "float64": errors(torch.float64)}, axis=1)
    for net in (cnn, efcn, elcn):
        net.float()
    return table


def embedding_sizes(cnn, efcn, elcn) -> tuple[pd.DataFrame, dict]:
    """Per layer with weights and network: parameters, non-zero, dead share, size relative to the
    CNN's layer and P (copies of each kernel weight in the eFCN); and P per embedded layer."""
    import numpy as np
    import torch

    import needle_core

    def count(module):
        params = list(module.parameters())
        embedded = isinstance(module, needle_core.EmbeddedConv)
        return {"weights": sum(p.numel() for p in params),
                "non-zero": sum(int(torch.count_nonzero(p)) for p in params),
                "dead": module.dead_count() if embedded else 0}

    nets = {"CNN": cnn, "eFCN": efcn, "eLCN": elcn}
    layers = [name for name, m in cnn.named_modules() if next(m.parameters(recurse=False), None) is not None]
    sizes = pd.DataFrame([{"layer": name, "network": label, **count(net.get_submodule(name))}
                          for name in layers for label, net in nets.items()])
    totals = sizes.groupby("network", sort=False).sum(numeric_only=True)
    sizes = pd.concat([sizes, totals.reset_index().assign(layer="total")])
    cnn_weights = sizes[sizes.network == "CNN"].set_index("layer")["weights"]
    copies = {name: int(np.prod(layer.geometry.out_hw)) for name, layer in needle_core.embedded_layers(efcn)}
    sizes = sizes.assign(**{"dead": sizes["dead"] / sizes["weights"],
                            "× CNN": sizes["weights"] / sizes["layer"].map(cnn_weights),
                            "P": sizes["layer"].map(copies)}).set_index(["layer", "network"])
    return sizes, copies


# --- Page 6b: trained curves ---------------------------------------------------------------------

def _curve_key(prefix: str, cfg) -> str:
    return f"{prefix}-{analysis.label(cfg).replace(' ', '-').replace(',', '')}"  # stable ids


def curve_rule(page, curves: pd.DataFrame, traces: pd.DataFrame) -> None:
    """Claim 6's pre-registered test per tested t_w (the store's ``landscape_switch_times``):
    the tested and control curve barriers, their paired difference d over seeds with its 95%
    and Bonferroni intervals, then the verdict (pending while curves are still to come; "not
    measured" for a configuration with no curve yet)."""
    times = page.config.landscape_switch_times or None
    for cfg in page.configurations():
        rows = curves[analysis.select(curves, cfg)] if len(curves) else curves
        per = landscape.curve_claim(rows, switch_times=times)["per_tw"].rename(columns={
            "switch_time": "t_w", "tested": "eFCN → FCN", "control": "FCN ↔ FCN", "mean": "d", "lo": "95% lo",
            "hi": "95% hi", "lo_corr": "Bonferroni lo", "hi_corr": "Bonferroni hi"})
        nats = ["eFCN → FCN", "FCN ↔ FCN", "d", "95% lo", "95% hi", "Bonferroni lo", "Bonferroni hi"]
        table(per[["t_w", "n", *nats]], _curve_key("tab-curve-rule", cfg), formats={c: "{:.3f}" for c in nats},
              caption=f"Claim 6's test, {analysis.label(cfg)}: curve barriers (nats, mean over the seeds with both) and "
              "their paired difference d; n: seeds with a tested curve and a control")
        six = analysis.curve_barrier_claim(rows, cfg, traces, times) or analysis.not_measured(
            "no trained curve of this configuration in the store")
        six = analysis.pending(six, page.curves_pending, planned=bool(times))
        print(f"Claim 6 by trained curves ({analysis.label(cfg)}): {six['verdict']}: {six['reason']}.")


#: The columns of :func:`curve_tasks`.
CURVE_TASK_COLUMNS = ["pair", "seeds", "t_w", "status", *landscape.CURVE_METHODS, "test acc (ends)",
                      "test acc (lowest)", "curve steps", "stopped by the rule", "minutes"]


def curve_tasks(curves: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """One row per curve task the store records (one configuration's, or several: select
    first), measured or not: its pair, seeds and t_w, its status ("done", or "endpoint_diverged":
    an endpoint has no basin, nothing to measure), the barrier of each path (nats), the test
    accuracy at both ends and its lowest along the trained curve, the curve's SGD steps,
    whether the convergence rule stopped it ("no: budget" when the step budget did), and the
    task's wall time (minutes)."""
    if records.empty:
        return pd.DataFrame(columns=CURVE_TASK_COLUMNS)
    keys = landscape.KEYS
    fill = {"switch_time": -1}  # control pairs have no t_w: a key that joins
    rec = records.fillna(fill).reindex(columns=keys + ["status", "timing", "wall_time_s"])
    c = curves.fillna(fill) if len(curves) else pd.DataFrame(columns=keys + ["method", "barrier"])
    wide = c.pivot(index=keys, columns="method", values="barrier").reset_index() if len(c) else c[keys]
    acc = c.loc[c["method"] == "curve", keys + ["test_acc_a", "test_acc_b", "test_acc_min"]] if len(c) else None
    out = rec.merge(wide, on=keys, how="left", validate="one_to_one")
    if acc is not None:
        out = out.merge(acc, on=keys, how="left", validate="one_to_one")

    def timing(t, key):
        return t.get(key) if isinstance(t, dict) else None

    stopped = {True: "yes", False: "no: budget", None: ""}
    return pd.DataFrame({
        "pair": out["pair"].map(analysis.PAIR_LABELS),
        "seeds": [f"{a}" if a == b else f"{a}–{b}" for a, b in zip(out["seed"], out["other"])],
        "t_w": out["switch_time"].map(lambda t: "" if t < 0 else int(t)),
        "status": out["status"],
        **{m: out[m] if m in out else float("nan") for m in landscape.CURVE_METHODS},
        "test acc (ends)": [f"{a:.3f} / {b:.3f}" if pd.notna(a) else "" for a, b in
                            zip(out.get("test_acc_a", [None] * len(out)), out.get("test_acc_b", [None] * len(out)))],
        "test acc (lowest)": out["test_acc_min"] if "test_acc_min" in out else float("nan"),
        "curve steps": out["timing"].map(lambda t: timing(t, "curve_steps")),
        "stopped by the rule": out["timing"].map(lambda t: stopped[timing(t, "curve_stopped_by_rule")]),
        "minutes": out["wall_time_s"] / 60}, columns=CURVE_TASK_COLUMNS)


def curve_task_table(page, curves: pd.DataFrame, records: pd.DataFrame) -> None:
    """Display :func:`curve_tasks` per configuration (barriers to 3 decimals: a barrier of 0 is
    a measured 0.000), with the tasks that could not be measured counted under it."""
    for cfg in page.configurations():
        mine = records[analysis.select(records, cfg)] if len(records) else records
        tasks = curve_tasks(curves[analysis.select(curves, cfg)] if len(curves) else curves, mine)
        table(tasks, _curve_key("tab-curve-tasks", cfg),
              f"Every curve task, {analysis.label(cfg)}: barriers (nats above the chord), test accuracy, steps and cost",
              show=["pair", "seeds", "t_w", "status", "linear", "curve", "test acc (lowest)", "minutes"],
              formats={m: "{:.3f}" for m in landscape.CURVE_METHODS} | {"minutes": "{:.1f}"})
        lost = tasks[tasks["status"] != "done"]
        if len(lost):
            print(f"{len(lost)} task(s) with nothing to measure (an endpoint diverged): "
                  + ", ".join(f"{p} {s}" + (f" t_w={t}" if t != "" else "") for p, s, t in
                              zip(lost["pair"], lost["seeds"], lost["t_w"]))
                  + ". The rule's n at that t_w counts the seeds left.")


def curve_accuracy_table(page, curves: pd.DataFrame) -> None:
    """Display :func:`needle_core.landscape.accuracy_lost` per configuration: the test accuracy
    the trained curves lose below their worse end, per pair and t_w (description)."""
    for cfg in page.configurations():
        lost = landscape.accuracy_lost(curves[analysis.select(curves, cfg)] if len(curves) else curves)
        lost = lost.assign(pair=lost["pair"].map(analysis.PAIR_LABELS),
                           switch_time=lost["switch_time"].map(lambda t: "" if pd.isna(t) else int(t)))
        table(lost.rename(columns={"switch_time": "t_w", "lo": "95% lo", "hi": "95% hi"}),
              _curve_key("tab-curve-accuracy", cfg),
              f"Test accuracy lost along the trained curves, {analysis.label(cfg)}: worse end minus lowest along the "
              "curve (fraction of the test images); mean over the tasks (one per seed or pair of seeds), its 95% "
              "t-interval and the largest; description, not a test",
              formats={c: "{:.3f}" for c in ("mean", "95% lo", "95% hi", "max")})


def curve_provenance(records: pd.DataFrame, planned: int | None = None) -> dict:
    """The footer's lines for the curve tasks: how many (by status), their settings, time,
    machines, code."""
    done = records[records["status"] == "done"] if len(records) else records
    if not len(records):
        return {"trained curves": "none measured" + (f" of {planned} planned" if planned else "")}
    other = records.loc[records["status"] != "done", "status"].value_counts().sort_index()
    counts = f"{len(done)} measured" + "".join(f", {n} {s}" for s, n in other.items())
    return {"trained curves": counts + (f" of {planned} planned" if planned else ""),
            "curve settings": settings_text(done["settings"]) or "–",
            "curve time": f"{_seconds(float(records['wall_time_s'].fillna(0).sum()))} on "
                          f"{', '.join(sorted(set(records['device'].dropna())))}",
            "code of the curves": commits(records["git_commit"])}


# --- Page 2: did each run flatten? -----------------------------------------------------------------

def convergence_table(page) -> pd.DataFrame:
    """Per configuration, role and t_w: the runs, how many converged by the pre-registered rule
    (:func:`needle_core.analysis.convergence`: flat across the read-out window; a trunk also at
    0.99 training accuracy at the largest t_w), how many diverged, the mean |change| of the
    training accuracy across the read-out window, and each seed's change (fold; for a trunk also
    its training accuracy at the largest t_w and the first epoch it reached 0.99)."""
    runs = analysis.convergence(page.frame, page.config, page.runs, max(page.config.switch_times, default=None))
    rows = []
    for key, g in runs.groupby(analysis.CONFIG_KEYS + ["role", runs["switch_time"].fillna(-1)], sort=True,
                               dropna=False):  # n_train None: the whole training set
        *cfg, role, t = key
        g = g.sort_values("seed")

        def seed(r):
            if r.diverged:
                return f"s{r.seed}: diverged"
            first = "never" if pd.isna(r.reached) else f"first at epoch {int(r.reached)}"
            trunk = (f" (at the largest t_w {r.at_largest:.3f}; ≥ {analysis.TRUNK_ACCURACY}: {first})"
                     if r.role == "cnn" else "")
            return f"s{r.seed}: {r.change:+.3f}{trunk}"

        rows.append(dict(zip(analysis.CONFIG_KEYS, cfg), role=plots.LABELS.get(role, role),
                         t_w=None if t == -1 else int(t), runs=len(g), converged=int(g["converged"].sum()),
                         diverged=int(g["diverged"].sum()), change=float(g["change"].abs().mean()),
                         per_seed=", ".join(seed(r) for r in g.itertuples())))
    return pd.DataFrame(rows)


def convergence_section(page) -> None:
    """Display :func:`convergence_table` with a one-line count of the converged runs."""
    table_ = convergence_table(page)
    table(table_.rename(columns={"change": "mean |change|", "per_seed": "change per seed"}), "tab-convergence",
          f"Did each run converge? Training accuracy changing by less than {analysis.FLAT} between the first and "
          f"last evaluation of its read-out window (a trunk also at {analysis.TRUNK_ACCURACY} or more at the largest "
          f"t_w); {page.label}",
          show=["role", "t_w", "runs", "converged", "diverged", "mean |change|"],
          formats={"t_w": "{:.0f}", "mean |change|": "{:.3f}"})
    print(f"{int(table_['converged'].sum())} of {int(table_['runs'].sum())} runs converged by the rule; "
          f"{int(table_['diverged'].sum())} diverged.")
