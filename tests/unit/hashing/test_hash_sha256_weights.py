"""sha256-weights against a plain transcription of the tutorial's ``assign_group`` (seed 004)."""

from __future__ import annotations

import hashlib
import random

import pytest

from abstream.errors import SchemeParamsError
from schemas.hashing import assign, assign_sha256_weights

N_CONFIGS = 400
UNITS_PER_CONFIG = 20


def tutorial_assign_group(device_id: str, experiment: str, groups: dict[str, int], fallback: str) -> str:
    """The tutorial's formula, transcribed: the oracle this scheme has (it ships no package)."""
    total_parts = sum(groups.values())
    key = f"{device_id}:{experiment}"
    hash_int = int.from_bytes(hashlib.sha256(key.encode()).digest(), "big")
    hash_mod = hash_int % total_parts
    c = 0
    chosen = fallback
    for group_name, weight in sorted(groups.items()):
        c += weight
        if hash_mod < c:
            chosen = group_name
            break
    return chosen


def _random_groups(rng: random.Random) -> dict[str, int]:
    names = rng.sample(["Moon", "Mars", "A", "B", "control", "treatment", "z", "Zeta", "é", "中"], rng.randrange(1, 6))
    groups = {name: rng.choice([0, 1, 1, 2, 5, 10, 50, 99, 1000, 2**40]) for name in names}
    if sum(groups.values()) == 0:
        groups[names[0]] = 1
    return groups


def test_matches_the_tutorial_over_random_configs_and_units(make_units) -> None:
    rng = random.Random(4)
    units = make_units(N_CONFIGS * UNITS_PER_CONFIG, seed=4, non_ascii=True)
    for i in range(N_CONFIGS):
        groups, salt = _random_groups(rng), rng.choice(["moon_mars", "white_gold_btn", "exp-é", f"e{i}"])
        for unit in units[i * UNITS_PER_CONFIG : (i + 1) * UNITS_PER_CONFIG]:
            expected = tutorial_assign_group(unit, salt, groups, fallback="<fallback>")
            got = assign_sha256_weights(unit, salt, groups)
            assert got.variant == expected, (unit, salt, groups)
            assert groups[expected] > 0


def test_dispatch_matches_direct_call_and_explains(make_units) -> None:
    params = {"salt": "moon_mars", "weights": {"Moon": 50, "Mars": 50}}
    for unit in make_units(500, seed=5):
        a = assign("sha256-weights", params, unit)
        assert a.variant == tutorial_assign_group(unit, "moon_mars", {"Moon": 50, "Mars": 50}, "Moon")
        assert a.inputs["hashed"] == f"{unit}:moon_mars"
        assert isinstance(a.bucket, int) and 0 <= a.bucket < 100
        assert a.in_experiment


@pytest.mark.parametrize(
    "params",
    [
        {"salt": "x", "weights": {}},
        {"salt": "x", "weights": {"A": 0}},
        {"salt": "x", "weights": {"A": -1, "B": 3}},
        {"salt": "x", "weights": {"A": 1.5}},
        {"salt": "x", "weights": {"A": True}},
        {"salt": "x", "weights": ["A", "B"]},
        {"weights": {"A": 1}},
        {"salt": "x", "weights": {"A": 1}, "seed": "typo"},
    ],
)
def test_bad_params_fail_loudly(params: dict[str, object]) -> None:
    with pytest.raises(SchemeParamsError) as info:
        assign("sha256-weights", params, "u")
    assert info.value.scheme == "sha256-weights"
