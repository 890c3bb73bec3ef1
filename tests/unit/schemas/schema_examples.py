"""Test data for the contract: a valid example per model, and any record of a schema version (hypothesis)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

from schemas.catalog import SchemaVersion

__all__ = ["VALID", "records", "texts"]

# One valid record per model, in the JSON form the CLI accepts (and models validate).
VALID: Mapping[str, dict[str, Any]] = {
    "Exposure": {
        "event_id": "6c4e3c0e-2a6f-4a55-9d0c-4c7f6fb1b2a1",
        "experiment": "checkout_v2",
        "revision": 3,
        "variant": "B",
        "unit_type": "user_id",
        "unit_id": "u-123",
        "scheme": "growthbook",
        "hash_seed": "checkout_v2",
        "hash_version": 2,
        "bucket_position": 0.4312,
        "bucket_index": 43,
        "params": {"color": "green"},
        "sticky_bucket_used": True,
        "source": {"sdk": "abstream-python", "sdk_version": "0.1.0"},
        "client_ts": "2026-01-01T12:00:00.123Z",
        "received_ts": 1767268800500,
        "context": {"platform": "web", "is_bot": "false"},
        "sampling_rate": 0.5,
    },
    "Event": {
        "event_id": "0b8a1c55-4a07-4f5e-a1c4-8f6e0d5f0a11",
        "unit_type": "user_id",
        "unit_id": "u-123",
        "name": "purchase",
        "value": 42.5,
        "ts": 1767268900000,
        "properties": {"sku": "x-1"},
    },
    "ExperimentDefinition": {
        "key": "checkout_v2",
        "revision": 3,
        "title": "New checkout",
        "unit_type": "user_id",
        "scheme": "sha256-weights",
        "scheme_params": '{"salt": "checkout_v2"}',
        "variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}],
        "fallback_variant": "A",
        "state": "active",
        "start_ts": "2026-01-01T00:00:00Z",
        "end_ts": "2026-02-01T00:00:00Z",
        "attribution_window_ms": 604_800_000,
        "dedupe": "window",
        "dedupe_window_ms": 86_400_000,
        "owner": "checkout-team",
        "published_ts": 1767225600000,
        "definition_hash": "ab" * 32,
    },
    "AssignmentFlag": {
        "event_id": "6c4e3c0e-2a6f-4a55-9d0c-4c7f6fb1b2a1",
        "experiment": "checkout_v2",
        "revision": 3,
        "unit_type": "user_id",
        "unit_id": "u-123",
        "logged_variant": "B",
        "expected_variant": "A",
        "reason": "variant_mismatch",
        "detail": "sha256-weights puts u-123 in A",
        "variants_seen": ["B"],
        "exposure_ts": 1767268800123,
        "flagged_ts": 1767268801000,
    },
    "DeadLetter": {
        "source_topic": "exposures",
        "source_partition": 2,
        "source_offset": 41,
        "key": "dS0xMjM=",
        "raw": "wwEA",
        "error_kind": "truncated",
        "message": "body ends early",
        "job": "first_exposures",
        "first_seen_ts": 1767268801000,
        "attempts": 2,
    },
    "Source": {"sdk": "abstream-python", "sdk_version": "0.1.0", "app": "shop", "host": "web-1"},
    "Variant": {"name": "A", "weight": 1},
}
VALID = {
    **VALID,
    "FirstExposure": {**VALID["Exposure"], "duplicates": 4},
    "AttributedConversion": {
        **VALID["Event"],
        "experiment": "checkout_v2",
        "revision": 3,
        "variant": "B",
        "exposure_event_id": "6c4e3c0e-2a6f-4a55-9d0c-4c7f6fb1b2a1",
        "exposure_ts": 1767268800123,
        "latency_ms": 99877,
        "late": True,
    },
    "UnattributedEvent": {**VALID["Event"], "reason": "never_exposed"},
}

texts = st.text(st.characters(codec="utf-8"), max_size=20)

_PRIMITIVES: Mapping[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "bytes": st.binary(max_size=20),
    "string": texts,
}


def records(version: SchemaVersion) -> st.SearchStrategy[dict[str, Any]]:
    """Any record the schema admits (NaN excluded, so that equality means a faithful round trip)."""
    return _strategy(version.wire, version.wire["__named_schemas"])


def _strategy(schema: Any, named: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    if isinstance(schema, str):
        return _PRIMITIVES[schema] if schema in _PRIMITIVES else _strategy(named[schema], named)
    if isinstance(schema, list):
        return st.one_of([_strategy(branch, named) for branch in schema])
    kind = schema["type"]
    if kind == "record":
        return st.fixed_dictionaries({field["name"]: _strategy(field["type"], named) for field in schema["fields"]})
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(_strategy(schema["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(texts, _strategy(schema["values"], named), max_size=3)
    return _strategy(kind, named)
