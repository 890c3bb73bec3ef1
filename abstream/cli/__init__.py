"""The ``abstream`` command line. Each role contributes a command group; this module mounts them."""

from __future__ import annotations

import sys

import typer

from abstream import __version__
from abstream.cli import kafka_local, topics
from abstream.cli._common import console, err_console
from abstream.errors import AbstreamError

__all__ = ["app", "main"]

app = typer.Typer(
    name="abstream",
    help=(
        "Exposure logging for online experiments on Kafka.\n\n"
        "Settings come from ABSTREAM_* environment variables: ABSTREAM_KAFKA_BOOTSTRAP (default: the local "
        "cluster if running, else 127.0.0.1:9092), "
        "ABSTREAM_CLICKHOUSE_URL (default chdb://<data dir>/clickhouse), "
        "ABSTREAM_DATA_DIR (default ~/.local/share/abstream), ABSTREAM_TOPIC_PREFIX (default 'abstream.')."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(kafka_local.app, name="local")
app.add_typer(topics.app, name="topics")


def _mount_optional() -> None:
    """Groups whose modules may need an extra; a missing extra leaves the group out, not the CLI."""
    try:
        from schemas.cli import app as schemas_app
    except ImportError:
        return
    app.add_typer(schemas_app, name="schemas", help="Show, encode and decode the wire contract's Avro records.")


_mount_optional()


@app.command()
def version() -> None:
    """Print the abstream version."""
    console.print(__version__)


def main() -> None:
    """Entry point: an AbstreamError becomes a one-line message and exit code 1, not a traceback."""
    try:
        app()
    except AbstreamError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(1)
