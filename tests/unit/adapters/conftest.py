"""A recording sink: adapters are tested as the mappings they are, on the real SDKs, without a broker.

The sink takes exactly ``ExposureLogger.log_exposure``'s arguments, runs the logger's own caller-side
checks and Avro encoding (``producers.records``, ``AvroSerde``), and keeps the decoded record: what
an adapter maps is therefore what Kafka would receive. The real logger on a real broker is exercised
in ``tests/integration/test_adapters.py``.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

# Imported first on purpose: it makes planout 0.6 importable on Python >= 3.10 (see that module).
import producers.adapters.planout  # noqa: F401
from producers.logger import ExposureLogger, Source
from producers.records import (
    build_event,
    build_exposure,
    check_exposure,
    check_map,
    exposure_extras,
    new_event_id,
    to_millis,
)
from schemas.serde import AvroSerde

_EXPOSURE = inspect.signature(ExposureLogger.log_exposure)
_EVENT = inspect.signature(ExposureLogger.log_event)
_SOURCE = Source(sdk="test").as_record()


class RecordingSink:
    """Keeps the records it would have sent (decoded); ``fail_with`` makes every call raise it."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.exposures: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.fail_with = fail_with

    def log_exposure(self, **fields: Any) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        a = _EXPOSURE.bind(None, **fields)
        a.apply_defaults()
        f = a.arguments
        check_exposure(f["experiment"], f["variant"], f["unit_id"], f["revision"], f["unit_type"], f["scheme"])
        extras = exposure_extras(
            f["hash_seed"], f["hash_version"], f["bucket_position"], f["bucket_index"], f["params"],
            f["hash_used"], f["sticky_bucket_used"], f["forced"], f["sampling_rate"], f["context"],
        )  # fmt: skip
        values = (
            new_event_id(), f["experiment"], f["revision"], f["variant"], f["unit_type"], f["unit_id"], f["scheme"],
            to_millis("Exposure", "client_ts", f["client_ts"]), extras,
        )  # fmt: skip
        serde = AvroSerde("Exposure")
        self.exposures.append(serde.decode(serde.encode(build_exposure(values, _SOURCE))))
        return values[0]

    def log_event(self, **fields: Any) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        a = _EVENT.bind(None, **fields)
        a.apply_defaults()
        f = a.arguments
        ts = to_millis("Event", "ts", f["ts"])
        properties = check_map("Event", "properties", f["properties"])
        values = (new_event_id(), f["unit_type"], f["unit_id"], f["name"], f["value"], ts, properties)
        serde = AvroSerde("Event")
        self.events.append(serde.decode(serde.encode(build_event(values, _SOURCE))))
        return values[0]


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()
