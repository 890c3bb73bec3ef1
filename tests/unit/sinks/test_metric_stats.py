"""``sinks.metric_stats`` against references: numpy on unit-level data, scipy's Welch test, statsmodels.

Coverage simulations are seeded (so they are deterministic) and their bounds are the binomial quantiles
of a correct 95% interval at a one-in-a-million tail, so a reseed would not make them flake either.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats import proportion as smp
from statsmodels.stats.multitest import multipletests

from schemas.metrics import Correction, Direction
from sinks.metric_stats import (
    Comparison,
    Estimate,
    Moments,
    adjust_p_values,
    compare,
    mean_estimate,
    ratio_estimate,
    worse,
)
from sinks.stats import relative_lift, wald_interval

Sampler = Callable[[np.random.Generator, int], np.ndarray]

SAMPLERS: dict[str, Sampler] = {
    "mostly zero counts": lambda rng, n: rng.poisson(0.05, n).astype(float),
    "counts": lambda rng, n: rng.poisson(3.0, n).astype(float),
    "skewed revenue": lambda rng, n: rng.lognormal(1.0, 1.0, n) * rng.binomial(1, 0.2, n),
    "normal": lambda rng, n: rng.normal(10.0, 4.0, n),
}


def _moments(x: np.ndarray, y: np.ndarray | None = None) -> Moments:
    """What the sink keeps, summed by numpy (fast enough for the simulations), as the plain floats it reads."""
    y = np.zeros_like(x) if y is None else y
    sums = (x.sum(), (x * x).sum(), y.sum(), (y * y).sum(), (x * y).sum())
    return Moments(len(x), *(float(v) for v in sums))


def _estimate(x: np.ndarray, **kwargs: bool) -> Estimate:
    estimate = mean_estimate(_moments(x), **kwargs)
    assert estimate is not None
    return estimate


def _ratio(x: np.ndarray, y: np.ndarray) -> Estimate:
    estimate = ratio_estimate(_moments(x, y))
    assert estimate is not None
    return estimate


def _coverage_bounds(reps: int, level: float = 0.95) -> tuple[float, float]:
    """Hit rates a correct ``level`` interval stays within except with probability 2e-6."""
    low, high = sps.binom.ppf(1e-6, reps, level), sps.binom.isf(1e-6, reps, level)
    return low / reps, high / reps


# Moments


@given(st.lists(st.integers(-1000, 1000), max_size=30), st.lists(st.integers(-1000, 1000), max_size=30))
def test_moments_of_concatenated_data_are_the_sum_of_the_moments(a: list[int], b: list[int]) -> None:
    a_y, b_y = [v % 7 for v in a], [v % 5 for v in b]
    assert Moments.of(a, a_y) + Moments.of(b, b_y) == Moments.of([*a, *b], [*a_y, *b_y])


def test_moments_of_is_numpys_sums() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=500), rng.poisson(2.0, 500).astype(float)
    got = Moments.of(x.tolist(), y.tolist())
    assert (got.n, got.sum_x, got.sum_x2, got.sum_y, got.sum_y2, got.sum_xy) == pytest.approx(
        (500, x.sum(), (x**2).sum(), y.sum(), (y**2).sum(), (x * y).sum()), rel=1e-12
    )


def test_moments_of_unpaired_values_are_refused() -> None:
    with pytest.raises(ValueError, match="x has 2 units but y has 1"):
        Moments.of([1.0, 2.0], [1.0])


# Means and proportions


@pytest.mark.parametrize("sampler", SAMPLERS.values(), ids=SAMPLERS.keys())
@pytest.mark.parametrize("n", [2, 30, 5000])
def test_mean_estimate_is_numpys_mean_and_standard_error(sampler: Sampler, n: int) -> None:
    x = sampler(np.random.default_rng(n), n)
    sem = x.std(ddof=1) / math.sqrt(n)

    got = mean_estimate(Moments.of(x.tolist()))

    assert got is not None
    assert (got.value, got.variance, got.n) == pytest.approx((x.mean(), sem**2, n), rel=1e-9, abs=1e-15)
    low, high = sps.norm.interval(0.95, loc=x.mean(), scale=sem) if sem > 0 else (x.mean(), x.mean())
    assert got.ci() == pytest.approx((x.mean(), low, high), rel=1e-9, abs=1e-12)


@given(st.integers(2, 100_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_proportion_estimate_is_statsmodels_normal_interval(xn: tuple[int, int]) -> None:
    x, n = xn
    moments = Moments(n=n, sum_x=x, sum_x2=x)
    low, high = smp.proportion_confint(x, n, alpha=0.05, method="normal")

    got = mean_estimate(moments, proportion=True)
    as_a_mean = mean_estimate(moments)

    assert got is not None and as_a_mean is not None
    assert got.ci() == pytest.approx(wald_interval(x, n, clip=False), rel=1e-12, abs=1e-15)
    # statsmodels clips the normal interval to [0, 1], as the report does.
    assert np.clip(got.ci(), 0, 1).tolist() == pytest.approx([x / n, low, high], rel=1e-9, abs=1e-15)
    # The only difference from the plain mean: p (1 - p) / n, not the sample variance's p (1 - p) / (n - 1).
    assert as_a_mean.variance == pytest.approx(got.variance * n / (n - 1), rel=1e-9, abs=1e-300)


def test_proportion_estimate_refuses_values_that_are_not_0_or_1() -> None:
    with pytest.raises(ValueError, match="0/1 values"):
        mean_estimate(Moments(n=10, sum_x=4, sum_x2=9), proportion=True)
    with pytest.raises(ValueError, match="0/1 values"):
        mean_estimate(Moments(n=10, sum_x=11, sum_x2=11), proportion=True)


# Welch's test on means


@pytest.mark.parametrize("treatment", SAMPLERS.values(), ids=SAMPLERS.keys())
@pytest.mark.parametrize(("n_t", "n_c"), [(3, 5), (40, 25), (4000, 5000)])
def test_compare_is_scipys_welch_t_test(treatment: Sampler, n_t: int, n_c: int) -> None:
    rng = np.random.default_rng(n_t * n_c)
    a, b = treatment(rng, n_t), SAMPLERS["mostly zero counts"](rng, n_c) + rng.binomial(1, 0.5, n_c)
    welch = sps.ttest_ind(a, b, equal_var=False)
    from_stats = sps.ttest_ind_from_stats(a.mean(), a.std(ddof=1), n_t, b.mean(), b.std(ddof=1), n_c, equal_var=False)

    got = compare(_estimate(a), _estimate(b))

    assert got.p_value == pytest.approx(welch.pvalue, rel=1e-8, abs=1e-300)
    assert got.p_value == pytest.approx(from_stats.pvalue, rel=1e-8, abs=1e-300)
    assert got.df == pytest.approx(welch.df, rel=1e-9)
    assert got.absolute == pytest.approx((a.mean() - b.mean(), *welch.confidence_interval(0.95)), rel=1e-9)


def test_compare_intervals_follow_alpha() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 1.0, 60), rng.normal(0.0, 2.0, 80)
    got = compare(_estimate(a), _estimate(b), alpha=0.1)
    assert got.absolute == pytest.approx(
        (a.mean() - b.mean(), *sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.9))
    )


@pytest.mark.parametrize(
    ("x_t", "n_t", "x_c", "n_c"), [(610, 5000, 540, 5200), (9, 100, 3, 120), (5000, 90000, 4800, 91000)]
)
def test_proportions_are_compared_by_welch_on_binomial_variances(x_t: int, n_t: int, x_c: int, n_c: int) -> None:
    p_t, p_c = x_t / n_t, x_c / n_c
    t, c = (
        mean_estimate(Moments(n_t, x_t, x_t), proportion=True),
        mean_estimate(Moments(n_c, x_c, x_c), proportion=True),
    )
    assert t is not None and c is not None
    welch = sps.ttest_ind_from_stats(p_t, math.sqrt(p_t * (1 - p_t)), n_t, p_c, math.sqrt(p_c * (1 - p_c)), n_c, False)
    wald = smp.test_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff")

    got = compare(t, c)

    assert got.df is not None and got.relative is not None
    assert got.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    # statsmodels' unpooled Wald statistic is ours; it reads the normal tail, we the t tail at Welch's df.
    assert got.p_value == pytest.approx(2 * sps.t.sf(abs(wald.statistic), got.df), rel=1e-9)
    assert got.relative == pytest.approx(relative_lift(x_t, n_t, x_c, n_c, z=sps.t.ppf(0.975, got.df)), rel=1e-9)


# Relative lift


@pytest.mark.parametrize("sampler", SAMPLERS.values(), ids=SAMPLERS.keys())
def test_relative_lift_is_the_delta_method_on_the_ratio_of_means(sampler: Sampler) -> None:
    rng = np.random.default_rng(11)
    a, b = sampler(rng, 700) * 1.1, sampler(rng, 650)
    t, c = a.mean(), b.mean()
    gradient = np.array([1 / c, -t / c**2])
    covariance = np.diag([a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)])
    se = math.sqrt(gradient @ covariance @ gradient)

    got = compare(_estimate(a), _estimate(b))

    assert got.df is not None
    q = sps.t.ppf(0.975, got.df)
    assert got.relative == pytest.approx((t / c - 1, t / c - 1 - q * se, t / c - 1 + q * se), rel=1e-9)


def test_relative_lift_interval_covers_the_true_lift_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(7)
    reps, n, mean_t, mean_c = 2000, 400, 1.2, 1.0
    a, b = rng.poisson(mean_t, (reps, n)).astype(float), rng.poisson(mean_c, (reps, n)).astype(float)
    hits = 0
    for x_t, x_c in zip(a, b, strict=True):
        relative = compare(_estimate(x_t), _estimate(x_c)).relative
        assert relative is not None
        hits += relative.low <= mean_t / mean_c - 1 <= relative.high
    low, high = _coverage_bounds(reps)
    assert low <= hits / reps <= high


# Ratios


@pytest.mark.parametrize("n", [2, 50, 3000])
def test_ratio_estimate_is_the_delta_method_on_unit_level_arrays(n: int) -> None:
    rng = np.random.default_rng(n)
    y = 1 + rng.poisson(2.0, n).astype(float)  # sessions per unit
    x = rng.binomial(y.astype(int), 0.3).astype(float)  # clicks in those sessions
    ratio, mean_y = x.sum() / y.sum(), y.mean()
    gradient = np.array([1 / mean_y, -x.mean() / mean_y**2])
    variance = gradient @ np.cov(x, y, ddof=1) @ gradient / n

    got = ratio_estimate(Moments.of(x.tolist(), y.tolist()))

    assert got == pytest.approx((ratio, variance, n), rel=1e-9, abs=1e-15)


def test_ratio_intervals_cover_the_truth_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(5)
    reps, n, rate_t, rate_c = 2000, 200, 0.33, 0.30
    y_t, y_c = 1 + rng.poisson(2.0, (reps, n)), 1 + rng.poisson(2.0, (reps, n))
    x_t, x_c = rng.binomial(y_t, rate_t), rng.binomial(y_c, rate_c)
    estimate_hits = difference_hits = 0
    for xt, yt, xc, yc in zip(x_t, y_t, x_c, y_c, strict=True):
        t, c = _ratio(xt.astype(float), yt.astype(float)), _ratio(xc.astype(float), yc.astype(float))
        absolute = compare(t, c).absolute
        assert absolute is not None
        estimate_hits += t.ci().low <= rate_t <= t.ci().high
        difference_hits += absolute.low <= rate_t - rate_c <= absolute.high
    low, high = _coverage_bounds(reps)
    assert low <= estimate_hits / reps <= high
    assert low <= difference_hits / reps <= high


def test_ratios_are_compared_by_welch_satterthwaite_on_the_delta_variances() -> None:
    rng = np.random.default_rng(9)
    y_t, y_c = 1 + rng.poisson(3.0, 80), 1 + rng.poisson(1.0, 300)
    t = _ratio(rng.binomial(y_t, 0.4).astype(float), y_t.astype(float))
    c = _ratio(rng.binomial(y_c, 0.3).astype(float), y_c.astype(float))
    # The delta variance stands for s^2 / n: a Welch test from stats with std = sqrt(n * Var(R)).
    welch = sps.ttest_ind_from_stats(
        t.value, math.sqrt(t.n * t.variance), t.n, c.value, math.sqrt(c.n * c.variance), c.n, equal_var=False
    )
    satterthwaite = (t.variance + c.variance) ** 2 / (t.variance**2 / (t.n - 1) + c.variance**2 / (c.n - 1))

    got = compare(t, c)

    assert got.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    assert got.df == pytest.approx(satterthwaite, rel=1e-12)


# Degenerate inputs


def test_estimates_need_two_units_and_a_denominator() -> None:
    assert mean_estimate(Moments(n=1, sum_x=3.0, sum_x2=9.0)) is None
    assert mean_estimate(Moments(n=0, sum_x=0.0, sum_x2=0.0), proportion=True) is None
    assert ratio_estimate(Moments(n=1, sum_x=1.0, sum_x2=1.0, sum_y=2.0, sum_y2=4.0, sum_xy=2.0)) is None
    assert ratio_estimate(Moments(n=5, sum_x=0.0, sum_x2=0.0)) is None


def test_comparisons_without_spread_or_units_have_no_test() -> None:
    none = Comparison(None, None, None, None)
    nothing = mean_estimate(Moments(n=500, sum_x=0, sum_x2=0), proportion=True)
    constant = mean_estimate(Moments(n=500, sum_x=1000.0, sum_x2=2000.0))
    assert nothing is not None and constant is not None
    assert compare(nothing, nothing) == none
    assert compare(constant, constant) == none
    assert compare(Estimate(1.0, 0.5, 1), Estimate(1.0, 0.5, 100)) == none


def test_a_control_at_zero_has_no_relative_lift() -> None:
    t = _estimate(np.array([0.0, 1.0, 2.0, 0.0]))
    c = Estimate(0.0, 0.0, 50)
    got = compare(t, c)
    assert got.relative is None
    assert got.absolute is not None and got.p_value is not None


def test_equal_groups_have_p_value_1() -> None:
    estimate = _estimate(np.array([0.0, 1.0, 3.0, 0.0, 2.0]))
    got = compare(estimate, estimate)
    assert got.p_value == pytest.approx(1.0)
    assert got.absolute is not None and got.absolute.estimate == 0


# Multiple testing

p_values = st.lists(st.one_of(st.none(), st.floats(0, 1), st.sampled_from([0.0, 0.01, 0.05, 1.0])), max_size=20)


@pytest.mark.parametrize(("ours", "theirs"), [("holm", "holm"), ("benjamini-hochberg", "fdr_bh")])
@settings(max_examples=25, deadline=None)  # statsmodels' holm runs a full gc.collect() per call: slow
@given(p=p_values)
def test_adjust_p_values_is_statsmodels_multipletests(ours: Correction, theirs: str, p: list[float | None]) -> None:
    present = [v for v in p if v is not None]
    expected = iter(multipletests(present, method=theirs)[1].tolist() if present else [])

    got = adjust_p_values(p, ours)

    assert [v is None for v in got] == [v is None for v in p]
    assert [v for v in got if v is not None] == pytest.approx(list(expected), rel=1e-12, abs=1e-300)


@given(p=p_values)
def test_no_adjustment_passes_p_values_through(p: list[float | None]) -> None:
    assert adjust_p_values(p, "none") == p


def test_adjust_p_values_refuses_what_is_not_a_p_value() -> None:
    with pytest.raises(ValueError, match=r"in \[0, 1\], got \[1.5\]"):
        adjust_p_values([0.1, None, 1.5], "holm")
    with pytest.raises(ValueError, match="unknown method 'bonferroni'"):
        adjust_p_values([0.1], "bonferroni")  # type: ignore[arg-type]


# Guardrails


def _lift(shift: float, seed: int = 2) -> Comparison:
    rng = np.random.default_rng(seed)
    return compare(_estimate(rng.normal(shift, 1.0, 500)), _estimate(rng.normal(0.0, 1.0, 500)))


@pytest.mark.parametrize(
    ("shift", "direction", "expected"),
    [(-0.5, "increase", True), (0.5, "increase", False), (0.5, "decrease", True), (-0.5, "decrease", False)],
)
def test_a_guardrail_is_worse_when_it_moves_significantly_the_bad_way(
    shift: float, direction: Direction, expected: bool
) -> None:
    assert worse(_lift(shift), direction, alpha=0.05) is expected


def test_an_insignificant_or_untestable_guardrail_is_not_worse() -> None:
    small = _lift(-0.05)
    assert small.p_value is not None and small.p_value > 0.05
    assert not worse(small, "increase")
    assert not worse(Comparison(None, None, None, None), "increase")
    assert worse(small._replace(p_value=0.01), "increase")
