"""PlanOut 0.6's random operators, bit for bit (``planout/ops/random.py``).

Every operator hashes ``f"{salt}.{units joined by '.'}"`` with SHA-1 and keeps the first 15 hex
digits (60 bits). ``salt`` here is the *full* salt: PlanOut builds it as ``"{experiment_salt}.{param
salt}"`` (the param salt defaults to the parameter's name), unless the op is given ``full_salt``,
which replaces both; :func:`planout_salt` does that. Quirks kept on purpose, because logged
assignments were produced with them:

- the hash string is encoded as ASCII: a non-ASCII unit makes PlanOut raise, and so do we;
- units are rendered with Python ``str()`` (``1`` -> ``"1"``, ``True`` -> ``"True"``);
- the scale ``float(0xFFFFFFFFFFFFFFF)`` rounds to exactly 2**60, so uniforms lie in ``[0, 1)``;
- ``WeightedChoice`` cumulates weights as floats from ``0.0`` and picks the first index whose
  cumulative weight is ``>=`` the draw, so a leading zero weight wins when the hash is 0;
- ``Sample`` with a *list* of units appends each draw index to that list in place, so the k-th swap
  hashes the units followed by all k indices so far; with a single unit it hashes ``unit.i``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

from abstream.errors import SchemeParamsError, UnassignableUnitError

__all__ = [
    "Unit",
    "Units",
    "planout_bernoulli_trial",
    "planout_hash",
    "planout_random_float",
    "planout_random_integer",
    "planout_salt",
    "planout_sample",
    "planout_uniform",
    "planout_uniform_choice",
    "planout_weighted_choice",
]

T = TypeVar("T")
Unit = str | int
Units = Unit | Sequence[Unit]
"""A single unit, or a list of units (PlanOut's ``unit=[userid, pageid]``)."""

_LONG_SCALE = float(0xFFFFFFFFFFFFFFF)


def _bad(key: str, problem: str) -> SchemeParamsError:
    return SchemeParamsError(f"planout: {key} {problem}", scheme="planout", key=key)


def planout_salt(experiment_salt: str, param: str, *, salt: str | None = None, full_salt: str | None = None) -> str:
    """The full salt of an op assigned to ``param``: ``full_salt`` wins over ``salt`` over ``param``."""
    if full_salt is not None:
        return full_salt
    return f"{experiment_salt}.{param if salt is None else salt}"


def _unit_list(units: Units) -> list[Unit]:
    if isinstance(units, str | int):
        return [units]
    return list(units)


def _hash_units(salt: str, units: Sequence[object]) -> int:
    text = f"{salt}.{'.'.join(map(str, units))}"
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise UnassignableUnitError(
            f"PlanOut hashes ASCII only and raises on {text!r}: no PlanOut client can assign this unit",
            field="unit_id",
        ) from exc
    return int(hashlib.sha1(data).hexdigest()[:15], 16)  # noqa: S324 - PlanOut's hash, not security


def planout_hash(units: Units, salt: str) -> int:
    """The 60-bit integer every PlanOut op draws from (``getHash``)."""
    return _hash_units(salt, _unit_list(units))


def planout_uniform(units: Units, salt: str, min_val: float = 0.0, max_val: float = 1.0) -> float:
    """``getUniform``: a float in ``[min_val, max_val)``, computed in PlanOut's exact operation order."""
    zero_to_one = planout_hash(units, salt) / _LONG_SCALE
    return min_val + (max_val - min_val) * zero_to_one


def planout_uniform_choice(choices: Sequence[T], units: Units, salt: str) -> T:
    """``UniformChoice``: ``choices[hash % len(choices)]``."""
    if not choices:
        raise _bad("choices", "must not be empty (UniformChoice)")
    return choices[planout_hash(units, salt) % len(choices)]


def planout_weighted_choice(
    choices: Sequence[T], weights: Sequence[float], units: Units, salt: str
) -> tuple[T | None, float]:
    """``WeightedChoice``: the chosen value and the draw in ``[0, sum(weights))`` it was chosen by.

    The choice is ``None`` only in the case PlanOut also returns ``None``: no cumulative weight reaches
    the draw, which takes negative weights or NaN.
    """
    if not choices or len(choices) != len(weights):
        raise _bad("weights", "must be as many as the choices, and there must be at least one")
    cumulative: list[float] = []
    cum_sum = 0.0
    for weight in weights:
        cum_sum += weight
        cumulative.append(cum_sum)
    stop_value = planout_uniform(units, salt, 0.0, cum_sum)
    for index, bound in enumerate(cumulative):
        if stop_value <= bound:
            return choices[index], stop_value
    return None, stop_value


def planout_bernoulli_trial(p: float, units: Units, salt: str) -> int:
    """``BernoulliTrial``: 1 when the uniform draw is ``<= p`` (so ``p=0`` still fires on hash 0)."""
    if not 0.0 <= p <= 1.0:
        raise _bad("p", f"must be between 0 and 1, got {p}")
    return 1 if planout_uniform(units, salt, 0.0, 1.0) <= p else 0


def planout_random_integer(min_val: int, max_val: int, units: Units, salt: str) -> int:
    """``RandomInteger``: ``min + hash % (max - min + 1)``, both ends inclusive."""
    if max_val < min_val:
        raise _bad("max", f"{max_val} is below min {min_val}")
    return min_val + planout_hash(units, salt) % (max_val - min_val + 1)


def planout_random_float(min_val: float, max_val: float, units: Units, salt: str) -> float:
    """``RandomFloat``: the uniform draw scaled to ``[min_val, max_val)`` (arguments coerced to float)."""
    return planout_uniform(units, salt, float(min_val), float(max_val))


def _draw_units(units: Units) -> tuple[list[Unit], bool]:
    """The unit list the first draw appends to, and whether later draws keep appending to it."""
    if isinstance(units, str | int):
        return [units], False
    return list(units), True


def planout_sample(
    choices: Sequence[T], units: Units, salt: str, *, draws: int | None = None, fast: bool = False
) -> list[T]:
    """``Sample`` (``fast=False``) or ``FastSample``: a Fisher-Yates shuffle keyed by PlanOut's hash.

    The swap partner of position ``i`` is ``hash(units + [i]) % (i + 1)``, for ``i`` from the last
    position down to 1. ``Sample`` then returns the first ``draws``; ``FastSample`` stops as soon as
    the last ``draws`` positions are settled and returns those.
    """
    shuffled = list(choices)
    num_draws = len(shuffled) if draws is None else draws
    if not 0 <= num_draws <= len(shuffled):
        raise _bad("draws", f"cannot make {num_draws} draws from {len(shuffled)} choices")
    base, accumulates = _draw_units(units)
    stopping_point = len(shuffled) - num_draws
    for i in range(len(shuffled) - 1, 0, -1):
        hashed = [*base, i]
        if accumulates:
            base = hashed
        j = _hash_units(salt, hashed) % (i + 1)
        shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
        if fast and stopping_point == i:
            return shuffled[i:]
    return shuffled[:num_draws]
