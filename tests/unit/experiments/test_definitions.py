"""Definition files: every mistake named precisely, weights written once, the shipped files valid."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from abstream.cli.experiments import default_definitions_dir
from abstream.errors import DefinitionError
from schemas.definitions import (
    Definition,
    format_duration,
    load_definition,
    load_definitions,
    parse_definition,
    parse_duration,
)
from schemas.hashing import assign
from schemas.models import ExperimentDefinition
from schemas.serde import AvroSerde
from tests.unit.experiments.base import BASE, definition, write

GROWTHBOOK = {"scheme": "growthbook", "scheme_params": {"key": "checkout", "variations": ["A", "B"]}}


def _problems(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as caught:
        load_definition(path)
    return caught.value.problems


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"revision": 0}, "revision", "should be greater than or equal to 1, got 0"),
        ({"revision": "2"}, "revision", "should be a valid integer, got '2' (str)"),
        ({"key": "a:b"}, "key", "':' separates key and revision on the definitions topic"),
        ({"title": ""}, "title", "at least 1 character"),
        (
            {"scheme": "sha256"},
            "scheme",
            "unknown scheme 'sha256'; use one of: sha256-weights, planout, growthbook, eppo, external",
        ),
        ({"scheme_params": [1]}, "scheme_params", "should be a valid dictionary"),
        ({"scheme_params": {}}, "scheme_params.salt", "sha256-weights: missing required key(s) salt"),
        ({"scheme_params": {"salt": "x", "seed": 1}}, "scheme_params.seed", "unknown key(s) seed"),
        (
            {"scheme": "external", "scheme_params": {"since": date(2025, 1, 1)}},
            "scheme_params",
            "must hold only JSON values (Object of type date is not JSON serializable); quote dates and times",
        ),
        (
            {"scheme_params": {"salt": "x", "weights": {"A": 60, "B": 40}}},
            "scheme_params.weights",
            "contradicts the variants' weights {'A': 50, 'B': 50}; remove scheme_params.weights",
        ),
        (
            {**GROWTHBOOK, "scheme_params": {"key": "c", "variations": ["A", "B"], "hashVersion": 3}},
            "scheme_params.hashVersion",
            "growthbook: hashVersion must be 1 or 2, got 3",
        ),
        (
            {**GROWTHBOOK, "scheme_params": {"key": "c", "variations": ["X", "Y"]}},
            "variants",
            "A, B are not the variants scheme_params can assign (X, Y)",
        ),
        ({"variants": [{"name": "A", "weight": 1}]}, "variants", "should have at least 2 items"),
        ({"variants": [{"name": "A", "weight": -1}, {"name": "B", "weight": 1}]}, "variants[0].weight", "got -1"),
        ({"variants": [{"name": "A", "weight": 1}, {"name": "B"}]}, "variants[1].weight", "is required; add it"),
        (
            {"variants": [{"name": "A", "weight": 1}, {"name": "B", "weight": 1, "colour": "red"}]},
            "variants[1].colour",
            "is not a known field; the fields are: name, weight",
        ),
        (
            {"variants": [{"name": "A", "weight": 1}, {"name": "A", "weight": 1}]},
            "variants",
            "'A' appears 2 times; variant names must be unique",
        ),
        (
            {"variants": [{"name": "A", "weight": 0}, {"name": "B", "weight": 0}]},
            "variants",
            "the weights sum to 0; give at least one variant a positive weight",
        ),
        ({"fallback_variant": "C"}, "fallback_variant", "'C' is not a variant; use one of: A, B"),
        ({"state": "paused"}, "state", "'paused' is not allowed; use 'inactive', 'active' or 'rollout'"),
        ({"state": "rollout"}, "rollout_variant", "is required in state rollout: the variant everyone gets (A, B)"),
        ({"rollout_variant": "B"}, "rollout_variant", "applies only in state rollout (state is active); remove it"),
        ({"state": "rollout", "rollout_variant": "C"}, "rollout_variant", "'C' is not a variant; use one of: A, B"),
        (
            {"start": "2025-02-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"},
            "end",
            "2025-01-01T00:00:00+00:00 is not after start 2025-02-01T00:00:00+00:00",
        ),
        ({"attribution_window": "7 days"}, "attribution_window", "'7 days' is not a positive duration; write e.g. 7d"),
        ({"attribution_window": None}, "attribution_window", "is required; add it (e.g. attribution_window: 7d)"),
        ({"dedupe": "window"}, "dedupe_window", "is required when dedupe is window (e.g. dedupe_window: 1d)"),
        ({"dedupe_window": "1d"}, "dedupe_window", "applies only with dedupe: window"),
        ({"dedupe": "last"}, "dedupe", "'last' is not allowed; use 'first_ever' or 'window'"),
        ({"colour": "red"}, "colour", "is not a known field; the fields are: key, revision, title, owner"),
    ],
)
def test_a_mistake_names_the_file_the_field_and_the_fix(
    tmp_path: Path, changes: dict[str, Any], field: str, message: str
) -> None:
    data = {k: v for k, v in {**BASE, **changes}.items() if v is not None}
    path = write(tmp_path, "bad.yaml", data)

    problems = _problems(path)

    assert [where for where, _ in problems] == [f"{path}: {field}"]
    assert message in problems[0][1]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("state: active\nstate: inactive\n", ":2:1", "duplicate key 'state' (first on line 1)"),
        ("key: [unclosed\n", ":2:1", "not valid YAML"),
        ("- key: x\n", "", "must be a mapping of fields (key: ..., revision: ...), got a list"),
        ("", "", "must be a mapping of fields (key: ..., revision: ...), got nothing"),
    ],
)
def test_yaml_mistakes_name_the_line(tmp_path: Path, text: str, where: str, message: str) -> None:
    path = write(tmp_path, "bad.yaml", text)

    (problem,) = _problems(path)

    assert problem[0] == f"{path}{where}"
    assert message in problem[1]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("start: 2025-01-01", "2025-01-01 is a date without a time; write 2025-01-01T00:00:00Z"),
        ("start: 2025-01-01 10:00:00", "has no timezone; write e.g. 2025-01-01T00:00:00Z"),
    ],
)
def test_times_need_a_timezone(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, "bad.yaml", write(tmp_path, "ok.yaml", BASE).read_text() + line + "\n")

    (problem,) = _problems(path)

    assert problem == (f"{path}: start", problem[1]) and message in problem[1]


def test_every_problem_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {**BASE, "revision": 0, "state": "paused"})
    write(tmp_path, "b.yaml", {**BASE, "key": "other", "fallback_variant": "Z", "dedupe": "window"})
    write(tmp_path, "c.yaml", BASE)
    write(tmp_path, "d.yaml", BASE)

    with pytest.raises(DefinitionError) as caught:
        load_definitions(tmp_path)

    fields = [where.removeprefix(f"{tmp_path}/") for where, _ in caught.value.problems]
    assert fields == [
        "a.yaml: revision",
        "a.yaml: state",
        "b.yaml: fallback_variant",
        "b.yaml: dedupe_window",
        "d.yaml: key",
    ]
    assert f"'checkout' is also defined in {tmp_path / 'c.yaml'}" in str(caught.value)


def test_a_directory_without_definitions_or_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match=r"holds no \*\.yaml definition files"):
        load_definitions(tmp_path)
    with pytest.raises(DefinitionError, match="no such file or directory"):
        load_definitions([tmp_path / "missing.yaml"])


def test_sha256_weights_come_from_the_variants() -> None:
    derived = definition()
    explicit = definition(scheme_params={"salt": "checkout", "weights": {"A": 50, "B": 50}})

    assert derived.scheme_params == {"salt": "checkout", "weights": {"A": 50, "B": 50}}
    assert derived == explicit
    assert assign("sha256-weights", derived.scheme_params, "u-1").variant in ("A", "B")


def test_other_schemes_keep_their_params_as_written() -> None:
    assert definition(**GROWTHBOOK).scheme_params == GROWTHBOOK["scheme_params"]
    assert definition(scheme="external", scheme_params={"vendor": "in-house"}).scheme_params == {"vendor": "in-house"}


@pytest.mark.parametrize(
    ("given", "millis"),
    [
        ("7d", 604_800_000),
        ("24h", 86_400_000),
        ("1h30m", 5_400_000),
        ("500ms", 500),
        ("2w", 1_209_600_000),
        (3600, 3_600_000),
        ("1d 12h", 129_600_000),
    ],
)
def test_durations_read_as_milliseconds_and_print_back(given: object, millis: int) -> None:
    assert parse_duration(given) == millis
    assert parse_duration(format_duration(millis)) == millis


@pytest.mark.parametrize("given", [0, -1, True, 1.5, "7", "d", "1x", "", "0s", None])
def test_durations_must_be_positive_and_spelt_out(given: object) -> None:
    with pytest.raises(ValueError, match="is not a positive duration"):
        parse_duration(given)


def test_times_are_kept_in_utc_to_the_millisecond() -> None:
    start = datetime(2025, 1, 1, 2, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2)))

    assert definition(start=start).start == datetime(2025, 1, 1, 0, 0, 0, 123_000, tzinfo=UTC)


def test_the_record_round_trips_and_its_hash_is_the_digest() -> None:
    original = definition(
        owner="team", start="2025-01-01T00:00:00Z", end="2025-03-01T00:00:00Z", dedupe="window", dedupe_window="1d"
    )

    record = original.to_record(published_ts=datetime(2025, 1, 2, tzinfo=UTC))
    serde = AvroSerde("ExperimentDefinition")
    decoded = ExperimentDefinition.from_avro(serde.decode(serde.encode(record.to_avro())))

    assert decoded == record
    assert record.definition_hash == record.digest() == original.digest()
    assert Definition.from_record(decoded) == original
    assert record.attribution_window_ms == 604_800_000 and record.dedupe_window_ms == 86_400_000


def test_the_digest_ignores_publication_but_not_content() -> None:
    original = definition()

    assert (
        original.to_record().definition_hash
        == original.to_record(published_ts=datetime(2020, 1, 1, tzinfo=UTC)).definition_hash
    )
    assert definition(title="Other").digest() != original.digest()


def test_a_published_record_is_validated_like_a_file() -> None:
    record = definition().to_record().model_copy(update={"scheme_params": '{"salt": 1}'})

    with pytest.raises(
        DefinitionError, match=re.escape("checkout:1: scheme_params.salt: sha256-weights: salt must be a string")
    ):
        Definition.from_record(record)


def test_the_shipped_tutorial_experiments_validate() -> None:
    shipped = load_definitions(default_definitions_dir())

    assert set(shipped) == {"moon_mars", "white_gold_btn"}
    for key, fallback, other in (("moon_mars", "Moon", "Mars"), ("white_gold_btn", "White", "Gold")):
        found = shipped[key]
        assert (found.state, found.scheme, found.revision) == ("active", "sha256-weights", 1)
        assert found.weights == {fallback: 50, other: 50} and found.fallback_variant == fallback
        assert found.scheme_params["salt"] == key  # the tutorial hashes "<device_id>:<experiment name>"
        assert found.attribution_window_ms == 7 * 24 * 3600 * 1000
        assert found.unit_type == "device_id"


def test_parse_definition_refuses_what_is_not_a_mapping() -> None:
    with pytest.raises(DefinitionError, match="got a str"):
        parse_definition("key: x", source="inline")
