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

One module per thing it decides; each imports only from the ones above it:

- :mod:`~needle_core.analysis.stats`: how sure the seeds make us (mean, t interval, the
  smallest detectable effect) at the pre-registered ``ALPHA`` and ``POWER``.
- :mod:`~needle_core.analysis.readouts`: which number a run contributes (its last value,
  its read-out window) and which runs form a configuration; summaries over seeds.
- :mod:`~needle_core.analysis.comparisons`: what a branch is compared against, seed by seed
  (:func:`control_role`, :func:`paired`).
- :mod:`~needle_core.analysis.provenance`: what produced a result, in words (:func:`describe`).
- :mod:`~needle_core.analysis.rules`: what the pre-registered rules conclude from the
  intervals (:class:`Rule`, :data:`RULES`, :func:`decide`), the sensitivity lines (diverged
  runs, :func:`spikes`) and when there is no verdict (:func:`pending`, :func:`not_measured`).
- :mod:`~needle_core.analysis.per_claim`: each claim's verdict on its own evidence
  (:func:`exactness_claim`, :func:`deviation_claim`, :func:`accuracy_claim`,
  :func:`landscape_claim`, :func:`size_claim`).
- :mod:`~needle_core.analysis.scorecard`: the scorecard that assembles them
  (:func:`claims`) and the reading of claim 5 over two arms (:func:`both_arms`).

Every name is re-exported here: ``analysis.paired``, ``analysis.claims`` and so on.
"""
from .stats import ALPHA, POWER, detectable, interval, spread, t_interval
from .readouts import (BRANCH_ROLES, CONFIG_KEYS, FLAT, GROUP_KEYS, TRUNK_ACCURACY, configurations, convergence, epoch_span, final,
                       label, over_seeds, per_switch_time, readout, readout_epochs, readout_intervals, readout_label,
                       run_windows, select, window_rows)
from .comparisons import control_role, paired, paired_seeds
from .provenance import dataset_label, describe
from .rules import (BARRIER, RULES, SMALL_DEVIATION, SPIKE_RISE, VERDICTS, Rule, decide, not_measured, pending,
                    sampled_verdict, spikes)
from .per_claim import (FIRST_IMAGES, LARGE, OLD_DEVIATION, PAIR_LABELS, SPARSE, _learned, accuracy_claim, curve_barrier_claim, deviation_claim,
                        exactness, exactness_claim, landscape_claim, size_claim, sizes)
from .scorecard import (ABSTRACT, ABSTRACT_QUOTE, COLUMNS, JOINT_REGISTERED, JOINT_RULE, PAGES, READING, both_arms,
                        claims)

__all__ = ["ALPHA", "POWER", "detectable", "interval", "spread", "t_interval",
           "BRANCH_ROLES", "CONFIG_KEYS", "GROUP_KEYS", "configurations", "epoch_span", "final", "label", "over_seeds",
           "per_switch_time", "readout", "readout_epochs", "readout_intervals", "readout_label", "run_windows", "select",
           "FLAT", "TRUNK_ACCURACY", "convergence", "window_rows",
           "control_role", "paired", "paired_seeds",
           "dataset_label", "describe",
           "BARRIER", "RULES", "SMALL_DEVIATION", "SPIKE_RISE", "VERDICTS", "Rule", "decide", "not_measured", "pending",
           "sampled_verdict", "spikes",
           "FIRST_IMAGES", "LARGE", "OLD_DEVIATION", "PAIR_LABELS", "SPARSE", "accuracy_claim", "curve_barrier_claim", "deviation_claim", "exactness",
           "exactness_claim", "landscape_claim",
           "size_claim", "sizes",
           "ABSTRACT", "ABSTRACT_QUOTE", "COLUMNS", "JOINT_REGISTERED", "JOINT_RULE", "PAGES", "READING", "both_arms",
           "claims"]
