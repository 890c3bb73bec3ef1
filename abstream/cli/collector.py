"""``abstream collector``: run the HTTP collector that takes exposures and events from browsers and apps."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from abstream.cli._common import console, resolve_bootstrap, settings
from abstream.errors import ConfigError
from producers.collector.settings import CollectorSettings

__all__ = ["collector", "register"]


def _collector_settings(**overrides: object) -> CollectorSettings:
    """ABSTREAM_COLLECTOR_* with the command-line options on top; a bad setting is a one-line error."""
    try:
        return CollectorSettings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"collector settings (ABSTREAM_COLLECTOR_*): {problems}") from None


def collector(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535, help="Port (default 8787).")] = None,
) -> None:
    """Run the HTTP collector: POST /v1/batch takes exposures and events, GET /healthz reports.

    Tokens, limits and CORS origins come from ABSTREAM_COLLECTOR_* (see docs/collector.md); records go to
    Kafka (ABSTREAM_KAFKA_BOOTSTRAP, else the local cluster) through a spool under the data dir.
    """
    collector_settings = _collector_settings(host=host, port=port)
    try:
        from producers.collector.app import serve
    except ImportError as exc:
        raise ConfigError(str(exc)) from None
    cli, bootstrap = settings(), resolve_bootstrap()
    spool = collector_settings.spool_path(cli.data_dir)
    console.print(f"abstream collector: Kafka {bootstrap}, topics {cli.topic_prefix}*, spool {spool}")
    serve(
        collector_settings,
        bootstrap_servers=bootstrap,
        topic_prefix=cli.topic_prefix,
        spool_dir=spool,
        print_fn=console.print,
    )


def register(root: typer.Typer) -> None:
    root.command("collector")(collector)
