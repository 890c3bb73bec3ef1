"""Dead letters: a record that cannot be decoded or validated goes to the dead-letter topic, the job goes on.

The DeadLetter record keeps where it came from (topic, partition, offset), its key and raw bytes, and
why it failed, so an operator can inspect it (``abstream deadletters list``) and re-inject it into its
source topic after a fix (``abstream deadletters replay``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["dead_letter", "invalid_reason"]

_REQUIRED = {
    "Exposure": ("event_id", "experiment", "variant", "unit_type", "unit_id"),
    "Event": ("event_id", "unit_type", "unit_id", "name"),
}


def dead_letter(
    *, topic: str, partition: int, offset: int, key: bytes | None, raw: bytes, kind: str, message: str, now_ms: int
) -> dict[str, Any]:
    return {
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "key": key,
        "raw": raw,
        "error_kind": kind,
        "message": message,
        "job": "units",
        "first_seen_ts": now_ms,
        "attempts": 1,
    }


def invalid_reason(record_name: str, record: dict[str, Any], key: bytes | None) -> str | None:
    """Why a decoded record cannot be processed (empty ids, a key that is not its unit id), or None."""
    empty = [f for f in _REQUIRED[record_name] if not record.get(f)]
    if empty:
        return f"{record_name}: empty required field(s) {', '.join(empty)}"
    if key is not None and key != record["unit_id"].encode():
        return f"{record_name}: key {key!r} is not the unit id {record['unit_id']!r}; co-partitioning needs it"
    return None
