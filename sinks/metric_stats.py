"""Statistics of first-class metrics (proportion, mean, ratio) from per-variant sufficient statistics.

The sink keeps, per variant, the unit count and a few sums (:class:`Moments`); everything here is a
function of those sums, so a report never re-reads unit rows. The conventions are those of
GrowthBook's frequentist engine, so numbers can be checked against it:

- :func:`mean_estimate`: the mean per unit; variance of the mean ``s^2 / n`` with the sample variance
  ``s^2 = (sum_x2 - sum_x^2 / n) / (n - 1)``. With ``proportion=True`` (0/1 values) it is
  ``p (1 - p) / n`` instead, so the interval is exactly ``stats.wald_interval(..., clip=False)``.
- :func:`ratio_estimate`: ``R = sum_x / sum_y`` (numerator and denominator summed over units), its
  variance by the delta method, ``(s_x^2 - 2 R s_xy + R^2 s_y^2) / (n mu_y^2)``, sample (co)variances.
- :func:`compare`: **Welch's t-test** on the two estimator variances with Welch-Satterthwaite degrees
  of freedom (for ratios too: the delta variances play the part of ``s^2 / n``); the absolute lift
  ``t - c`` and the relative lift ``t / c - 1`` (delta method: ``v_t / c^2 + t^2 v_c / c^4``) get
  intervals from the same t quantile. Proportions use the same unpooled test (GrowthBook does), not
  the pooled z-test of ``stats.two_proportion_p_value``, which the ``experiment_report`` view keeps.
  One p-value serves both lifts: ``t == c`` is the same null. (GrowthBook tests the relative lift on
  its own delta-method scale, so its relative p-value can differ slightly.)
- :func:`adjust_p_values`: Holm or Benjamini-Hochberg across a family of p-values.
- :func:`worse`: whether a guardrail moved significantly in its bad direction.

Degenerate inputs give None instead of raising: an estimate needs two units (and a ratio a non-zero
denominator sum); a comparison where neither group has any spread has no test; a control at 0 has no
relative lift.

    >>> t = mean_estimate(Moments(n=1000, sum_x=120, sum_x2=120), proportion=True)
    >>> c = mean_estimate(Moments(n=1000, sum_x=100, sum_x2=100), proportion=True)
    >>> round(compare(t, c).relative.estimate, 3)
    0.2
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from schemas.metrics import Correction, Direction
from sinks.stats import Z95, Interval

try:
    from scipy.special import stdtr, stdtrit
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(f"metric statistics need scipy: pip install 'abstream[sink]' ({exc})") from exc

__all__ = [
    "Comparison",
    "Estimate",
    "Moments",
    "adjust_p_values",
    "compare",
    "mean_estimate",
    "ratio_estimate",
    "worse",
]


@dataclass(frozen=True, slots=True)
class Moments:
    """One variant's sufficient statistics: units, and sums of x, x^2 (and y, y^2, xy for a ratio).

    A unit with no event is a 0 and adds only to ``n``, so the sums are exact. Partial moments (per
    partition, per day) add up: ``Moments.of(a) + Moments.of(b) == Moments.of([*a, *b])``.
    """

    n: int
    sum_x: float
    sum_x2: float
    sum_y: float = 0.0
    sum_y2: float = 0.0
    sum_xy: float = 0.0

    @classmethod
    def of(cls, x: Iterable[float], y: Iterable[float] | None = None) -> Moments:
        """The moments of unit-level values (``y`` pairs with ``x`` for a ratio); for notebooks and tests."""
        xs = list(x)
        ys = [0.0] * len(xs) if y is None else list(y)
        if len(ys) != len(xs):
            raise ValueError(f"Moments.of: x has {len(xs)} units but y has {len(ys)}")
        return cls(
            n=len(xs),
            sum_x=math.fsum(xs),
            sum_x2=math.fsum(v * v for v in xs),
            sum_y=math.fsum(ys),
            sum_y2=math.fsum(v * v for v in ys),
            sum_xy=math.fsum(a * b for a, b in zip(xs, ys, strict=True)),
        )

    def __add__(self, other: Moments) -> Moments:
        return Moments(
            self.n + other.n,
            self.sum_x + other.sum_x,
            self.sum_x2 + other.sum_x2,
            self.sum_y + other.sum_y,
            self.sum_y2 + other.sum_y2,
            self.sum_xy + other.sum_xy,
        )


class Estimate(NamedTuple):
    """A metric's value in one variant, the variance of that estimator, and the units behind it."""

    value: float
    variance: float
    n: int

    def ci(self, z: float = Z95) -> Interval:
        """Normal interval ``value +- z * sqrt(variance)`` (not clipped, even for a proportion)."""
        half = z * math.sqrt(self.variance)
        return Interval(self.value, self.value - half, self.value + half)


class Comparison(NamedTuple):
    """Treatment against control: lifts with intervals, Welch's p-value and degrees of freedom.

    All None when there is no test (fewer than two units, or no spread in either group);
    ``relative`` alone is None when the control's value is 0.
    """

    absolute: Interval | None
    relative: Interval | None
    p_value: float | None
    df: float | None


def _covariance(n: int, sum_a: float, sum_b: float, sum_ab: float) -> float:
    """Sample covariance (n - 1) from sums."""
    return (sum_ab - sum_a * sum_b / n) / (n - 1)


def _variance(n: int, total: float, total_sq: float) -> float:
    """Sample variance (n - 1) from sums, kept >= 0 against rounding."""
    return max(0.0, _covariance(n, total, total, total_sq))


def mean_estimate(m: Moments, *, proportion: bool = False) -> Estimate | None:
    """Mean of x per unit; ``proportion=True`` for 0/1 values uses ``p (1 - p) / n``. None below 2 units."""
    if m.n < 2:
        return None
    mean = m.sum_x / m.n
    if proportion:
        if m.sum_x2 != m.sum_x or not 0 <= m.sum_x <= m.n:
            raise ValueError(
                f"mean_estimate: proportion=True needs 0/1 values (sum_x2 == sum_x, 0 <= sum_x <= n), got {m}"
            )
        return Estimate(mean, mean * (1 - mean) / m.n, m.n)
    return Estimate(mean, _variance(m.n, m.sum_x, m.sum_x2) / m.n, m.n)


def ratio_estimate(m: Moments) -> Estimate | None:
    """``R = sum_x / sum_y`` with delta-method variance; None below 2 units or when ``sum_y == 0``.

    ``Var(R) = (s_x^2 - 2 R s_xy + R^2 s_y^2) / (n mu_y^2)``, ``mu_y = sum_y / n``, with the sample
    (n - 1) variances and covariance of the per-unit numerator x and denominator y.
    """
    if m.n < 2 or m.sum_y == 0:
        return None
    ratio, mean_y = m.sum_x / m.sum_y, m.sum_y / m.n
    var_x = _variance(m.n, m.sum_x, m.sum_x2)
    var_y = _variance(m.n, m.sum_y, m.sum_y2)
    cov_xy = _covariance(m.n, m.sum_x, m.sum_y, m.sum_xy)
    variance = (var_x - 2 * ratio * cov_xy + ratio**2 * var_y) / (m.n * mean_y**2)
    return Estimate(ratio, max(0.0, variance), m.n)


def _welch_df(treatment: Estimate, control: Estimate) -> float:
    """Welch-Satterthwaite: ``(v_t + v_c)^2 / (v_t^2 / (n_t - 1) + v_c^2 / (n_c - 1))``."""
    v_t, v_c = treatment.variance, control.variance
    return (v_t + v_c) ** 2 / (v_t**2 / (treatment.n - 1) + v_c**2 / (control.n - 1))


def _relative(treatment: Estimate, control: Estimate, quantile: float) -> Interval | None:
    """``t / c - 1`` with the delta-method interval of a ratio of independent means; None when c is 0."""
    t, c = treatment.value, control.value
    if c == 0:
        return None
    se = math.sqrt(treatment.variance / c**2 + t**2 * control.variance / c**4)
    lift = t / c - 1
    return Interval(lift, lift - quantile * se, lift + quantile * se)


def compare(treatment: Estimate, control: Estimate, *, alpha: float = 0.05) -> Comparison:
    """Welch's two-sided t-test of ``treatment`` against ``control``, with ``1 - alpha`` intervals.

    >>> round(compare(Estimate(1.2, 0.01, 50), Estimate(1.0, 0.01, 50)).df, 6)
    98.0
    """
    se = math.sqrt(treatment.variance + control.variance)
    if min(treatment.n, control.n) < 2 or se == 0:
        return Comparison(None, None, None, None)
    df = _welch_df(treatment, control)
    quantile = float(stdtrit(df, 1 - alpha / 2))
    diff = treatment.value - control.value
    p_value = 2 * float(stdtr(df, -abs(diff) / se))
    absolute = Interval(diff, diff - quantile * se, diff + quantile * se)
    return Comparison(absolute, _relative(treatment, control, quantile), p_value, df)


def worse(comparison: Comparison, direction: Direction, alpha: float = 0.05) -> bool:
    """Whether a guardrail moved significantly the bad way: ``p < alpha`` and the lift against ``direction``.

    Uses the comparison's own p-value; pass ``comparison._replace(p_value=adjusted)`` to use a corrected one.
    """
    if comparison.p_value is None or comparison.absolute is None or comparison.p_value >= alpha:
        return False
    lift = comparison.absolute.estimate
    return lift < 0 if direction == "increase" else lift > 0


def _holm(ordered: Sequence[float]) -> list[float]:
    """Holm step-down on ascending p-values: ``max_{j<=i} min(1, (m - j) p_j)``."""
    m, running, out = len(ordered), 0.0, []
    for rank, p in enumerate(ordered):
        running = max(running, min(1.0, (m - rank) * p))
        out.append(running)
    return out


def _benjamini_hochberg(ordered: Sequence[float]) -> list[float]:
    """BH step-up on ascending p-values: ``min_{j>=i} min(1, m p_j / j)`` (ranks from 1)."""
    m, running, out = len(ordered), 1.0, [0.0] * len(ordered)
    for rank in reversed(range(m)):
        running = min(running, m * ordered[rank] / (rank + 1))
        out[rank] = running
    return out


_METHODS = {"holm": _holm, "benjamini-hochberg": _benjamini_hochberg}


def adjust_p_values(p: Sequence[float | None], method: Correction) -> list[float | None]:
    """Correct a family of p-values for multiple testing; Nones stay None and do not count in m.

    >>> adjust_p_values([0.01, None, 0.04], "holm")
    [0.02, None, 0.04]
    """
    if method != "none" and method not in _METHODS:
        raise ValueError(f"adjust_p_values: unknown method {method!r} (none, holm, benjamini-hochberg)")
    bad = [v for v in p if v is not None and not 0 <= v <= 1]
    if bad:
        raise ValueError(f"adjust_p_values: p-values lie in [0, 1], got {bad}")
    adjusted = list(p)
    if method == "none":
        return adjusted
    present = sorted((v, i) for i, v in enumerate(p) if v is not None)
    for (_, i), value in zip(present, _METHODS[method]([v for v, _ in present]), strict=True):
        adjusted[i] = value
    return adjusted
