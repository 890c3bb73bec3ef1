"""``abstream demo``: the main job — the seed tutorial's Moon/Mars scenario through the real pipeline."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from abstream.cli._common import console, local_cluster, settings
from abstream.cli.kafka_local import _fetch_with_progress

__all__ = ["app", "register"]

app = typer.Typer(help="Run the Moon/Mars demo end to end, or stop its background processes.")


def _bootstrap() -> str:
    """ABSTREAM_KAFKA_BOOTSTRAP if set, else the local cluster (started if needed)."""
    if settings().kafka_bootstrap:
        return str(settings().kafka_bootstrap)
    cluster = local_cluster()
    _fetch_with_progress(cluster)
    with console.status("Starting the local Kafka broker…"):
        return cluster.up().bootstrap


@app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    visitors: Annotated[int, typer.Option(min=1, help="Simulated visitors, each exposed to both experiments.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the simulation (same seed, same traffic).")] = 42,
    faulty_client_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of exposures logged with a variant other than the hash's.")
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the pipeline to catch up.")] = 300.0,
) -> None:
    """Start Kafka, the stream jobs and the sink, simulate visitors, and print the report.

    The jobs and the sink keep running afterwards so the dashboard stays live; `abstream demo stop`
    stops them.
    """
    if ctx.invoked_subcommand is not None:
        return
    from abstream.demo.run import DemoOptions, DemoRun
    from sinks.report import render_text

    bootstrap = _bootstrap()
    options = DemoOptions(visitors=visitors, seed=seed, faulty_client_rate=faulty_client_rate, timeout_s=timeout)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=as_json, disable=as_json) as progress:
        tasks: dict[str, TaskID] = {}

        def on_progress(done: int, total: int, what: str) -> None:
            if what not in tasks:
                tasks[what] = progress.add_task(what, total=total)
            progress.update(tasks[what], completed=done, total=total)

        run = DemoRun(settings(), bootstrap, options, on_progress)
        report, truth = run.run()
    dashboard = run.dashboard_url()
    if as_json:
        print(json.dumps({**report, "truth": truth.as_json(), "dashboard": dashboard}, indent=2))
        return
    console.print(render_text(report), highlight=False, markup=False)
    console.print(f"\nTruth: reserve clicks Moon 10%, Mars 20%, purchases 5% / 8%, bounces 30%, White = Gold; "
                  f"{truth.clicks} events simulated "
                  f"({truth.late_clicks} flushed late), faulty exposures {dict(truth.faulty_exposures)}.")  # fmt: skip
    console.print(f"Dashboard: [bold]{dashboard}[/]   `abstream report moon_mars` works while the demo runs.")
    console.print(
        f"Stop the demo's jobs and sink with `abstream demo stop` (its data stays in database {run.database})."
    )


@app.command()
def stop() -> None:
    """Stop the demo's jobs worker and sink (by their recorded pids)."""
    from abstream.demo.run import drop_old_databases, stop_demo
    from abstream.errors import ClickHouseError

    stopped = stop_demo(settings())
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "no demo process was running")
    try:
        dropped = drop_old_databases(settings())
    except ClickHouseError as exc:  # the store is busy (another sink runs): leave the old runs for later
        console.print(f"kept older demo databases: {exc}")
        return
    if dropped:
        console.print(f"dropped the databases of {len(dropped)} earlier demo run(s)")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="demo")
