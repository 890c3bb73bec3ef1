"""The "sha256-weights" scheme of the web A/B tutorial we started from (seed 004, ``assign_group``).

``int(sha256(f"{unit}:{salt}"), big-endian) % sum(weights)``, then the variants are walked in sorted
name order with cumulative integer weights; the first whose cumulative weight exceeds the value wins.
The salt is the experiment name in the tutorial. Weights are integers, so there is no float rounding
anywhere; a zero-weight variant is never chosen.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Mapping
from itertools import accumulate

from abstream.errors import SchemeParamsError

from .assignment import Assignment

__all__ = ["SHA256_WEIGHTS", "assign_sha256_weights", "sha256_weights_bucket", "sha256_weights_total"]

SHA256_WEIGHTS = "sha256-weights"


def sha256_weights_bucket(unit: str, salt: str, total: int) -> int:
    """The position of ``unit`` in ``[0, total)``: the whole 256-bit digest, big-endian, mod ``total``."""
    digest = hashlib.sha256(f"{unit}:{salt}".encode()).digest()
    return int.from_bytes(digest, "big") % total


def sha256_weights_total(weights: Mapping[str, int]) -> int:
    """Validate the weights and return their sum, the modulus (as strict as the tutorial's admin page)."""
    for name, weight in weights.items():
        if not isinstance(name, str):
            raise SchemeParamsError(
                f"{SHA256_WEIGHTS}: variant names must be strings, got {name!r}",
                scheme=SHA256_WEIGHTS,
                key="weights",
            )
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
            raise SchemeParamsError(
                f"{SHA256_WEIGHTS}: weights.{name} must be a non-negative integer, got {weight!r}",
                scheme=SHA256_WEIGHTS,
                key="weights",
            )
    total = sum(weights.values())
    if total <= 0:
        raise SchemeParamsError(
            f"{SHA256_WEIGHTS}: weights must sum to a positive integer, got {dict(weights)!r}",
            scheme=SHA256_WEIGHTS,
            key="weights",
        )
    return total


def assign_sha256_weights(unit: str, salt: str, weights: Mapping[str, int]) -> Assignment:
    """Assign ``unit`` exactly as the tutorial's ``assign_group`` does (``salt`` = experiment name).

    Usage: ``assign_sha256_weights("device-1", "moon_mars", {"Moon": 50, "Mars": 50}).variant``
    """
    total = sha256_weights_total(weights)
    bucket = sha256_weights_bucket(unit, salt, total)
    names = sorted(weights)
    bounds = list(accumulate(weights[name] for name in names))
    index = bisect_right(bounds, bucket)  # the first cumulative weight above the bucket; bucket < total
    return Assignment(
        scheme=SHA256_WEIGHTS,
        variant=names[index],
        bucket=bucket,
        reason=f"bucket {bucket} of {total} is below {names[index]!r}'s cumulative weight {bounds[index]}",
        value=names[index],
        inputs={"hashed": f"{unit}:{salt}", "total": total, "order": names},
    )
