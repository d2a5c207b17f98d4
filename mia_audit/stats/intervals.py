"""Confidence intervals shared by the audit and the slices: Clopper-Pearson, percentile, Wald.

- Clopper & Pearson, "The use of confidence or fiducial limits illustrated in the case of the binomial",
  Biometrika 26 (1934): the exact interval of a binomial proportion, from Beta quantiles. One
  implementation, vectorised over success counts (:func:`clopper_pearson_lower` /
  :func:`clopper_pearson_upper` at a one-sided tail) with :func:`clopper_pearson` as the two-sided scalar form.
- Percentile interval of bootstrap replicates (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993).
- Wald interval estimate ± z·SE clipped to [0, 1] (used with DeLong's AUC variance, see ``level_counts``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from mia_audit.stats.validation import check_confidence

__all__ = [
    "clopper_pearson",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "percentile_interval",
    "wald_interval",
]


def clopper_pearson_lower(*, successes, trials: int, tail: float) -> np.ndarray:
    """Lower Clopper-Pearson bounds Beta(tail; x, n - x + 1) for every count x (0 at x = 0).

    ``tail`` is the one-sided level, (1 - confidence) / 2 for a two-sided interval. Beta quantiles are
    costly, so each distinct count is evaluated once.
    """
    distinct, where = np.unique(np.asarray(successes, dtype=np.float64), return_inverse=True)
    bound = np.zeros_like(distinct)
    positive = distinct > 0
    x = distinct[positive]
    bound[positive] = special.betaincinv(x, trials - x + 1.0, tail)
    return bound[where.reshape(-1)]


def clopper_pearson_upper(*, successes, trials: int, tail: float) -> np.ndarray:
    """Upper Clopper-Pearson bounds Beta(1 - tail; x + 1, n - x) for every count x (1 at x = n)."""
    distinct, where = np.unique(np.asarray(successes, dtype=np.float64), return_inverse=True)
    bound = np.ones_like(distinct)
    short = distinct < trials
    x = distinct[short]
    bound[short] = special.betaincinv(x + 1.0, trials - x, 1.0 - tail)
    return bound[where.reshape(-1)]


def clopper_pearson(*, successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided Clopper-Pearson interval for a binomial proportion.

    Lower = Beta(a/2; x, n - x + 1) quantile, upper = Beta(1 - a/2; x + 1, n - x) quantile with
    a = 1 - confidence; the lower bound is 0 at x = 0 and the upper bound is 1 at x = n. At x = 0 the upper
    bound is exactly 1 - (a/2)^(1/n) (about 3.69/n at 95%; the one-sided 95% "rule of three" bound is
    about 3/n).
    """
    confidence = check_confidence(confidence)
    x, n = int(successes), int(trials)
    if x != successes or n != trials:
        raise ValueError("successes and trials must be integers")
    if n < 1 or not 0 <= x <= n:
        raise ValueError(f"need trials >= 1 and 0 <= successes <= trials, got {x}/{n}")
    tail = (1.0 - confidence) / 2.0
    lower = clopper_pearson_lower(successes=np.array([x]), trials=n, tail=tail)
    upper = clopper_pearson_upper(successes=np.array([x]), trials=n, tail=tail)
    return float(lower[0]), float(upper[0])


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The (1 - confidence)/2 and (1 + confidence)/2 quantiles of bootstrap replicates."""
    tail = (1.0 - confidence) / 2.0
    lower, upper = np.quantile(values, [tail, 1.0 - tail])
    return float(lower), float(upper)


def wald_interval(estimate: float, variance: float, confidence: float) -> tuple[float, float]:
    """estimate ± z·√variance, clipped to [0, 1]."""
    half = float(special.ndtri(0.5 + confidence / 2.0)) * math.sqrt(max(variance, 0.0))
    return max(0.0, estimate - half), min(1.0, estimate + half)
