"""``abstream schemas``: show the contract, check its evolution, encode and decode messages by hand.

$ echo '{"event_id": "...", ...}' | abstream schemas encode Exposure | abstream schemas decode
"""

import base64
import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from abstream.errors import DecodeError, InvalidRecordError, RegistryError, SchemaError
from schemas.catalog import default_catalog
from schemas.evolution import check_catalog
from schemas.models import MODELS
from schemas.registry import ConfluentRegistry
from schemas.serde import AvroSerde, decode_any

__all__ = ["app", "register"]

app = typer.Typer(help="The wire contract: Avro schemas, their versions, encoding and decoding.", no_args_is_help=True)


class _Framing(StrEnum):
    """Message framing on the command line."""

    single_object = "single-object"
    confluent = "confluent"


_RegistryUrl = Annotated[
    str | None, typer.Option("--registry", help="Schema Registry URL (mock://name for an in-process fake).")
]


@app.command("list")
def _list() -> None:
    """List every record with its versions and the latest version's fingerprint."""
    catalog = default_catalog()
    for name in catalog.names():
        latest = catalog.latest(name)
        typer.echo(f"{latest.full_name}  versions 1-{latest.version}  fingerprint {latest.fingerprint:#018x}")


@app.command("show")
def _show(
    name: Annotated[str, typer.Argument(help="Record name, e.g. Exposure or io.abstream.Exposure.")],
    version: Annotated[int | None, typer.Option("--version", help="Version to show; the latest if omitted.")] = None,
) -> None:
    """Print a record's .avsc as pretty JSON."""
    try:
        typer.echo(default_catalog().get(name, version).text())
    except SchemaError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME") from exc


@app.command("check")
def _check() -> None:
    """Check that every pair of versions of every record resolves both ways (FULL_TRANSITIVE)."""
    problems = check_catalog(default_catalog())
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("every version of every record reads every other version")


@app.command(
    "encode",
    short_help="Encode JSON lines from stdin into hex-encoded messages.",
    help="Read JSON records from stdin, one per line; write one hex-encoded message per line. "
    "Timestamps are epoch milliseconds or ISO 8601 with an offset, UUIDs strings, bytes base64, "
    "nullable fields plain values or null. Every bad line is reported on stderr with its number; "
    "the exit code is 1 if any line failed.",
)
def _encode(
    name: Annotated[str, typer.Argument(help="Record name, e.g. Exposure.")],
    framing: Annotated[_Framing, typer.Option(help="Message framing.")] = _Framing.single_object,
    registry: _RegistryUrl = None,
) -> None:
    """Encode JSON lines from stdin into hex lines."""
    if framing is _Framing.confluent and registry is None:
        raise typer.BadParameter("--framing confluent needs --registry URL", param_hint="--registry")
    try:
        model = MODELS[default_catalog().latest(name).name]
    except SchemaError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME") from exc
    serde = AvroSerde(name, framing=framing.value, registry=_registry(registry))
    failed = 0
    for number, line in _lines():
        try:
            typer.echo(serde.encode(model.model_validate_json(line).to_avro()).hex())
        except ValidationError as exc:
            failed += _report(number, _describe(model.avro_name, exc))
        except (InvalidRecordError, RegistryError) as exc:
            failed += _report(number, str(exc))
    if failed:
        raise typer.Exit(1)


@app.command(
    "decode",
    short_help="Decode hex-encoded messages from stdin into JSON lines.",
    help="Read hex-encoded messages from stdin, one per line; write one JSON object per line: "
    '{"schema": full record name, "version": the writer\'s version, "record": ...}, the record read into '
    "the latest version (timestamps as epoch milliseconds, bytes as base64). Every bad line is reported "
    "on stderr with its number and error kind; the exit code is 1 if any line failed.",
)
def _decode(registry: _RegistryUrl = None) -> None:
    """Decode hex lines from stdin into JSON lines."""
    client = _registry(registry)
    failed = 0
    for number, line in _lines():
        try:
            decoded = decode_any(bytes.fromhex(line), registry=client)
        except ValueError as exc:
            failed += _report(number, f"not hexadecimal: {exc}")
        except DecodeError as exc:
            failed += _report(number, f"{exc.kind}: {exc}")
        except RegistryError as exc:
            failed += _report(number, str(exc))
        else:
            out = {
                "schema": decoded.writer.full_name,
                "version": decoded.writer.version,
                "record": decoded.record,
            }
            typer.echo(json.dumps(out, default=_json_bytes, ensure_ascii=False))
    if failed:
        raise typer.Exit(1)


def _registry(url: str | None) -> ConfluentRegistry | None:
    return None if url is None else ConfluentRegistry.connect(url)


def _lines() -> Iterator[tuple[int, str]]:
    for number, line in enumerate(sys.stdin, start=1):
        if line.strip():
            yield number, line.strip()


def _report(number: int, message: str) -> int:
    typer.echo(f"line {number}: {message}", err=True)
    return 1


def _describe(record: str, exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in (record, *error["loc"]))
        shown = "" if error["type"] in ("missing", "json_invalid") else f" (got {_short(error['input'])})"
        parts.append(f"{where}: {error['msg']}{shown}")
    return "; ".join(parts)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_bytes(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="schemas", help="Show, check, encode and decode the wire contract's Avro records.")
