"""``abstream local``: a real Apache Kafka cluster on this machine, for development and tests."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from abstream.cli._common import admin_client, console, local_cluster
from deploy.local_kafka import ClusterState, LocalKafka

__all__ = ["app", "register"]

app = typer.Typer(
    help="Run a real Apache Kafka (KRaft) cluster locally: 1 broker, or 3 for fault tests.",
    no_args_is_help=True,
)


def _fetch_with_progress(cluster: LocalKafka) -> None:
    if cluster.dist.is_fetched:
        return
    with console.status(f"Resolving Apache Kafka {cluster.dist.version} from Maven Central…") as status:
        seen = 0

        def on_artifact(name: str) -> None:
            nonlocal seen
            seen += 1
            status.update(f"Resolving Apache Kafka {cluster.dist.version} from Maven Central… {seen} files ({name})")

        cluster.dist.fetch(on_artifact)
    console.print(f"Kafka {cluster.dist.version} jars in {cluster.dist.libs}")


@app.command()
def fetch() -> None:
    """Download the Kafka broker jars (Maven Central) into the cache, if not there yet."""
    cluster = local_cluster()
    _fetch_with_progress(cluster)
    console.print(f"Kafka {cluster.dist.version}: {cluster.dist.libs}")


@app.command()
def up(
    brokers: Annotated[
        int | None,
        typer.Option(help="1, or 3 for a fault-tolerant cluster (default: the existing cluster's size, else 1)."),
    ] = None,
    port: Annotated[
        int,
        typer.Option(help="First broker port (node i uses port+2(i-1), its controller the next); 0 picks free ports."),
    ] = 9092,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the cluster to answer.")] = 90.0,
) -> None:
    """Start the local cluster (fetching Kafka first if needed). Running it again is harmless."""
    cluster = local_cluster(brokers, port)
    _fetch_with_progress(cluster)
    before = cluster.load_state()
    running_before = {n.node_id for n in before.nodes if cluster.is_running(n)} if before else set()
    with console.status(f"Starting {cluster.brokers} broker(s) and waiting for the cluster…"):
        state = cluster.up(timeout=timeout)
    already = len(running_before) == len(state.nodes)
    console.print(
        f"Kafka {'was already running' if already else 'is up'}: {len(state.nodes)} broker(s), "
        f"bootstrap [bold]{state.bootstrap}[/]"
    )
    console.print(f"  pids {[n.pid for n in state.nodes]}, data and logs in {cluster.directory}")
    if state.bootstrap != "127.0.0.1:9092":
        console.print(f"  other shells: export ABSTREAM_KAFKA_BOOTSTRAP={state.bootstrap}")


@app.command()
def down(
    purge: Annotated[bool, typer.Option(help="Also delete the cluster's data and logs.")] = False,
) -> None:
    """Stop the brokers started by `local up` (by their recorded pids)."""
    cluster = local_cluster()
    stopped = cluster.down(purge=purge)
    console.print(f"stopped {len(stopped)} broker(s) {stopped}" if stopped else "no local broker was running")
    if purge:
        console.print(f"deleted {cluster.directory}")


def _status_table(cluster: LocalKafka, state: ClusterState) -> Table:
    table = Table("node", "pid", "state", "broker", "controller", "log")
    for n in state.nodes:
        running = cluster.is_running(n)
        table.add_row(
            str(n.node_id), str(n.pid or "-"), "[green]running[/]" if running else "[red]stopped[/]",
            f"127.0.0.1:{n.broker_port}", f"127.0.0.1:{n.controller_port}", str(cluster.log_file(n.node_id)),
        )  # fmt: skip
    return table


@app.command()
def status() -> None:
    """Show the local cluster's nodes and whether it answers; exit code 1 unless all nodes run."""
    cluster = local_cluster()
    state = cluster.load_state()
    if state is None:
        console.print(f"no local cluster in {cluster.directory} (start one with `abstream local up`)")
        raise typer.Exit(1)
    console.print(_status_table(cluster, state))
    running = [n for n in state.nodes if cluster.is_running(n)]
    if running:
        admin, brokers = admin_client(state.bootstrap, timeout=5)
        topics = [t for t in admin.list_topics(timeout=5).topics if not t.startswith("__")]
        console.print(f"bootstrap {state.bootstrap}: {brokers} broker(s) answer, {len(topics)} topic(s)")
    if len(running) != len(state.nodes):
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="local")
