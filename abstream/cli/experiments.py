"""``abstream experiments``: check, publish and inspect experiment definitions.

$ abstream experiments validate                                   # the packaged deploy/experiments
$ abstream experiments validate deploy/experiments --against /tmp/main/deploy/experiments
$ abstream experiments publish && abstream experiments list && abstream experiments show moon_mars
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from abstream.cli._common import admin_client, resolve_bootstrap, settings
from abstream.errors import DefinitionError
from deploy.definitions_topic import DefinitionStore, PublishPlan, definitions_topic, plan_publish, publish_records
from schemas.definition_changes import Change, check_transition, errors_of
from schemas.definitions import Definition, format_duration, load_definitions
from schemas.metrics import ExperimentMetrics
from schemas.models import ExperimentDefinition

__all__ = ["app", "default_definitions_dir", "register"]

app = typer.Typer(
    help="Experiment definitions: validate the YAML files, publish them, read them back.", no_args_is_help=True
)

PathsArgument = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Definition files or directories (default: the packaged deploy/experiments).", show_default=False
    ),
]
MetricsOption = Annotated[
    Path | None,
    typer.Option(
        "--metrics",
        help="The metric catalog the definitions name (default: the metrics directory beside theirs).",
        show_default=False,
    ),
]


def default_definitions_dir() -> Path:
    """The definitions shipped with abstream (``deploy/experiments``)."""
    return Path(str(resources.files("deploy") / "experiments"))


@dataclass(frozen=True)
class _Report:
    """What validation says about one definition, compared with a previous revision or not."""

    definition: Definition
    against: str = ""
    changes: tuple[Change, ...] = ()
    problems: tuple[str, ...] = ()


@app.command("validate")
def _validate(
    paths: PathsArgument = None,
    against: Annotated[
        Path | None, typer.Option("--against", help="Compare with the definitions in this directory (e.g. main's).")
    ] = None,
    published: Annotated[
        bool, typer.Option("--published", help="Compare with what is published on the definitions topic.")
    ] = False,
    metrics: MetricsOption = None,
) -> None:
    """Check definition files; with --against or --published, check each change too (exit 1 on a problem)."""
    if against is not None and published:
        raise typer.BadParameter("use --against or --published, not both", param_hint="--against")
    definitions = _load(paths, metrics)
    if published:
        reports = [_from_plan(plan) for plan in plan_publish(definitions.values(), _store())]
    elif against is not None:
        reports = _against(definitions, _load([against]), against)
    else:
        reports = [_Report(definition) for definition in definitions.values()]
    for report in reports:
        _print_report(report)
    if any(report.problems for report in reports):
        raise typer.Exit(1)


@app.command("publish")
def _publish(paths: PathsArgument = None, metrics: MetricsOption = None) -> None:
    """Publish every definition whose revision is not on the topic yet; all or nothing (exit 1 if refused)."""
    definitions = _load(paths, metrics)
    bootstrap, topic = resolve_bootstrap(), _topic()
    plans = plan_publish(definitions.values(), _store(bootstrap))
    for plan in plans:
        _print_report(_from_plan(plan))
    if any(plan.action == "refused" for plan in plans):
        typer.echo("nothing published: fix the refused definitions first", err=True)
        raise typer.Exit(1)
    fresh = [plan.definition for plan in plans if plan.action == "publish"]
    if not fresh:
        typer.echo("nothing to publish: every revision is on the topic already")
        return
    publish_records([d.to_record() for d in fresh], bootstrap_servers=bootstrap, topic=topic)
    for definition in fresh:
        typer.echo(f"published {definition.key}:{definition.revision} to {topic}")


@app.command("list")
def _list() -> None:
    """The latest published revision of every experiment, with its state."""
    store = _store()
    for key, record in sorted(store.latest().items()):
        variants = " / ".join(f"{v.name} {v.weight}" for v in record.variants)
        revisions = ", ".join(str(r) for r in store.revisions(key))
        typer.echo(f"{key}  r{record.revision}  {record.state}  {record.scheme}  {variants}  (revisions {revisions})")
    if not len(store):
        typer.echo(f"no definitions published on {_topic()}")


@app.command("show")
def _show(
    key: Annotated[str, typer.Argument(help="Experiment key.")],
    revision: Annotated[int | None, typer.Option("--revision", help="Revision (default: the latest).")] = None,
) -> None:
    """Print a published revision as JSON (the Avro record, timestamps in epoch milliseconds, metrics parsed)."""
    store = _store()
    revisions = store.revisions(key)
    if not revisions:
        raise typer.BadParameter(f"no published definition of {key!r}", param_hint="KEY")
    record = store.get(key, revisions[-1] if revision is None else revision)
    if record is None:
        known = ", ".join(map(str, revisions))
        raise typer.BadParameter(f"revision {revision} of {key!r} is not published (published: {known})")
    shown = {**record.to_avro(), "metrics": json.loads(record.metrics) if record.metrics else None}
    typer.echo(json.dumps(shown, indent=2, ensure_ascii=False))


def _load(paths: Iterable[Path] | None, metrics: Path | None = None) -> dict[str, Definition]:
    try:
        return load_definitions(list(paths or [default_definitions_dir()]), metrics=metrics)
    except DefinitionError as exc:
        for where, what in exc.problems:
            typer.echo(f"{where}: {what}", err=True)
        raise typer.Exit(1) from None


def _topic() -> str:
    return definitions_topic(settings().topic_prefix)


def _store(bootstrap: str | None = None) -> DefinitionStore:
    bootstrap = bootstrap or resolve_bootstrap()
    admin_client(bootstrap)  # one clear line at once when no broker answers, rather than a long timeout
    store = DefinitionStore.read(bootstrap_servers=bootstrap, topic=_topic())
    for skipped in store.skipped:
        typer.echo(
            f"warning: skipped partition {skipped.partition} offset {skipped.offset}: {skipped.reason}", err=True
        )
    return store


def _against(definitions: Mapping[str, Definition], previous: Mapping[str, Definition], where: Path) -> list[_Report]:
    reports = []
    for key, definition in definitions.items():
        old = previous.get(key)
        if old is None:
            reports.append(_Report(definition, f"new: no {key} in {where}"))
            continue
        changes = tuple(check_transition(old, definition))
        reports.append(_Report(definition, f"r{old.revision} in {where}", changes, tuple(errors_of(changes))))
    for key in sorted(set(previous) - set(definitions)):
        typer.echo(f"{key}: removed (was in {where}; its published revisions stay on the topic)")
    return reports


def _from_plan(plan: PublishPlan) -> _Report:
    if plan.action == "unchanged":
        against = "identical to the published revision"
    elif plan.against is None:
        against = "new: never published"
    else:
        against = f"published r{plan.against}"
    return _Report(plan.definition, against, plan.changes, plan.problems)


def _print_report(report: _Report) -> None:
    typer.echo(f"{_describe(report.definition.to_record())}  {'REFUSED' if report.problems else 'ok'}")
    if report.definition.metrics.definitions:
        typer.echo(f"  metrics: {_metrics_line(report.definition.metrics)}")
    if report.against:
        typer.echo(f"  compared with {report.against}")
    for change in report.changes:
        if change.kind != "revision":
            typer.echo(f"  {change.kind}: {change}")
    for problem in report.problems:
        typer.echo(f"  error: {problem}", err=True)


def _metrics_line(metrics: ExperimentMetrics) -> str:
    """``primary reserve_click; guardrail bounce`` and the correction when there is one."""
    by_role: dict[str, list[str]] = {}
    for role, spec in metrics.in_order():
        by_role.setdefault(role, []).append(spec.key)
    named = "; ".join(f"{role} {', '.join(keys)}" for role, keys in by_role.items())
    return named if metrics.correction == "none" else f"{named} (correction {metrics.correction})"


def _describe(record: ExperimentDefinition) -> str:
    variants = " / ".join(f"{v.name} {v.weight}" for v in record.variants)
    window = format_duration(record.attribution_window_ms)
    return f"{record.key} r{record.revision} ({record.state}, {record.scheme}, {variants}, attribution {window})"


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="experiments")
