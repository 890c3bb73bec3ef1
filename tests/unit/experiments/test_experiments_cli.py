"""The commands without a broker: validate, assign and verify (publish, list, show: integration tests)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from abstream.cli import app
from schemas.hashing import assign
from schemas.models import Exposure
from tests.unit.experiments.base import BASE, write

runner = CliRunner()
AT = datetime(2025, 6, 1, tzinfo=UTC)


def test_validate_accepts_the_shipped_definitions() -> None:
    result = runner.invoke(app, ["experiments", "validate"])

    assert result.exit_code == 0, result.output
    assert "moon_mars r1 (active, sha256-weights, Moon 50 / Mars 50, attribution 7d)  ok" in result.stdout
    assert "white_gold_btn r1 (active, sha256-weights, White 50 / Gold 50, attribution 7d)  ok" in result.stdout


def test_validate_lists_every_problem_on_stderr(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", {**BASE, "revision": 0, "fallback_variant": 3})

    result = runner.invoke(app, ["experiments", "validate", str(bad)])

    assert result.exit_code == 1
    assert f"{bad}: revision: should be greater than or equal to 1, got 0 (int)" in result.stderr
    assert f"{bad}: fallback_variant: should be a valid string, got 3 (int)" in result.stderr


def test_validate_against_a_previous_directory_wants_a_bump_for_a_reassigning_change(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir(), (tmp_path / "new").mkdir()
    write(tmp_path / "old", "checkout.yaml", BASE)
    write(tmp_path / "old", "gone.yaml", {**BASE, "key": "gone"})
    heavier = [{"name": "A", "weight": 60}, {"name": "B", "weight": 40}]
    changed = write(tmp_path / "new", "checkout.yaml", {**BASE, "variants": heavier})

    refused = runner.invoke(app, ["experiments", "validate", str(changed), "--against", str(tmp_path / "old")])
    write(tmp_path / "new", "checkout.yaml", {**BASE, "variants": heavier, "revision": 2})
    bumped = runner.invoke(app, ["experiments", "validate", str(changed), "--against", str(tmp_path / "old")])

    assert refused.exit_code == 1
    assert "error: revision must be bumped: variants.A.weight: 50 → 60; variants.B.weight: 50 → 40" in refused.stderr
    assert bumped.exit_code == 0, bumped.output
    assert f"compared with r1 in {tmp_path / 'old'}" in bumped.stdout
    assert "reassigning: variants.A.weight: 50 → 60 (the split moves)" in bumped.stdout
    assert "gone: removed" in bumped.stdout


def test_validate_takes_one_comparison_at_a_time(tmp_path: Path) -> None:
    result = runner.invoke(app, ["experiments", "validate", "--against", str(tmp_path), "--published"])

    assert result.exit_code == 2 and "use --against or --published, not both" in result.output


def test_assign_prints_the_variant_the_bucket_and_why() -> None:
    result = runner.invoke(app, ["assign", "--experiment", "moon_mars", "--unit", "device-42"])

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    expected = assign("sha256-weights", {"salt": "moon_mars", "weights": {"Moon": 50, "Mars": 50}}, "device-42")
    assert (out["variant"], out["bucket"], out["revision"], out["state"]) == (
        expected.variant,
        expected.bucket,
        1,
        "active",
    )
    assert out["reason"] == f"active: {expected.reason}" and out["exposed"] is True
    assert out["inputs"] == {"hashed": "device-42:moon_mars", "total": 100, "order": ["Mars", "Moon"]}


def test_assign_explains_a_fallback(tmp_path: Path) -> None:
    write(tmp_path, "checkout.yaml", {**BASE, "state": "inactive", "fallback_variant": "B"})

    result = runner.invoke(app, ["assign", "-e", "checkout", "-u", "u-1", "--definitions", str(tmp_path)])

    out = json.loads(result.stdout)
    assert (out["variant"], out["exposed"], out["bucket"]) == ("B", False, None)
    assert out["reason"] == "inactive: everyone gets the fallback variant"


def test_assign_refuses_an_unknown_experiment_and_a_time_without_zone() -> None:
    unknown = runner.invoke(app, ["assign", "-e", "moon_marz", "-u", "u"])
    naive = runner.invoke(app, ["assign", "-e", "moon_mars", "-u", "u", "--at", "2025-01-01T00:00:00"])

    assert unknown.exit_code == 2 and "no definition of experiment 'moon_marz'" in unknown.output
    assert naive.exit_code == 2 and "has no timezone" in naive.output


def _exposure(unit: str, variant: str, **extra: object) -> dict[str, object]:
    return Exposure(
        event_id=uuid.uuid4(), experiment="moon_mars", revision=1, variant=variant, unit_type="device_id",
        unit_id=unit, scheme="sha256-weights", client_ts=AT, **extra,  # type: ignore[arg-type]
    ).to_avro()  # fmt: skip


def _moon_mars(unit: str) -> str:
    variant = assign("sha256-weights", {"salt": "moon_mars", "weights": {"Moon": 50, "Mars": 50}}, unit).variant
    assert variant is not None
    return variant


def test_verify_writes_one_flag_per_bad_exposure_and_reports_malformed_lines() -> None:
    right = _exposure("d-1", _moon_mars("d-1"))
    wrong = _exposure("d-2", "Moon" if _moon_mars("d-2") == "Mars" else "Mars")
    lines = [
        json.dumps(right),
        json.dumps({"schema": "io.abstream.Exposure", "version": 1, "record": wrong}),
        "{not json",
        json.dumps({"schema": "io.abstream.Event", "version": 1, "record": {}}),
        "",
        json.dumps({**right, "revision": 7}),
        json.dumps({"experiment": "moon_mars"}),
    ]

    result = runner.invoke(app, ["verify"], input="\n".join(lines) + "\n")

    assert result.exit_code == 1
    flags = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(f["event_id"], f["reason"]) for f in flags] == [
        (wrong["event_id"], "variant_mismatch"),
        (right["event_id"], "unknown_revision"),
    ]
    assert flags[0]["expected_variant"] == _moon_mars("d-2") and flags[0]["logged_variant"] == wrong["variant"]
    assert "line 3: not JSON" in result.stderr
    assert "line 4: a io.abstream.Event record, not an exposure" in result.stderr
    assert "line 7: not an exposure: event_id: Field required" in result.stderr
    assert "line 2: variant_mismatch: the sha256-weights hash gives unit 'd-2'" in result.stderr
    assert "line 6: unknown_revision: revision 7 of 'moon_mars' is not published (known: 1)" in result.stderr
    assert result.stderr.rstrip().endswith("verified 3 exposure(s): 2 flagged, 3 malformed line(s)")


def test_verify_is_silent_and_succeeds_when_every_exposure_is_right() -> None:
    lines = [json.dumps(_exposure(f"d-{i}", _moon_mars(f"d-{i}"))) for i in range(100)]

    result = runner.invoke(app, ["verify"], input="\n".join(lines))

    assert result.exit_code == 0 and result.stdout == ""


def test_verify_flags_a_unit_the_sdk_cannot_assign_with_its_line_and_goes_on(tmp_path: Path) -> None:
    params = {"param": "variant", "op": "UniformChoice", "choices": ["A", "B"], "experiment_salt": "checkout"}
    write(tmp_path, "checkout.yaml", {**BASE, "scheme": "planout", "scheme_params": params})
    exposures = {
        unit: Exposure(
            event_id=uuid.uuid4(), experiment="checkout", revision=1, unit_type="user_id", unit_id=unit,
            variant=assign("planout", params, unit).variant if unit.isascii() else "A", scheme="planout", client_ts=AT,
        ).to_avro()
        for unit in ("u-1", "é-1", "u-3")
    }  # fmt: skip
    wrong = {**exposures["u-3"], "variant": "B" if exposures["u-3"]["variant"] == "A" else "A"}
    lines = [json.dumps(exposures["u-1"]), json.dumps(exposures["é-1"]), json.dumps(wrong)]

    result = runner.invoke(app, ["verify", "--definitions", str(tmp_path)], input="\n".join(lines) + "\n")

    assert result.exit_code == 0, result.output  # flags are verdicts, not errors
    flags = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(f["unit_id"], f["reason"]) for f in flags] == [("é-1", "unassignable_unit"), ("u-3", "variant_mismatch")]
    assert "line 2: unassignable_unit: PlanOut hashes ASCII only and raises on 'checkout.variant.é-1'" in result.stderr
    assert "line 3: variant_mismatch: the planout hash gives unit 'u-3'" in result.stderr
    assert result.stderr.rstrip().endswith("verified 3 exposure(s): 2 flagged, 0 malformed line(s)")


def test_the_installed_entry_point_runs_assign() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "abstream", "assign", "-e", "white_gold_btn", "-u", "device-1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["variant"] in ("White", "Gold")


def test_an_unreachable_broker_is_one_clear_line() -> None:
    env = {"ABSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1", "PATH": "/usr/bin:/bin"}

    done = subprocess.run(
        [sys.executable, "-m", "abstream", "experiments", "list"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 1
    assert "no Kafka broker answers at 127.0.0.1:1" in done.stderr and "Traceback" not in done.stderr
