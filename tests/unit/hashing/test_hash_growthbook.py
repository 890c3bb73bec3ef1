"""GrowthBook against growthbook 4.x (its primitives and ``GrowthBook.run``) and the cross-SDK cases.json."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from growthbook import Experiment, GrowthBook
from growthbook import core as gb
from hypothesis import given, settings
from hypothesis import strategies as st

from abstream.errors import SchemeParamsError
from schemas.hashing import (
    GrowthBookExperiment,
    assign,
    growthbook_bucket_ranges,
    growthbook_choose,
    growthbook_choose_variation,
    growthbook_equal_weights,
    growthbook_experiment,
    growthbook_fnv1a32,
    growthbook_hash,
    growthbook_hash_string,
    growthbook_in_namespace,
    growthbook_is_hashable,
)

CASES = json.loads((Path(__file__).parent / "growthbook_cases.json").read_text(encoding="utf-8"))
N_UNITS = 4000
N_EXPERIMENTS = 300
UNITS_PER_EXPERIMENT = 15


def _rounded(ranges: list) -> list[list[float]]:
    return [[round(x, 6) for x in r] for r in ranges]


# --- the published cross-SDK suite -------------------------------------------------------------


@pytest.mark.parametrize("seed,value,version,expected", CASES["hash"])
def test_cases_hash(seed: str, value: str, version: int, expected: float | None) -> None:
    assert growthbook_hash(seed, value, version) == expected


@pytest.mark.parametrize("name,args,expected", CASES["getBucketRange"])
def test_cases_get_bucket_range(name: str, args: list, expected: list) -> None:
    assert _rounded(growthbook_bucket_ranges(*args)) == _rounded(expected)


@pytest.mark.parametrize("name,n,ranges,expected", CASES["chooseVariation"])
def test_cases_choose_variation(name: str, n: float, ranges: list, expected: int) -> None:
    assert growthbook_choose_variation(n, ranges) == expected


@pytest.mark.parametrize("name,user,namespace,expected", CASES["inNamespace"])
def test_cases_in_namespace(name: str, user: str, namespace: list, expected: bool) -> None:
    assert growthbook_in_namespace(user, tuple(namespace)) is expected


@pytest.mark.parametrize("n,expected", CASES["getEqualWeights"])
def test_cases_equal_weights(n: int, expected: list[float]) -> None:
    assert [round(w, 8) for w in growthbook_equal_weights(n)] == expected


@pytest.mark.parametrize("name,context,experiment,value,in_experiment,hash_used", CASES["run"])
def test_cases_run(
    name: str, context: dict, experiment: dict, value: object, in_experiment: bool, hash_used: bool
) -> None:
    attributes = context.get("attributes", {})
    params = {**experiment, "variations": [str(i) for i in range(len(experiment["variations"]))]}
    unit = attributes.get(experiment.get("hashAttribute", "id"), "")
    if len(params["variations"]) < 2:  # the SDK skips such an experiment; a definition is rejected
        with pytest.raises(SchemeParamsError):
            growthbook_experiment(params)
        parsed = GrowthBookExperiment(params["key"], tuple(params["variations"]))
    else:
        parsed = growthbook_experiment(params)
    a = growthbook_choose(unit, parsed, attributes=attributes)
    assert a.in_experiment is in_experiment is hash_used
    assert experiment["variations"][a.value if a.in_experiment else 0] == value


# --- differential against the installed SDK ------------------------------------------------------


def test_fnv_and_hash_over_units_including_utf16_surrogates(make_units) -> None:
    units = [
        *make_units(N_UNITS, seed=21, non_ascii=True),
        "\ud800",
        "a\udfffb",
        "😀" * 3,
        "\U0001d518\U0001d52b",
    ]
    seeds = ["", "exp", "seed-é", "🙂", "90850943850283058242805"]
    for i, unit in enumerate(units):
        assert growthbook_fnv1a32(unit) == gb.fnv1a32(unit)
        seed = seeds[i % len(seeds)]
        for version in (1, 2, 3):
            assert growthbook_hash(seed, unit, version) == gb.gbhash(seed, unit, version)


def test_emoji_is_hashed_as_two_utf16_code_units() -> None:
    # 😀 is U+1F600 = surrogates D83D DE00; hashing the code point instead would differ.
    assert growthbook_fnv1a32("😀") == growthbook_fnv1a32("\ud83d\ude00") == gb.fnv1a32("😀")
    code_point_hash = ((0x811C9DC5 ^ 0x1F600) * 0x01000193) & 0xFFFFFFFF
    assert growthbook_fnv1a32("😀") != code_point_hash


def _random_weights(rng: random.Random, n: int) -> list | None:
    kind = rng.randrange(7)
    if kind == 0:
        return None
    raw = [rng.random() for _ in range(n)]
    normal = [w / sum(raw) for w in raw] if n else []
    if kind in (1, 2):
        return normal
    if kind == 3:
        return [round(w, 4) for w in normal]
    if kind == 4:
        return normal[:-1]
    if kind == 5:
        return [w * rng.choice([0.98, 0.995, 1.005, 1.02]) for w in normal]
    return [-w if i == 0 else w for i, w in enumerate(normal)]


def test_bucket_ranges_exactly_equal_the_sdk() -> None:
    rng = random.Random(22)
    for _ in range(3000):
        n = rng.randrange(0, 7)
        coverage = rng.choice([1, 0, 0.5, rng.random(), rng.uniform(-0.5, 1.5)])
        weights = _random_weights(rng, n)
        assert growthbook_bucket_ranges(n, coverage, weights) == gb.getBucketRanges(n, coverage, weights)


def test_choose_variation_and_namespace(make_units) -> None:
    rng = random.Random(23)
    for unit in make_units(N_UNITS, seed=23, non_ascii=True):
        ranges = gb.getBucketRanges(rng.randrange(1, 5), rng.random(), None)
        n = rng.choice([rng.random(), ranges[0][0], ranges[-1][1], 0.5])
        assert growthbook_choose_variation(n, ranges) == gb.chooseVariation(n, ranges)
        start = rng.random()
        namespace = (rng.choice(["ns", "pricing", "é"]), start, rng.uniform(start, 1))
        assert growthbook_in_namespace(unit, namespace) == gb.inNamespace(unit, namespace)


_NUMBERS = [1, 1.0, -1, 0.1, 1e21, 1e20, 1.5e-7, 1e-6, 0.000001234, 123456789012345680000, 2**53 + 1]
_NUMBERS += [-0.0, 5e-324, 1.7976931348623157e308, float("inf"), float("nan"), 10**400, 0.1 + 0.2, 100, 1e16]


@pytest.mark.parametrize("value", [*_NUMBERS, "", "x", True, False, None])
def test_values_are_stringified_and_filtered_like_the_sdk(value: object) -> None:
    assert growthbook_is_hashable(value) == gb._is_hashable(value)
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        assert growthbook_hash_string(value) == gb._hash_string(value)


@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**70), 2**70))
@settings(max_examples=500, database=None, deadline=None)
def test_number_to_string_for_arbitrary_numbers(value: float) -> None:
    assert growthbook_hash_string(value) == gb._hash_string(value)


def _random_experiment(rng: random.Random, i: int) -> dict[str, Any]:
    n = rng.randrange(2, 5)
    params: dict[str, Any] = {"key": f"exp-{i}", "variations": [f"v{j}" for j in range(n)]}
    optional = {
        "weights": lambda: _random_weights(rng, n),
        "coverage": lambda: rng.choice([rng.random(), 0, 1, 1.2, -0.1]),
        "seed": lambda: rng.choice(["", "seed", f"s{i}", "种子"]),
        "hashVersion": lambda: rng.choice([1, 2]),
        "namespace": lambda: [rng.choice(["ns1", "ns2"]), 0.2, rng.uniform(0.3, 1)],
        "ranges": lambda: [[0, 0.3], [0.5, 0.6], [0.6, 1.0]][:n],
        "filters": lambda: [{"seed": "f", "ranges": [[0, 0.6]], "attribute": rng.choice(["id", "anonId"])}],
    }
    for key, make in optional.items():
        if rng.random() < 0.4 and (value := make()) is not None:
            params[key] = value
    return params


def test_run_matches_the_sdk_over_random_experiments(make_units) -> None:
    rng, sdk = random.Random(24), GrowthBook(attributes={})
    units = make_units(N_EXPERIMENTS * UNITS_PER_EXPERIMENT, seed=24, non_ascii=True)
    outcomes: set[tuple[bool, type]] = set()
    try:
        for i in range(N_EXPERIMENTS):
            params = _random_experiment(rng, i)
            ours = growthbook_experiment(params)
            for unit in units[i * UNITS_PER_EXPERIMENT : (i + 1) * UNITS_PER_EXPERIMENT]:
                value = rng.choice([unit, unit, unit, rng.randrange(-5, 5), rng.uniform(-1e6, 1e6), ""])
                attributes = {"id": value, "anonId": f"anon-{rng.randrange(1000)}"}
                sdk.set_attributes(attributes)
                result = sdk.run(Experiment(**params))
                a = growthbook_choose(value, ours, attributes=attributes)
                assert (a.in_experiment, a.value if a.in_experiment else 0) == (
                    result.inExperiment,
                    result.variationId,
                )
                assert a.in_experiment == result.hashUsed
                if result.hashUsed:
                    assert a.bucket == result.bucket
                outcomes.add((a.in_experiment, type(value)))
    finally:
        sdk.destroy()
    assert outcomes == {(b, t) for b in (True, False) for t in (str, int, float)}


def test_dispatch_and_explanation(make_units) -> None:
    params = {"key": "checkout", "variations": ["A", "B"], "coverage": 0.5, "hashVersion": 2}
    for unit in make_units(200, seed=25):
        a = assign("growthbook", params, unit)
        assert a.bucket == growthbook_hash("checkout", unit, 2)
        if a.in_experiment:
            assert a.inputs["ranges"] == [(0, 0.25), (0.5, 0.75)]
            assert isinstance(a.value, int) and a.variant == ["A", "B"][a.value]


@pytest.mark.parametrize(
    "params",
    [
        {"key": "k", "variations": ["only"]},
        {"key": "k", "variations": ["a", "b"], "hashVersion": 3},
        {"key": "k", "variations": ["a", "b"], "namespace": ["ns", 0]},
        {"key": "k", "variations": ["a", "b"], "weight": [0.5, 0.5]},
        {"key": "k", "variations": ["a", "b"], "filters": [{"seed": "s"}]},
        {"key": "k", "variations": ["a", "b"], "ranges": [[0, "1"]]},
        {"variations": ["a", "b"]},
    ],
)
def test_bad_params_fail_loudly(params: dict[str, object]) -> None:
    with pytest.raises(SchemeParamsError):
        assign("growthbook", params, "u")


def test_invalid_weights_fall_back_to_equal_weights_like_the_sdk() -> None:
    params = {"key": "k", "variations": ["a", "b"], "weights": [0.9, 0.9]}
    for unit in map(str, range(300)):
        a = assign("growthbook", params, unit)
        assert a.inputs["ranges"] == [(0, 0.5), (0.5, 1.0)]
    assert math.isclose(sum(growthbook_equal_weights(3)), 1.0)
