"""Settings, topic-to-table mapping and rows, and the CLI surface of the sink."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from abstream.cli import app
from schemas.serde import AvroSerde
from sinks.settings import SinkSettings
from sinks.tables import TABLES, sink_topics
from sinks.worker import INSERT_SETTINGS
from tests.unit.schemas.schema_examples import VALID


def test_sink_settings_come_from_abstream_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ABSTREAM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ABSTREAM_SINK_BATCH_ROWS", "250")
    monkeypatch.setenv("ABSTREAM_MULTI_VARIANT_POLICY", "first_seen")

    settings = SinkSettings()

    assert (settings.sink_batch_rows, settings.sink_batch_interval_s, settings.sink_group) == (
        250,
        1.0,
        "abstream-sink",
    )
    assert settings.multi_variant_policy == "first_seen"
    assert settings.endpoint_file == tmp_path / "sink.json"
    assert settings.clickhouse_url == f"chdb://{tmp_path}/clickhouse"


@pytest.mark.parametrize(("key", "value"), [("multi_variant_policy", "drop"), ("sink_batch_rows", 0), ("nonsense", 1)])
def test_bad_sink_settings_fail_loudly(key: str, value: object) -> None:
    with pytest.raises(ValidationError, match=key):
        SinkSettings(**{key: value})


def test_the_sink_reads_the_six_topics_the_jobs_write() -> None:
    topics = sink_topics("abstream.")

    assert {name: spec.table for name, spec in topics.items()} == {
        "abstream.first-exposures": "first_exposures",
        "abstream.attributed-conversions": "conversions",
        "abstream.assignment-flags": "assignment_flags",
        "abstream.variant-switches": "variant_switches",
        "abstream.unattributed-events": "unattributed_events",
        "abstream.experiment-definitions": "experiment_definitions",
    }


def test_a_variant_switch_row_names_the_first_variant_seen() -> None:
    flag = AvroSerde("AssignmentFlag").decode(AvroSerde("AssignmentFlag").encode(VALID["AssignmentFlag"]))
    spec = TABLES["variant_switches"]

    row = dict(zip(spec.insert_columns, spec.row({**flag, "variants_seen": ["A", "B"]}, 2, 7), strict=True))
    fallback = dict(zip(spec.insert_columns, spec.row({**flag, "variants_seen": []}, 2, 7), strict=True))

    assert (row["first_variant"], row["source_partition"], row["source_offset"]) == ("A", 2, 7)
    assert row["event_id"] == uuid.UUID(VALID["AssignmentFlag"]["event_id"])
    assert fallback["first_variant"] == "A"  # expected_variant when nothing is listed


def test_a_definition_row_splits_the_variants_into_arrays() -> None:
    serde = AvroSerde("ExperimentDefinition")
    record = serde.decode(serde.encode({**VALID["ExperimentDefinition"], "start_ts": 1, "end_ts": 2}))
    spec = TABLES["experiment_definitions"]

    row = dict(zip(spec.insert_columns, spec.row(record, 0, 0), strict=True))

    assert (row["variant_names"], row["variant_weights"]) == (["A", "B"], [50, 50])


def test_a_malformed_uuid_is_refused_before_clickhouse_sees_it() -> None:
    spec = TABLES["assignment_flags"]

    with pytest.raises(ValueError, match="badly formed"):
        spec.row({**VALID["AssignmentFlag"], "event_id": "nope"}, 0, 0)


def test_every_insert_is_synchronous_and_deduplicated_through_the_views() -> None:
    assert INSERT_SETTINGS["async_insert"] == 0
    assert INSERT_SETTINGS["deduplicate_blocks_in_dependent_materialized_views"] == 1


def test_the_cli_has_sink_migrate_run_and_report() -> None:
    runner = CliRunner()

    assert "sink" in runner.invoke(app, ["--help"]).output and "report" in runner.invoke(app, ["--help"]).output
    assert {"migrate", "run"} <= set(runner.invoke(app, ["sink", "--help"]).output.split())
    assert "--json" in runner.invoke(app, ["report", "--help"]).output
