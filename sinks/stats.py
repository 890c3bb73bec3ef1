"""The analyst's statistics in Python: the same formulas as the ``experiment_report`` view.

For notebooks and for checking the view: both are tested against scipy on the same counts. Choices
(documented once here and in ``migrations/0004_experiment_report.sql``):

- conversion rate: converting units / units, a binomial proportion; 95% **Wald** interval
  ``p +- 1.96 * sqrt(p (1 - p) / n)`` clipped to [0, 1] (the seed simulator prints the same with 2 SE);
- lift: ``p_t / p_c - 1`` against the control, 95% CI by the **delta method**;
- p-value: two-sided **pooled two-proportion z-test**, ``erfc(|z| / sqrt 2)``;
- sample-ratio mismatch: chi-square goodness of fit against the weights, ``k - 1`` degrees of
  freedom; the survival function has a closed form for integer dof (erfc plus a finite series),
  which is also what the SQL view evaluates.

    >>> round(wald_interval(95, 490).half_width * 100, 2)
    3.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["Z95", "Interval", "chi2_sf", "relative_lift", "srm_p_value", "two_proportion_p_value", "wald_interval"]

Z95 = 1.959963984540054
"""The standard normal's 97.5% quantile: a two-sided 95% interval."""


class Interval(NamedTuple):
    """An estimate with its confidence interval."""

    estimate: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def wald_interval(successes: int, trials: int, *, z: float = Z95, clip: bool = True) -> Interval:
    """Rate and Wald interval; ``clip`` keeps it inside [0, 1] (the view clips; ``+-`` uses the raw width)."""
    if trials <= 0:
        raise ValueError("wald_interval: trials must be positive")
    rate = successes / trials
    half = z * math.sqrt(rate * (1 - rate) / trials)
    if clip:
        return Interval(rate, max(0.0, rate - half), min(1.0, rate + half))
    return Interval(rate, rate - half, rate + half)


def relative_lift(x_t: int, n_t: int, x_c: int, n_c: int, *, z: float = Z95) -> Interval | None:
    """``p_t / p_c - 1`` with a delta-method CI; None when the control rate is 0 (no ratio)."""
    if n_t <= 0 or n_c <= 0 or x_c <= 0:
        return None
    p_t, p_c = x_t / n_t, x_c / n_c
    var_t, var_c = p_t * (1 - p_t) / n_t, p_c * (1 - p_c) / n_c
    se = math.sqrt(var_t / p_c**2 + p_t**2 * var_c / p_c**4)
    lift = p_t / p_c - 1
    return Interval(lift, lift - z * se, lift + z * se)


def two_proportion_p_value(x_t: int, n_t: int, x_c: int, n_c: int) -> float:
    """Two-sided p-value of the pooled z-test for p_t == p_c (1.0 when both rates are 0 or both 1)."""
    if n_t <= 0 or n_c <= 0:
        raise ValueError("two_proportion_p_value: both groups need units")
    pooled = (x_t + x_c) / (n_t + n_c)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    if se == 0:
        return 1.0
    return math.erfc(abs(x_t / n_t - x_c / n_c) / se / math.sqrt(2))


def chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for a chi-square variable with integer ``dof``: the closed form the SQL view uses.

    Even dof 2m: ``exp(-x/2) sum_{i<m} (x/2)^i / i!``; odd dof 2m+1: ``erfc(sqrt(x/2))`` plus
    ``exp(-x/2) sum_{i=1..m} (x/2)^(i-1/2) / Gamma(i+1/2)``. Terms are summed in log space.
    """
    if dof < 1:
        raise ValueError("chi2_sf: dof must be at least 1")
    half = x / 2
    if half <= 0:
        return 1.0
    if dof % 2 == 0:
        total = sum(math.exp(i * math.log(half) - half - math.lgamma(i + 1)) for i in range(dof // 2))
    else:
        series = (math.exp((i - 0.5) * math.log(half) - half - math.lgamma(i + 0.5)) for i in range(1, dof // 2 + 1))
        total = math.erfc(math.sqrt(half)) + sum(series)
    return min(1.0, max(0.0, total))


def srm_p_value(units: Sequence[int], weights: Sequence[float]) -> float | None:
    """Chi-square SRM p-value of ``units`` per variant against ``weights``; None if fewer than 2 arms.

    Variants with weight 0 are left out of the test, unless they have units: then the split is
    certainly wrong and the p-value is 0.
    """
    if len(units) != len(weights):
        raise ValueError("srm_p_value: one weight per variant")
    if any(n > 0 and w <= 0 for n, w in zip(units, weights, strict=True)):
        return 0.0
    arms = [(n, w) for n, w in zip(units, weights, strict=True) if w > 0]
    total, weight = sum(n for n, _ in arms), sum(w for _, w in arms)
    if len(arms) < 2 or total == 0:
        return None
    chi2 = sum((n - total * w / weight) ** 2 / (total * w / weight) for n, w in arms)
    return chi2_sf(chi2, len(arms) - 1)
