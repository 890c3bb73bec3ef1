"""GrowthBook's hashing and bucketing, as the JavaScript SDK and growthbook-python 4.x compute them.

- FNV-1a 32 runs over UTF-16 code units (JavaScript ``charCodeAt``), so an emoji is two surrogates.
  growthbook-python 2.x hashed code points (``ord``), which differs from JS for non-BMP characters only;
  4.x matches JS, and so do we.
- v1: ``fnv(value + seed) % 1000 / 1000`` (biased, kept for old experiments); v2:
  ``fnv(str(fnv(seed + value))) % 10000 / 10000``. Any other version hashes to ``None``.
- Bucket ranges cumulate IEEE doubles in variation order: ``[start, start + coverage * w)``, with the
  coverage clamped to ``[0, 1]``. Weights are *not* renormalised: a vector of the wrong length or
  whose sum is outside ``[0.99, 1.01]`` is replaced by equal weights (4.x also rejects negative or
  non-finite weights; JS would bucket on them).
- A value is hashed as JavaScript ``String(value)`` would render it: ``1.0`` -> ``"1"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TypeGuard

__all__ = [
    "growthbook_bucket_ranges",
    "growthbook_choose_variation",
    "growthbook_equal_weights",
    "growthbook_fnv1a32",
    "growthbook_hash",
    "growthbook_hash_string",
    "growthbook_in_namespace",
    "growthbook_in_range",
    "growthbook_is_hashable",
    "growthbook_weights_used",
]

Range = tuple[float, float]

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_WEIGHT_SUM_MIN, _WEIGHT_SUM_MAX = 0.99, 1.01


def _utf16_code_units(text: str) -> Iterable[int]:
    if text.isascii():
        return text.encode("ascii")
    raw = text.encode("utf-16-le", "surrogatepass")
    return (raw[i] | raw[i + 1] << 8 for i in range(0, len(raw), 2))


def growthbook_fnv1a32(text: str) -> int:
    """32-bit FNV-1a over the UTF-16 code units of ``text``, like the JS SDK's ``hashFnv32a``."""
    value = _FNV_OFFSET
    for unit in _utf16_code_units(text):
        value = ((value ^ unit) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def growthbook_hash(seed: str, value: str, version: int) -> float | None:
    """GrowthBook's ``hash``: a position in ``[0, 1)``, or ``None`` for an unknown ``version``."""
    if version == 2:
        return growthbook_fnv1a32(str(growthbook_fnv1a32(seed + value))) % 10000 / 10000
    if version == 1:
        return growthbook_fnv1a32(value + seed) % 1000 / 1000
    return None


def growthbook_in_range(n: float, bucket: Range) -> bool:
    """Half-open: ``start <= n < end``."""
    return bucket[0] <= n < bucket[1]


def growthbook_choose_variation(n: float, ranges: Sequence[Range]) -> int:
    """The index of the first range containing ``n``, or -1 (not in the experiment)."""
    return next((i for i, bucket in enumerate(ranges) if growthbook_in_range(n, bucket)), -1)


def growthbook_in_namespace(hash_value: str, namespace: tuple[str, float, float]) -> bool:
    """Whether ``hash_value`` is in the namespace slice ``(id, start, end)``: v1 hash seeded ``"__" + id``."""
    name, start, end = namespace
    n = growthbook_hash("__" + name, hash_value, 1)
    return n is not None and start <= n < end


def growthbook_equal_weights(num_variations: int) -> list[float]:
    """``1 / n`` for each of ``n`` variations (empty below one)."""
    return [1 / num_variations] * num_variations if num_variations >= 1 else []


def _usable_weight(weight: object) -> bool:
    if not isinstance(weight, int | float) or isinstance(weight, bool):
        return False
    try:
        return math.isfinite(weight) and weight >= 0
    except OverflowError:  # an int too large for a double
        return False


def growthbook_weights_used(num_variations: int, weights: Sequence[float] | None) -> list[float]:
    """The weights bucketing really uses: ``weights`` if valid, else equal weights (see module doc)."""
    if weights is None or len(weights) != num_variations or not all(map(_usable_weight, weights)):
        return growthbook_equal_weights(num_variations)
    total = 0.0
    for weight in weights:  # left to right, as JS reduce (Python >= 3.12 sum() would compensate)
        total += weight
    if not _WEIGHT_SUM_MIN <= total <= _WEIGHT_SUM_MAX:
        return growthbook_equal_weights(num_variations)
    return list(weights)


def growthbook_bucket_ranges(
    num_variations: int, coverage: float = 1, weights: Sequence[float] | None = None
) -> list[Range]:
    """GrowthBook's ``getBucketRanges``: one ``[start, start + coverage * weight)`` per variation."""
    coverage = min(max(coverage, 0), 1)
    cumulative: float = 0
    ranges: list[Range] = []
    for weight in growthbook_weights_used(num_variations, weights):
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def growthbook_is_hashable(value: object) -> TypeGuard[str | int | float]:
    """Whether a value can identify a user: a non-empty string or a finite, non-zero number (no booleans)."""
    if isinstance(value, str):
        return value != ""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return value != 0 and math.isfinite(value)
    except OverflowError:  # JS would see Infinity
        return False


def growthbook_hash_string(value: str | int | float) -> str:
    """``String(value)`` in JavaScript: strings as they are, numbers as ECMAScript ``Number::toString``."""
    if isinstance(value, str):
        return value
    try:
        number = float(value)
    except OverflowError:  # JS has only doubles: an int this large is +-Infinity
        number = math.inf if value > 0 else -math.inf
    return _js_number(number)


def _js_number(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if x == 0:
        return "0"
    if x < 0:
        return "-" + _js_number(-x)
    if math.isinf(x):
        return "Infinity"
    # repr() gives the shortest digits that round-trip, which is what ECMAScript asks for too.
    _, digit_tuple, exponent = Decimal(repr(x)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k, n = len(digits), int(exponent) + len(digits)  # x = 0.<digits> * 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    mantissa = digits[0] + (f".{digits[1:]}" if k > 1 else "")
    return f"{mantissa}e{'+' if n - 1 > 0 else '-'}{abs(n - 1)}"
