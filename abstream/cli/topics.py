"""``abstream topics``: the pipeline's topics, from the declarative spec in ``deploy/topics.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from abstream.cli._common import admin_client, console, resolve_bootstrap, settings
from deploy.topics import TopicSpec, create_topics

__all__ = ["app", "register"]

app = typer.Typer(help="Create and inspect the pipeline's Kafka topics.", no_args_is_help=True)

SpecOption = Annotated[
    Path | None, typer.Option("--spec", help="Topic spec (default: the packaged deploy/topics.yaml).")
]


@app.command()
def create(spec: SpecOption = None) -> None:
    """Create every topic of the spec that is missing; report existing ones that differ (exit code 1)."""
    bootstrap = resolve_bootstrap()
    admin, brokers = admin_client(bootstrap)
    topics = TopicSpec.load(spec).resolve(prefix=settings().topic_prefix, brokers=brokers)
    results = create_topics(admin, topics)
    table = Table("topic", "partitions", "RF", "status", "detail", title=f"{bootstrap} ({brokers} broker(s))")
    for r in results:
        colour = {"created": "green", "exists": "blue", "differs": "red"}[r.status]
        table.add_row(
            r.topic.name,
            str(r.topic.partitions),
            str(r.topic.replication_factor),
            f"[{colour}]{r.status}[/]",
            r.detail,
        )
    console.print(table)
    if any(r.status == "differs" for r in results):
        console.print(
            "[red]some topics differ from the spec; abstream never alters existing topics "
            "(records are placed by key and partition count)[/]"
        )
        raise typer.Exit(1)


@app.command("list")
def list_(spec: SpecOption = None) -> None:
    """Show the spec's topics as they would be created on the current cluster."""
    _, brokers = admin_client(resolve_bootstrap())
    table = Table("role", "topic", "partitions", "RF", "config")
    for t in TopicSpec.load(spec).resolve(prefix=settings().topic_prefix, brokers=brokers):
        table.add_row(
            t.role,
            t.name,
            str(t.partitions),
            str(t.replication_factor),
            ", ".join(f"{k}={v}" for k, v in t.config.items()),
        )
    console.print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="topics")
