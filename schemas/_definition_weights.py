"""One source of truth for the variant weights of a definition whose SDK splits the traffic itself.

For ``planout``, ``growthbook`` and ``eppo`` the SDK assigns by ``scheme_params`` (weights as the SDK
writes them, floats included); ``variants[].weight`` is what the SRM test checks. So the variants'
weights may be left out, and are then derived from ``scheme_params`` (the smallest integers in the
same proportions, or parts per million when the SDK's shares are no small fractions); written, they
must give the same shares, to one part in a million.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

from abstream.errors import SchemeParamsError
from schemas.hashing import Split, traffic_split

__all__ = ["SDK_SPLIT_SCHEMES", "integer_weights", "weight_problems", "with_derived_weights"]

SDK_SPLIT_SCHEMES = ("planout", "growthbook", "eppo")
_RESOLUTION = 10**6
_SMALL_DENOMINATOR = 10_000


def integer_weights(shares: Mapping[str, Fraction]) -> dict[str, int]:
    """Integer weights for ``shares``: exact when they are small fractions, else in parts per million."""
    small = {name: share.limit_denominator(_SMALL_DENOMINATOR) for name, share in shares.items()}
    scale = math.lcm(*(f.denominator for f in small.values()))
    if scale <= _RESOLUTION and all(abs(small[n] - s) < Fraction(1, 10**12) for n, s in shares.items()):
        weights = {name: int(f * scale) for name, f in small.items()}
        divisor = math.gcd(*weights.values()) or 1
        return {name: weight // divisor for name, weight in weights.items()}
    return {name: round(share * _RESOLUTION) for name, share in shares.items()}


def _split(scheme: object, params: object, key: object) -> Split | None:
    if scheme not in SDK_SPLIT_SCHEMES or not isinstance(params, Mapping) or not isinstance(key, str):
        return None
    try:
        return traffic_split(str(scheme), params, key)
    except (SchemeParamsError, TypeError, ValueError):
        return None  # reported on its own by the scheme_params check


def with_derived_weights(data: Any) -> Any:
    """``data`` (a definition as written) with the variants' weights derived when none is written."""
    if not isinstance(data, Mapping):
        return data
    variants = data.get("variants")
    if not isinstance(variants, list) or not all(isinstance(v, Mapping) and "weight" not in v for v in variants):
        return data
    split = _split(data.get("scheme"), data.get("scheme_params"), data.get("key"))
    if split is None or not {v.get("name") for v in variants} <= split.shares.keys():
        return data
    weights = integer_weights(split.shares)
    return {**data, "variants": [{**v, "weight": weights[v["name"]]} for v in variants]}


def weight_problems(
    scheme: str, params: Mapping[str, Any], key: str, weights: Mapping[str, int]
) -> list[tuple[str, str]]:
    """The variants' weights against the split ``scheme_params`` give, when they disagree."""
    split = _split(scheme, params, key)
    total = sum(weights.values())
    if split is None or total <= 0 or set(weights) != set(split.shares):
        return []
    given = {name: Fraction(weight, total) for name, weight in weights.items()}
    if all(abs(given[name] - share) <= Fraction(1, _RESOLUTION) for name, share in split.shares.items()):
        return []
    message = (
        f"weights {_listed(weights, str)} split {_listed(given, _percent)}, but {split.source} splits "
        f"{_listed(split.shares, _percent)}: the {scheme} SDK assigns by scheme_params and the SRM test checks "
        "the variants' weights; leave the weights out (they are then derived from scheme_params) or make them "
        "the same shares"
    )
    return [("variants", message)]


def _listed(values: Mapping[str, Any], show: Callable[[Any], str]) -> str:
    return ", ".join(f"{name} {show(value)}" for name, value in values.items())


def _percent(share: Fraction) -> str:
    return f"{float(share) * 100:.4g}%"
