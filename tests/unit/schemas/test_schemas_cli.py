"""``abstream schemas``: show, list, check, and encode/decode round trips through stdin and stdout."""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from typer.testing import CliRunner

from schemas import cli
from schemas.catalog import SchemaCatalog, SchemaVersion, default_catalog
from schemas.models import MODELS
from schemas.registry import ConfluentRegistry
from tests.unit.schemas.schema_examples import VALID

runner = CliRunner()


def _lines(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_encode_then_decode_gives_the_record_back(name: str) -> None:
    encoded = runner.invoke(cli.app, ["encode", name], input=_lines([VALID[name]]))
    assert encoded.exit_code == 0, encoded.output
    decoded = runner.invoke(cli.app, ["decode"], input=encoded.stdout)
    assert decoded.exit_code == 0, decoded.output
    out = json.loads(decoded.stdout)
    assert (out["schema"], out["version"]) == (f"io.abstream.{name}", default_catalog().latest(name).version)
    expected = MODELS[name].model_validate_json(json.dumps(VALID[name]))
    assert MODELS[name].model_validate_json(json.dumps(out["record"])) == expected


def test_confluent_framing_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    shared = ConfluentRegistry(SchemaRegistryClient.new_client({"url": "mock://cli"}))
    monkeypatch.setattr(cli, "_registry", lambda url: shared if url == "mock://cli" else None)
    args = ["encode", "Event", "--framing", "confluent", "--registry", "mock://cli"]
    encoded = runner.invoke(cli.app, args, input=_lines([VALID["Event"]]))
    assert encoded.exit_code == 0, encoded.output
    assert encoded.stdout.startswith("00")
    decoded = runner.invoke(cli.app, ["decode", "--registry", "mock://cli"], input=encoded.stdout)
    assert json.loads(decoded.stdout)["record"]["name"] == "purchase"


def test_bad_lines_are_reported_and_the_good_ones_still_encoded() -> None:
    good = VALID["Exposure"]
    text = _lines([good]) + "\n" + _lines([{**good, "variant": ""}]) + "{oops\n" + _lines([good])
    result = runner.invoke(cli.app, ["encode", "Exposure"], input=text)
    assert result.exit_code == 1
    assert len(result.stdout.split()) == 2
    assert "line 3: Exposure.variant: String should have at least 1 character (got '')" in result.stderr
    assert "line 4: Exposure: Invalid JSON" in result.stderr


def test_undecodable_lines_name_the_line_and_kind() -> None:
    good = runner.invoke(cli.app, ["encode", "Event"], input=_lines([VALID["Event"]])).stdout.strip()
    result = runner.invoke(cli.app, ["decode"], input=f"{good}\nzz\n{good[:30]}\n7b7d\n")
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 1
    assert "line 2: not hexadecimal" in result.stderr
    assert "line 3: truncated:" in result.stderr
    assert "line 4: bad_magic: first byte 0x7b" in result.stderr


def test_confluent_framing_needs_a_registry() -> None:
    result = runner.invoke(cli.app, ["encode", "Exposure", "--framing", "confluent"], input="")
    assert result.exit_code == 2 and "--framing confluent needs --registry URL" in result.output


def test_show_prints_the_schema_file() -> None:
    result = runner.invoke(cli.app, ["show", "Exposure", "--version", "1"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == default_catalog().get("Exposure", 1).schema


@pytest.mark.parametrize("args", [["show", "Exposures"], ["encode", "Exposures"]])
def test_unknown_records_are_usage_errors(args: list[str]) -> None:
    result = runner.invoke(cli.app, args, input="")
    assert result.exit_code == 2 and "unknown record 'Exposures'" in result.output


def test_list_and_check() -> None:
    listed = runner.invoke(cli.app, ["list"])
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        f"io.abstream.{name}" for name in default_catalog().names()
    ]
    checked = runner.invoke(cli.app, ["check"])
    assert checked.exit_code == 0 and "reads every other version" in checked.stdout


def test_check_fails_on_a_breaking_version(monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = default_catalog().latest("Event")
    schema = {
        **v1.schema,
        "fields": [*v1.schema["fields"], {"name": "x", "type": "int", "doc": "no default"}],
    }
    broken = SchemaCatalog([v1, SchemaVersion.build("Event", 2, schema)])
    monkeypatch.setattr(cli, "default_catalog", lambda: broken)
    result = runner.invoke(cli.app, ["check"])
    assert result.exit_code == 1
    assert "Event: v2 cannot read v1 (backward): SchemaResolutionError: No default value for field x" in result.stderr
