"""The ``abstream`` command line. Each role contributes commands through a module with ``register(app)``."""

from __future__ import annotations

import importlib
import sys

import typer

from abstream import __version__
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

# Modules that add commands; heavy libraries (Faust, ClickHouse) are imported inside the commands,
# so `abstream --help` stays fast and a core install still has every command listed.
_COMMAND_MODULES = (
    "abstream.cli.kafka_local",
    "abstream.cli.topics",
    "schemas.cli",
    "abstream.cli.experiments",
    "abstream.cli.metrics",
    "abstream.cli.assignment",
    "abstream.cli.collector",
    "abstream.cli.jobs",
    "abstream.cli.sink",
    "abstream.cli.dashboard",
    "abstream.cli.demo",
)


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet
                continue
            raise
        module.register(app)


@app.command()
def version() -> None:
    """Print the abstream version."""
    console.print(__version__)


_register_all()


def main() -> None:
    """Entry point: an AbstreamError becomes a one-line message and exit code 1, not a traceback."""
    try:
        app()
    except AbstreamError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(1)
