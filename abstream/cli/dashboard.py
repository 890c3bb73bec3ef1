"""``abstream dashboard``: the experiments' web pages, from the running sink or served from the store.

The embedded store (chDB) opens in one process: while a sink runs it owns the store and serves the
dashboard, so the command prints that URL. Otherwise it serves the same pages itself, read-only, until
Ctrl-C, and records itself in ``<data dir>/sink.json`` meanwhile so ``abstream report`` finds it too.
With a ClickHouse server URL (http/https) it always serves directly.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from typing import Annotated, Any

import typer

from abstream.cli._common import console
from sinks.endpoint import SinkEndpoint
from sinks.settings import SinkSettings

__all__ = ["dashboard", "register"]


def dashboard(
    host: Annotated[
        str | None, typer.Option(help="Address to serve on when no sink runs (default ABSTREAM_SINK_API_HOST).")
    ] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to serve on when no sink runs; 0 picks one.")] = 0,
) -> None:
    """Print the running sink's dashboard URL, or serve the dashboard from the store until Ctrl-C."""
    from sinks.clickhouse import is_embedded

    settings = SinkSettings()
    embedded = is_embedded(settings.clickhouse_url)
    found = _running_owner(settings) if embedded else None
    if found is not None:
        owner, what = found
        note = "" if owner.database == settings.clickhouse_database else f", database {owner.database}"
        typer.echo(f"Dashboard: {owner.base_url}/ (served by {what}, pid {owner.pid}{note})")
        return
    _serve(settings, host or settings.sink_api_host, port, record=embedded)


def _running_owner(settings: SinkSettings) -> tuple[SinkEndpoint, str] | None:
    """The process recorded in sink.json (a sink, or another dashboard), if it is alive and answers."""
    from abstream.errors import ReportError
    from sinks.endpoint import get_json, read_endpoint

    endpoint = read_endpoint(settings.endpoint_file)
    if endpoint is None or not _alive(endpoint.pid):
        return None
    try:
        health = get_json(endpoint, "/healthz", {}, timeout=5.0)
    except ReportError:
        return None
    return endpoint, "`abstream dashboard`" if health.get("mode") == "dashboard" else "the running sink"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _serve(settings: SinkSettings, host: str, port: int, *, record: bool) -> None:
    from sinks.clickhouse import connect
    from sinks.dashboard import DashboardData
    from sinks.endpoint import remove_endpoint, write_endpoint
    from sinks.report import fetch_report
    from sinks.server import ApiServer, build_app

    client = connect(settings.clickhouse_url, database=settings.clickhouse_database, create_database=False)
    app = build_app(
        report=functools.partial(_report, fetch_report, client),
        health=lambda: {"pid": os.getpid(), "mode": "dashboard"},
        default_policy=settings.multi_variant_policy,
        dashboard=DashboardData(client),
    )
    server = ApiServer(app, host=host, port=port)
    endpoint = SinkEndpoint(os.getpid(), host, server.start(), settings.clickhouse_url, settings.clickhouse_database)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if record:
        write_endpoint(settings.endpoint_file, endpoint)
    try:
        typer.echo(f"Dashboard: {endpoint.base_url}/ (serving {settings.clickhouse_database}; Ctrl-C stops)")
        while not stop.wait(0.5):
            pass
    finally:
        if record:
            remove_endpoint(settings.endpoint_file, endpoint.pid)
        server.stop()
    console.print("abstream dashboard: stopped")


def _report(fetch: Any, client: Any, experiment: str | None, policy: Any, metric: str | None = None) -> dict[str, Any]:
    return dict(fetch(client, experiment, policy=policy, metric=metric))


def register(root: typer.Typer) -> None:
    root.command("dashboard")(dashboard)
