"""What the adapters share: the never-raising delivery, value conversion, revision choice."""

from __future__ import annotations

import logging
from enum import StrEnum

import pytest

from producers.adapters import AdapterStats
from producers.adapters.base import Delivery, ExposureFields, resolve_revision, string_map, string_value
from tests.unit.adapters.conftest import RecordingSink

FIELDS = ExposureFields(experiment="e", variant="A", unit_id="u", revision=1, unit_type="user_id", scheme="external")


def test_delivery_counts_logged_skipped_and_failed(sink: RecordingSink) -> None:
    delivery = Delivery(sink, adapter="test")
    assert delivery.send(lambda: FIELDS) is not None
    assert delivery.send(lambda: None) is None
    assert delivery.send(lambda: {**FIELDS, "revision": -1}) is None
    assert delivery.send(lambda: 1 / 0) is None  # type: ignore[arg-type,return-value]
    assert delivery.stats == AdapterStats(logged=1, skipped=1, failed=2)
    assert len(sink.exposures) == 1


def test_failures_are_logged_once_then_sparsely(caplog: pytest.LogCaptureFixture) -> None:
    delivery = Delivery(RecordingSink(fail_with=RuntimeError("down")), adapter="test")
    with caplog.at_level(logging.WARNING, logger="abstream.producers.adapters"):
        for _ in range(5):
            delivery.send(lambda: FIELDS)
    assert len(caplog.records) == 1 and "RuntimeError: down" in caplog.text
    assert delivery.stats.failed == 5


def test_values_become_strings_the_way_the_schema_expects() -> None:
    class Colour(StrEnum):
        RED = "red"

    assert string_map({"a": 1, "b": True, "c": None, "d": [1, "x"], "e": Colour.RED, "f": 0.5}, prefix="p.") == {
        "p.a": "1", "p.b": "true", "p.d": '[1,"x"]', "p.e": "red", "p.f": "0.5",
    }  # fmt: skip
    assert string_value({"b": 1, "a": 2}) == '{"a":2,"b":1}'


@pytest.mark.parametrize(
    ("revisions", "found", "expected"),
    [({"e": 5}, "3", 5), ({}, "3", 3), ({}, 4, 4), ({}, "phase-2", 1), ({}, None, 1), ({}, -1, 1), ({}, True, 1)],
)
def test_revision_precedence(revisions: dict[str, int], found: object, expected: int) -> None:
    assert resolve_revision("e", revisions, found, 1) == expected
