"""Durations as people write them in definition files (``7d``, ``1h30m``), as the milliseconds records keep.

Experiments (``attribution_window``, ``dedupe_window``) and metrics (``window``) share these, so they
live below both.
"""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNIT_MS = {"w": 604_800_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
_INT64 = 2**63


def parse_duration(value: object) -> int:
    """Milliseconds from ``"7d"``, ``"24h"``, ``"1h30m"``, ``"500ms"`` or a whole number of seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < _INT64 // 1000:
        return value * 1000
    if isinstance(value, str):
        text = value.replace(" ", "")
        parts = _DURATION_PART.findall(text)
        total = sum(int(n) * _UNIT_MS[unit] for n, unit in parts)
        if parts and "".join(n + unit for n, unit in parts) == text and 0 < total < _INT64:
            return total
    raise ValueError(f"{value!r} is not a positive duration; write e.g. 7d, 24h, 90m, 1h30m or a number of seconds")


def format_duration(millis: int) -> str:
    """The shortest ``parse_duration`` spelling of ``millis``: 604800000 gives ``"7d"``."""
    out, left = [], millis
    for unit, size in _UNIT_MS.items():
        if unit != "w" and left >= size:
            out.append(f"{left // size}{unit}")
            left %= size
    return "".join(out) or "0ms"
