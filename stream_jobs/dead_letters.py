"""Dead letters: a record the jobs cannot apply goes to the dead-letter topic, the job goes on.

The DeadLetter record keeps where it came from (topic, partition, offset), its key and raw bytes, and
why it failed, so an operator can inspect it (``abstream deadletters list``) and re-inject it into its
source topic after a fix (``abstream deadletters replay``). Its ``error_kind`` is the decode error's
(``truncated``, ``bad_magic``, ``unknown_fingerprint``, ``wrong_record``, ``schema_mismatch``...),
``invalid_record`` for a record that breaks the contract, ``wrong_key`` for a key that is not the unit id,
or ``processing_error`` for a valid record a job failed on.
"""

from __future__ import annotations

from typing import Any

from schemas.contract import CONTRACTS

__all__ = ["INVALID_RECORD", "WRONG_KEY", "dead_letter", "rejection"]

INVALID_RECORD = "invalid_record"
"""A decoded record that breaks the contract (``schemas.contract``); the message names the field and the rule."""
WRONG_KEY = "wrong_key"
"""A record whose Kafka key is null or not its unit id: it may sit in another unit's partition."""


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


def rejection(record_name: str, record: dict[str, Any], key: bytes | None) -> tuple[str, str] | None:
    """``(error_kind, message)`` for a decoded Exposure or Event the jobs must not apply, or None.

    The contract first (a record without a valid unit id has no key to compare), then the key: per-unit
    state is only right if every record of a unit comes through its unit's partition.
    """
    violation = CONTRACTS[record_name].check(record)
    if violation is not None:
        return INVALID_RECORD, violation.message
    if key is None or key != record["unit_id"].encode():
        return (
            WRONG_KEY,
            f"{record_name}: key {key!r} is not the unit id {record['unit_id']!r}; co-partitioning needs it",
        )
    return None
