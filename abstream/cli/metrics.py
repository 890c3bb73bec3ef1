"""``abstream metrics``: check and inspect the metric catalog that experiment definitions name.

$ abstream metrics validate                       # the packaged deploy/metrics
$ abstream metrics list
$ abstream metrics show reserve_click             # canonical JSON, and the experiments naming it
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from abstream.cli.experiments import default_definitions_dir
from abstream.errors import DefinitionError
from schemas.definitions import load_definitions
from schemas.durations import format_duration
from schemas.metric_catalog import MetricCatalog, load_metrics
from schemas.metrics import MetricSide, MetricSpec

__all__ = ["app", "default_metrics_dir", "register"]

app = typer.Typer(help="The metric catalog: validate its YAML files, list and show its metrics.", no_args_is_help=True)

PathsArgument = Annotated[
    list[Path] | None,
    typer.Argument(help="Metric files or directories (default: the packaged deploy/metrics).", show_default=False),
]
CatalogOption = Annotated[
    Path | None,
    typer.Option("--metrics", help="The catalog directory (default: the packaged deploy/metrics).", show_default=False),
]


def default_metrics_dir() -> Path:
    """The metric catalog shipped with abstream (``deploy/metrics``)."""
    return Path(str(resources.files("deploy") / "metrics"))


@app.command("validate")
def _validate(paths: PathsArgument = None) -> None:
    """Check metric files: one ok line per metric, or every problem on stderr (exit 1)."""
    for spec in _load(paths).values():
        typer.echo(f"{spec.key} r{spec.revision} ({_describe(spec)})  ok")


@app.command("list")
def _list(metrics: CatalogOption = None) -> None:
    """Every metric of the catalog: key, type, events, title."""
    catalog = _load([metrics] if metrics else None)
    specs = [spec for _, spec in sorted(catalog.items())]
    key_width = max((len(spec.key) for spec in specs), default=0)
    events_width = max((len(_events(spec)) for spec in specs), default=0)
    for spec in specs:
        typer.echo(f"{spec.key:<{key_width}}  {spec.type:<10}  {_events(spec):<{events_width}}  {spec.title}")


@app.command("show")
def _show(
    key: Annotated[str, typer.Argument(help="Metric key.")],
    metrics: CatalogOption = None,
    experiments: Annotated[
        Path | None,
        typer.Option("--experiments", help="Experiments to search (default: the packaged deploy/experiments)."),
    ] = None,
) -> None:
    """Print a metric's canonical JSON, then the experiments that name it and in which role."""
    catalog = _load([metrics] if metrics else None)
    spec = catalog.get(key)
    if spec is None:
        known = ", ".join(sorted(catalog)) or "none"
        raise typer.BadParameter(f"no metric {key!r} in {catalog.source} (defined: {known})", param_hint="KEY")
    typer.echo(json.dumps(spec.canonical(), indent=2, sort_keys=True, ensure_ascii=False))
    for line in _named_by(key, experiments or default_definitions_dir(), catalog):
        typer.echo(line)


def _describe(spec: MetricSpec) -> str:
    """One line: ``proportion of reserve_click``, ``ratio of sum(purchase.value) / count(purchase)``, ..."""
    if spec.type == "ratio" and spec.denominator is not None:
        what = f"{_side(spec.numerator)} / {_side(spec.denominator)}"
    else:
        what = _side(spec.numerator) if spec.type == "mean" else _matching(spec.numerator)
    extras = [f"cap {_cap(spec)}"] if spec.cap else []
    extras += [f"window {format_duration(spec.window_ms)}"] if spec.window_ms else []
    extras += ["lower is better"] if spec.direction == "decrease" else []
    return ", ".join([f"{spec.type} of {what}", *extras])


def _side(side: MetricSide) -> str:
    inner = _matching(side)
    return f"sum({inner}.value)" if side.aggregation == "sum" else f"count({inner})"


def _matching(side: MetricSide) -> str:
    events = "|".join(side.events)
    conditions = [f"{prop} in {'|'.join(values)}" for prop, values in side.filter.items()]
    return f"{events}[{', '.join(conditions)}]" if conditions else events


def _cap(spec: MetricSpec) -> str:
    assert spec.cap is not None
    return f"p{spec.cap.percentile * 100:g}" if spec.cap.percentile is not None else f"{spec.cap.value:g}"


def _events(spec: MetricSpec) -> str:
    sides = [spec.numerator] if spec.denominator is None else [spec.numerator, spec.denominator]
    return ", ".join(dict.fromkeys(event for side in sides for event in side.events))


def _named_by(key: str, experiments: Path, catalog: MetricCatalog) -> list[str]:
    try:
        definitions = load_definitions(experiments, metrics=catalog)
    except DefinitionError as exc:
        typer.echo(f"warning: cannot tell which experiments name {key!r}: {experiments} has problems:", err=True)
        for where, what in exc.problems:
            typer.echo(f"  {where}: {what}", err=True)
        return []
    named = [
        f"  {d.key} r{d.revision}: {role}"
        for d in definitions.values()
        for role, spec in d.metrics.in_order()
        if spec.key == key
    ]
    return [f"named by ({experiments}):", *named] if named else [f"named by no experiment in {experiments}"]


def _load(paths: Iterable[Path] | None) -> MetricCatalog:
    try:
        return load_metrics(list(paths or [default_metrics_dir()]))
    except DefinitionError as exc:
        for where, what in exc.problems:
            typer.echo(f"{where}: {what}", err=True)
        raise typer.Exit(1) from None


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="metrics")
