"""Parse one flag of an Eppo Universal Flag Configuration (UFC, the SDK's wire format) into :class:`EppoFlag`.

Like the SDK, a variation whose value does not fit ``variationType`` is dropped, and a split naming a
missing variation stays: a subject landing there gets the caller's default (``variant=None``), which
is what the SDK serves. Unknown keys fail loudly: a new UFC field could change bucketing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from ._params import Params
from .eppo import EPPO, EppoAllocation, EppoFlag, EppoShard, EppoSplit

__all__ = ["eppo_flag"]

_VARIATION_TYPES = ("STRING", "INTEGER", "NUMERIC", "BOOLEAN", "JSON")


def eppo_flag(params: Mapping[str, object]) -> EppoFlag:
    """Parse a UFC flag object (``ufc["flags"][flag_key]``); the keys are Eppo's camelCase ones."""
    p = Params.of(
        EPPO,
        params,
        required=("key", "enabled", "variationType", "variations", "allocations", "totalShards"),
        optional=("entityId",),
    )
    total = p.int_("totalShards")
    if total < 1:
        raise p.error("totalShards", f"must be positive, got {total}")
    variations = _variations(p)
    allocations = tuple(_allocation(p, i, a, total) for i, a in enumerate(p.list_("allocations")))
    enabled = p.bool_("enabled", True)
    return EppoFlag(p.str_("key"), allocations, variations, total, enabled)


def _fits(kind: str, value: object) -> bool:
    if kind == "BOOLEAN":
        return isinstance(value, bool)
    if kind in ("NUMERIC", "INTEGER"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        return kind == "NUMERIC" or float(value).is_integer()
    if not isinstance(value, str):
        return False
    if kind == "JSON":
        try:
            json.loads(value)
        except ValueError:
            return False
    return True


def _variations(p: Params) -> dict[str, object]:
    kind = p.str_("variationType")
    if kind not in _VARIATION_TYPES:
        raise p.error("variationType", f"must be one of {', '.join(_VARIATION_TYPES)}, got {kind!r}")
    given = p.data.get("variations")
    if not isinstance(given, Mapping):
        raise p.error("variations", f"must be a mapping of variation key to {{key, value}}, got {given!r}")
    variations: dict[str, object] = {}
    for name, entry in given.items():
        v = Params.of(EPPO, entry, required=("key", "value"), where=f"{p.where}variations.{name}.")
        if _fits(kind, v.data["value"]):
            variations[v.str_("key")] = v.data["value"]
    return variations


def _timestamp(p: Params, key: str) -> datetime | None:
    text = p.opt_str(key)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise p.error(key, f"is not an ISO 8601 timestamp: {text!r}") from None
    if when.tzinfo is None:
        raise p.error(key, f"needs a timezone (UFC timestamps are UTC, ending in Z): {text!r}")
    return when


def _allocation(p: Params, index: int, given: object, total: int) -> EppoAllocation:
    a = Params.of(
        EPPO,
        given,
        required=("key", "splits"),
        optional=("rules", "startAt", "endAt", "doLog"),
        where=f"{p.where}allocations.{index}.",
    )
    splits = tuple(_split(a, i, s, total) for i, s in enumerate(a.list_("splits")))
    rules = a.opt_list("rules") or ()
    return EppoAllocation(
        a.str_("key"),
        splits,
        _timestamp(a, "startAt"),
        _timestamp(a, "endAt"),
        bool(rules),
        a.bool_("doLog", True),
    )


def _split(a: Params, index: int, given: object, total: int) -> EppoSplit:
    s = Params.of(
        EPPO,
        given,
        required=("variationKey", "shards"),
        optional=("extraLogging",),
        where=f"{a.where}splits.{index}.",
    )
    shards = tuple(_shard(s, i, sh, total) for i, sh in enumerate(s.list_("shards")))
    return EppoSplit(s.str_("variationKey"), shards)


def _shard(s: Params, index: int, given: object, total: int) -> EppoShard:
    sh = Params.of(EPPO, given, required=("salt", "ranges"), where=f"{s.where}shards.{index}.")
    ranges: list[tuple[int, int]] = []
    for j, r in enumerate(sh.list_("ranges")):
        rng = Params.of(EPPO, r, required=("start", "end"), where=f"{sh.where}ranges.{j}.")
        start, end = rng.int_("start"), rng.int_("end")
        if not 0 <= start <= end <= total:
            raise rng.error("end", f"range [{start}, {end}) is not within [0, {total}]")
        ranges.append((start, end))
    return EppoShard(sh.str_("salt"), tuple(ranges))
