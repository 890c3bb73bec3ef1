"""``abstream assign`` and ``abstream verify``: which variant a unit gets, and whether logged ones were right.

$ abstream assign --experiment moon_mars --unit device-42
$ abstream schemas decode < exposures.hex | abstream verify > flags.jsonl
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from abstream.cli._common import admin_client, resolve_bootstrap, settings
from abstream.cli.experiments import default_definitions_dir
from abstream.errors import DefinitionError, UnknownExperimentError
from deploy.definitions_topic import DefinitionStore, definitions_topic
from producers.assigner import Assigner
from schemas.definitions import Definition, load_definitions
from schemas.models import ExperimentDefinition, Exposure, FirstExposure
from schemas.verification import flag_record, verify

__all__ = ["assign", "register", "verify_exposures"]

DefinitionsOption = Annotated[
    Path | None,
    typer.Option("--definitions", help="Directory of definition files (default: the packaged deploy/experiments)."),
]
_EXPOSURE_MODELS = {"io.abstream.Exposure": Exposure, "io.abstream.FirstExposure": FirstExposure}


def assign(
    experiment: Annotated[str, typer.Option("--experiment", "-e", help="Experiment key.")],
    unit: Annotated[str, typer.Option("--unit", "-u", help="Unit id (the hash input).")],
    definitions: DefinitionsOption = None,
    at: Annotated[
        str | None, typer.Option("--at", help="ISO 8601 time with a timezone (default: now); matters for windows.")
    ] = None,
) -> None:
    """Print the variant a unit gets as JSON, with the bucket and why (nothing is logged)."""
    assigner = Assigner(_definitions(definitions).values())
    try:
        result = assigner.assign(experiment, unit, log=False, at=_instant(at))
    except UnknownExperimentError as exc:
        raise typer.BadParameter(str(exc), param_hint="--experiment") from None
    definition = assigner.experiments[experiment]
    out = {
        "experiment": result.experiment, "revision": result.revision, "unit_id": unit,
        "unit_type": definition.unit_type, "scheme": definition.scheme, "state": result.state,
        "variant": result.variant, "exposed": result.exposed, "bucket": result.bucket, "reason": result.reason,
        "inputs": dict(result.inputs),
    }  # fmt: skip
    typer.echo(json.dumps(out, default=str, ensure_ascii=False))


def verify_exposures(
    definitions: DefinitionsOption = None,
    published: Annotated[
        bool, typer.Option("--published", help="Verify against every revision published on the topic instead.")
    ] = False,
) -> None:
    """Read exposures as JSON lines on stdin; write one AssignmentFlag JSON line per flagged exposure.

    Lines are Exposure objects or what `abstream schemas decode` prints. Each flag is also named on
    stderr with its line number (`line 3: unassignable_unit: ...`). A malformed line is reported on
    stderr with its number and skipped; the exit code is then 1, and 0 otherwise, flags or not.
    The summary line always ends the output.
    """
    records = (
        _published() if published else {(d.key, d.revision): d.to_record() for d in _definitions(definitions).values()}
    )
    revisions: dict[str, list[int]] = {}
    for key, revision in records:
        revisions.setdefault(key, []).append(revision)
    checked = flagged = malformed = 0
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            exposure = _exposure(line)
        except ValueError as exc:
            typer.echo(f"line {number}: {exc}", err=True)
            malformed += 1
            continue
        checked += 1
        key = exposure["experiment"]
        flag = verify(exposure, records.get((key, exposure["revision"])), known_revisions=revisions.get(key, ()))
        if flag is not None:
            flagged += 1
            typer.echo(json.dumps(flag_record(exposure, flag), ensure_ascii=False))
            typer.echo(f"line {number}: {flag.reason}: {flag.detail}", err=True)
    typer.echo(f"verified {checked} exposure(s): {flagged} flagged, {malformed} malformed line(s)", err=True)
    if malformed:
        raise typer.Exit(1)


def _definitions(directory: Path | None) -> dict[str, Definition]:
    try:
        return load_definitions(directory or default_definitions_dir())
    except DefinitionError as exc:
        raise typer.BadParameter(str(exc), param_hint="--definitions") from None


def _published() -> dict[tuple[str, int], ExperimentDefinition]:
    bootstrap, topic = resolve_bootstrap(), definitions_topic(settings().topic_prefix)
    admin_client(bootstrap)  # one clear line at once when no broker answers
    return DefinitionStore.read(bootstrap_servers=bootstrap, topic=topic).records


def _exposure(line: str) -> dict[str, Any]:
    """The Avro dict of the exposure on ``line``; ValueError saying what is wrong with it."""
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    model: type[Exposure] = Exposure
    if isinstance(data, dict) and "record" in data and "schema" in data:
        found = _EXPOSURE_MODELS.get(data["schema"])
        if found is None:
            raise ValueError(f"a {data['schema']} record, not an exposure")
        model, data = found, data["record"]
    try:
        return model.model_validate(data).to_avro()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"not an exposure: {problems}") from None


def _instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint="--at") from None
    if value.tzinfo is None:
        raise typer.BadParameter(f"{text!r} has no timezone; add one, e.g. Z or +02:00", param_hint="--at")
    return value


def register(root: typer.Typer) -> None:
    root.command("assign")(assign)
    root.command("verify")(verify_exposures)
