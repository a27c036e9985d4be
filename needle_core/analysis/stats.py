"""Statistics over seeds: the mean, its Student-t interval (a handful of seeds: a normal quantile
would be too narrow) and the smallest effect the seeds could detect, at the pre-registered
significance level and power (book/preregistration.md).  Pure numbers: nothing here knows
the result frame.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np


#: The pre-registered significance level and power (book/preregistration.md).
ALPHA = 0.05
POWER = 0.80


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
