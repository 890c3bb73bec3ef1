"""``abstream jobs`` and ``abstream deadletters``: run the stream jobs, inspect and re-inject dead letters."""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Annotated, Any

import typer

from abstream.cli._common import console, resolve_bootstrap, settings

__all__ = ["deadletters", "jobs", "register"]

jobs = typer.Typer(
    help="Run the stream jobs (Faust): first exposures, variant switches, assignment checks, attribution."
)
deadletters = typer.Typer(help="Inspect and re-inject records the jobs could not process.", no_args_is_help=True)


def _jobs_settings(**overrides: Any) -> Any:
    from stream_jobs.settings import JobsSettings

    base = settings()
    values = {"kafka_bootstrap": resolve_bootstrap(), "topic_prefix": base.topic_prefix, "data_dir": base.data_dir}
    return JobsSettings(**{**values, **{k: v for k, v in overrides.items() if v is not None}})


@jobs.command()
def run(
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--job",
            help="Run only these jobs (repeatable): first_exposures, variant_switches, "
            "assignment_flags, attributed_conversions (which also counts unattributed events). Default: all.",
        ),
    ] = None,
    worker_name: Annotated[
        str | None, typer.Option(help="Unique per worker on a machine (its table store dir).")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Faust log level.")] = "info",
) -> None:
    """Start a worker. Start more (with other --worker-name values) to share the partitions."""
    from stream_jobs.worker import build_worker

    config = _jobs_settings(jobs=tuple(only) if only else None, worker_name=worker_name)
    worker, definitions = build_worker(config, loglevel=loglevel)
    console.print(
        f"abstream jobs: worker {config.worker_name} on {config.kafka_bootstrap}, jobs {', '.join(config.jobs)}"
    )
    try:
        worker.execute_from_commandline()
    finally:
        definitions.close()


def _dead_letter_rows(limit: int, timeout: float) -> list[tuple[Any, dict[str, Any]]]:
    from stream_jobs.dead_letter_store import read_dead_letters

    return read_dead_letters(
        resolve_bootstrap(), settings().topic_prefix + "dead-letters", limit=limit, timeout=timeout
    )


@deadletters.command("list")
def list_(
    limit: Annotated[int, typer.Option(help="At most this many, oldest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line, raw bytes as hex.")] = False,
) -> None:
    """Show dead letters: where each came from and why it failed."""
    rows = _dead_letter_rows(limit, timeout=10.0)
    for offset, letter in rows:
        if as_json:
            print(
                json.dumps(
                    {"offset": offset, **letter, "raw": letter["raw"].hex(), "key": (letter["key"] or b"").hex()}
                )
            )
        else:
            console.print(
                f"#{offset} {letter['source_topic']}[{letter['source_partition']}]@{letter['source_offset']} "
                f"{letter['error_kind']}: {letter['message']}",
                highlight=False,
            )
    if not as_json:
        kinds = Counter(letter["error_kind"] for _, letter in rows)
        by_kind = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
        console.print(f"{len(rows)} dead letter(s)" + (f": {by_kind}" if by_kind else ""), highlight=False)


@deadletters.command()
def replay(
    offsets: Annotated[list[int] | None, typer.Argument(help="Dead-letter offsets to replay (default: all).")] = None,
    kind: Annotated[
        str | None,
        typer.Option(help="Only dead letters with this error kind (invalid_record, wrong_key, bad_magic, ...)."),
    ] = None,
    rekey: Annotated[
        bool,
        typer.Option("--rekey", help="Key each record by its unit id (the fix for wrong_key dead letters)."),
    ] = False,
) -> None:
    """Re-inject dead letters into their source topics (after fixing what made them fail)."""
    from stream_jobs.dead_letter_store import replay_dead_letters

    rows = _dead_letter_rows(limit=sys.maxsize, timeout=10.0)
    chosen = [(o, d) for o, d in rows if (not offsets or o in offsets) and (kind is None or d["error_kind"] == kind)]
    sent = replay_dead_letters(resolve_bootstrap(), [d for _, d in chosen], rekey=rekey)
    console.print(f"re-injected {sent} record(s) into their source topics")


def register(root: typer.Typer) -> None:
    root.add_typer(jobs, name="jobs")
    root.add_typer(deadletters, name="deadletters")
