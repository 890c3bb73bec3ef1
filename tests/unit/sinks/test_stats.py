"""``sinks.stats`` against scipy: the formulas the analyst's view implements, on the same counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from sinks.stats import Z95, chi2_sf, relative_lift, srm_p_value, two_proportion_p_value, wald_interval

counts = st.integers(min_value=1, max_value=100_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


def test_z95_is_the_normal_quantile() -> None:
    assert pytest.approx(sps.norm.ppf(0.975), rel=1e-15) == Z95


@given(counts)
def test_wald_interval_is_scipys_normal_interval(xn: tuple[int, int]) -> None:
    x, n = xn
    p = x / n
    low, high = sps.norm.interval(0.95, loc=p, scale=math.sqrt(p * (1 - p) / n)) if 0 < p < 1 else (p, p)

    got = wald_interval(x, n, clip=False)

    assert got == pytest.approx((p, low, high), rel=1e-9, abs=1e-15)
    assert wald_interval(x, n) == pytest.approx((p, max(0.0, low), min(1.0, high)), rel=1e-9, abs=1e-15)


def test_the_seed_simulators_plus_minus_is_two_standard_errors_of_the_same_formula() -> None:
    # "Mars: 490 visits, 95 clicks, Conv=19.39 +- 3.57%" / "Moon: 510 visits, 51 clicks, Conv=10.00 +- 2.66%"
    assert round(wald_interval(95, 490, z=2, clip=False).half_width * 100, 2) == 3.57
    assert round(wald_interval(51, 510, z=2, clip=False).half_width * 100, 2) == 2.66
    assert round(wald_interval(95, 490).half_width * 100, 2) == 3.50  # what abstream prints: z = 1.96


@given(counts, counts)
def test_two_proportion_p_value_is_scipys_chi_square_of_the_2x2_table(a: tuple[int, int], b: tuple[int, int]) -> None:
    (x_t, n_t), (x_c, n_c) = a, b
    got = two_proportion_p_value(x_t, n_t, x_c, n_c)
    if x_t + x_c in (0, n_t + n_c):  # a zero margin: scipy refuses, both rates are equal
        assert got == 1.0
        return
    table = [[x_t, n_t - x_t], [x_c, n_c - x_c]]
    assert got == pytest.approx(sps.chi2_contingency(table, correction=False).pvalue, rel=1e-6, abs=1e-300)


def test_two_proportion_p_value_is_the_normal_tail_of_the_pooled_z() -> None:
    pooled = (95 + 51) / 1000
    z = (95 / 490 - 51 / 510) / math.sqrt(pooled * (1 - pooled) * (1 / 490 + 1 / 510))
    assert two_proportion_p_value(95, 490, 51, 510) == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-12)


@given(counts, counts.filter(lambda c: c[0] > 0))
def test_relative_lift_is_the_delta_method(a: tuple[int, int], b: tuple[int, int]) -> None:
    (x_t, n_t), (x_c, n_c) = a, b
    p, q = x_t / n_t, x_c / n_c
    gradient = np.array([1 / q, -p / q**2])
    covariance = np.diag([p * (1 - p) / n_t, q * (1 - q) / n_c])
    se = math.sqrt(gradient @ covariance @ gradient)
    z = sps.norm.ppf(0.975)

    got = relative_lift(x_t, n_t, x_c, n_c)

    assert got == pytest.approx((p / q - 1, p / q - 1 - z * se, p / q - 1 + z * se), rel=1e-9, abs=1e-12)


def test_relative_lift_interval_covers_the_true_lift_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(6)
    n, p_t, p_c = 4000, 0.12, 0.10
    x_t, x_c = rng.binomial(n, p_t, 2000), rng.binomial(n, p_c, 2000)
    hits = 0
    for a, b in zip(x_t, x_c, strict=True):
        lift = relative_lift(int(a), n, int(b), n)
        assert lift is not None
        hits += lift.low <= p_t / p_c - 1 <= lift.high
    assert 0.93 <= hits / 2000 <= 0.97


def test_relative_lift_needs_a_converting_control() -> None:
    assert relative_lift(5, 100, 0, 100) is None


@settings(max_examples=300)
@given(st.floats(min_value=0, max_value=400, allow_nan=False), st.integers(min_value=1, max_value=40))
def test_chi2_sf_is_scipys(x: float, dof: int) -> None:
    assert chi2_sf(x, dof) == pytest.approx(sps.chi2.sf(x, dof), rel=1e-9, abs=1e-300)


@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(1, 9)), min_size=2, max_size=8))
def test_srm_p_value_is_scipys_chisquare(arms: list[tuple[int, int]]) -> None:
    units, weights = [n for n, _ in arms], [w for _, w in arms]
    total = sum(units)
    got = srm_p_value(units, weights)
    if total == 0:
        assert got is None
        return
    expected = [total * w / sum(weights) for w in weights]
    assert got == pytest.approx(sps.chisquare(units, f_exp=expected).pvalue, rel=1e-8, abs=1e-300)


def test_srm_with_units_in_a_zero_weight_variant_is_certain() -> None:
    assert srm_p_value([500, 500, 1], [1, 1, 0]) == 0.0
    assert srm_p_value([500, 500, 0], [1, 1, 0]) == pytest.approx(1.0)
    assert srm_p_value([500], [1]) is None


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="trials"):
        wald_interval(0, 0)
    with pytest.raises(ValueError, match="dof"):
        chi2_sf(1.0, 0)
    with pytest.raises(ValueError, match="one weight per variant"):
        srm_p_value([1, 2], [1])
    with pytest.raises(ValueError, match="both groups"):
        two_proportion_p_value(0, 0, 1, 2)
