"""``abstream sink migrate|run`` and ``abstream report``: the ClickHouse sink and the analyst's view.

ClickHouse, aiohttp and the Kafka clients are imported inside the commands, so ``abstream --help``
works on a core install.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Annotated, Any

import typer

from abstream.cli._common import console, resolve_bootstrap
from sinks.settings import SinkSettings

__all__ = ["app", "register", "report"]

app = typer.Typer(
    help="The ClickHouse sink: schema migrations and the consume-insert-commit worker.", no_args_is_help=True
)


@app.command()
def migrate() -> None:
    """Apply the pending ClickHouse migrations (sinks/migrations) in order; a no-op when up to date."""
    from sinks.clickhouse import connect
    from sinks.migrator import migrate as apply

    settings = SinkSettings()
    applied = apply(connect(settings.clickhouse_url, database=settings.clickhouse_database))
    for migration in applied:
        console.print(f"applied {migration.filename}")
    console.print(f"{settings.clickhouse_database}: schema up to date ({len(applied)} migration(s) applied now)")


@app.command()
def run(
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Exit once every partition is consumed and committed.")
    ] = False,
) -> None:
    """Consume the stream jobs' topics into ClickHouse (migrating first) and serve the report API."""
    from sinks.service import run_sink

    settings = SinkSettings()
    bootstrap = settings.kafka_bootstrap or resolve_bootstrap()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    console.print(f"abstream sink: {bootstrap} -> {settings.clickhouse_url} ({settings.clickhouse_database})")
    stats = run_sink(settings, bootstrap=bootstrap, stop=stop, until_idle=until_idle)
    console.print(
        f"abstream sink: stopped after {stats.records} records, {stats.rows_inserted} rows inserted, "
        f"{stats.dead_letters} dead letters"
    )


def report(
    experiment: Annotated[str | None, typer.Argument(help="Experiment key; all experiments when omitted.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    policy: Annotated[
        str | None,
        typer.Option(help="Multi-variant units: exclude or first_seen (default ABSTREAM_MULTI_VARIANT_POLICY)."),
    ] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", help="Show only this metric of the experiment's (needs EXPERIMENT).")
    ] = None,
) -> None:
    """Per metric (primary first) and variant: the estimate with its 95% CI, lift and p-value vs control;
    the conversion counts, SRM and health."""
    from sinks.report import load_report, render_text

    if metric is not None and experiment is None:
        raise typer.BadParameter("--metric needs an EXPERIMENT: metrics belong to an experiment", param_hint="--metric")
    overrides: dict[str, Any] = {"multi_variant_policy": policy} if policy else {}
    settings = SinkSettings(**overrides)
    body = load_report(
        url=settings.clickhouse_url,
        database=settings.clickhouse_database,
        endpoint_file=settings.endpoint_file,
        experiment=experiment,
        policy=settings.multi_variant_policy,
        metric=metric,
    )
    if as_json:
        typer.echo(json.dumps(body, indent=2, default=str))
    else:
        typer.echo(render_text(body))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="sink")
    root.command("report")(report)
