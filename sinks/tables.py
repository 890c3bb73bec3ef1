"""Which topic goes to which detail table, and how a decoded record becomes a row.

One topic feeds one table, so a batch (one partition's offset range) is one insert with one
deduplication token. Rows are plain tuples in ``columns`` order; Avro timestamps stay epoch
milliseconds, which ClickHouse's ``DateTime64(3)`` takes as they are. The worker checks each record
against the contract (``schemas.contract``) first; a value that still cannot become a row raises
ValueError here, so the record is dead-lettered (``invalid_value``) instead of failing its whole batch
forever.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from deploy.topics import TopicSpec

__all__ = ["TABLES", "TableSpec", "sink_topics"]

Row = tuple[Any, ...]

_EXPOSURE_COLUMNS = (
    "experiment", "unit_id", "event_id", "revision", "variant", "unit_type", "scheme", "exposure_ts",
    "received_ts", "duplicates", "sampling_rate", "forced", "sticky_bucket_used", "hash_used", "context",
)  # fmt: skip
_CONVERSION_COLUMNS = (
    "experiment", "event_id", "unit_id", "unit_type", "name", "value", "ts", "received_ts", "revision",
    "variant", "exposure_event_id", "exposure_ts", "latency_ms", "late", "properties",
)  # fmt: skip
_FLAG_COLUMNS = (
    "experiment", "event_id", "reason", "revision", "unit_type", "unit_id", "logged_variant",
    "expected_variant", "detail", "variants_seen", "exposure_ts", "flagged_ts",
)  # fmt: skip
_DEFINITION_COLUMNS = (
    "key", "revision", "title", "unit_type", "scheme", "scheme_params", "variant_names", "variant_weights",
    "fallback_variant", "state", "rollout_variant", "start_ts", "end_ts", "attribution_window_ms", "dedupe",
    "dedupe_window_ms", "owner", "published_ts", "definition_hash", "metrics",
)  # fmt: skip
_UNATTRIBUTED_COLUMNS = (
    "event_id", "unit_id", "unit_type", "name", "value", "ts", "received_ts", "reason", "properties",
)  # fmt: skip
_SOURCE_COLUMNS = ("source_partition", "source_offset")


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A detail table: the record its topic carries, its columns, and the record-to-row function."""

    table: str
    record: str
    columns: tuple[str, ...]
    to_row: Callable[[Mapping[str, Any]], Row]
    skip_tombstones: bool = False

    @property
    def insert_columns(self) -> list[str]:
        return [*self.columns, *_SOURCE_COLUMNS]

    def row(self, record: Mapping[str, Any], partition: int, offset: int) -> Row:
        return (*self.to_row(record), partition, offset)


def _exposure_row(r: Mapping[str, Any]) -> Row:
    return (
        r["experiment"], r["unit_id"], UUID(r["event_id"]), r["revision"], r["variant"], r["unit_type"],
        r["scheme"], r["client_ts"], r["received_ts"], max(0, r["duplicates"]), r["sampling_rate"], r["forced"],
        r["sticky_bucket_used"], r["hash_used"], r["context"],
    )  # fmt: skip


def _conversion_row(r: Mapping[str, Any]) -> Row:
    values = {**r, "event_id": UUID(r["event_id"]), "exposure_event_id": UUID(r["exposure_event_id"])}
    return tuple(values[column] for column in _CONVERSION_COLUMNS)


def _flag_row(r: Mapping[str, Any]) -> Row:
    values = {**r, "event_id": UUID(r["event_id"])}
    return tuple(values[column] for column in _FLAG_COLUMNS)


def _switch_row(r: Mapping[str, Any]) -> Row:
    first = r["variants_seen"][0] if r["variants_seen"] else (r["expected_variant"] or r["logged_variant"])
    return (*_flag_row(r), first)


def _unattributed_row(r: Mapping[str, Any]) -> Row:
    values = {**r, "event_id": UUID(r["event_id"])}
    return tuple(values[column] for column in _UNATTRIBUTED_COLUMNS)


def _definition_row(r: Mapping[str, Any]) -> Row:
    names = [variant["name"] for variant in r["variants"]]
    weights = [variant["weight"] for variant in r["variants"]]
    values = {"metrics": "", **r, "variant_names": names, "variant_weights": weights}
    return tuple(values[column] for column in _DEFINITION_COLUMNS)


TABLES: Mapping[str, TableSpec] = {
    "first_exposures": TableSpec("first_exposures", "FirstExposure", _EXPOSURE_COLUMNS, _exposure_row),
    "attributed_conversions": TableSpec("conversions", "AttributedConversion", _CONVERSION_COLUMNS, _conversion_row),
    "assignment_flags": TableSpec("assignment_flags", "AssignmentFlag", _FLAG_COLUMNS, _flag_row),
    "variant_switches": TableSpec("variant_switches", "AssignmentFlag", (*_FLAG_COLUMNS, "first_variant"), _switch_row),
    "unattributed_events": TableSpec(
        "unattributed_events", "UnattributedEvent", _UNATTRIBUTED_COLUMNS, _unattributed_row
    ),
    "experiment_definitions": TableSpec(
        "experiment_definitions", "ExperimentDefinition", _DEFINITION_COLUMNS, _definition_row, skip_tombstones=True
    ),
}
"""By topic role (as in ``deploy/topics.yaml``); the compacted definitions topic may carry tombstones."""


def sink_topics(prefix: str) -> dict[str, TableSpec]:
    """The full topic names the sink consumes, with the table each feeds."""
    names = {topic.role: topic.name for topic in TopicSpec.load().resolve(prefix=prefix, brokers=3)}
    return {names[role]: spec for role, spec in TABLES.items()}
