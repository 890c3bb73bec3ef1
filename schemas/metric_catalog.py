"""The metric catalog: metrics as people write them in ``deploy/metrics/*.yaml``, checked precisely.

A file holds one metric (a mapping) or several (a list of mappings). A proportion or a mean names its
events at the top level::

    key: reserve_click
    title: Reserve your spot clicks
    type: proportion                     # proportion | mean | ratio
    events: reserve_click                # a name or a list of names
    filter: {btn_type: [Moon, Mars]}     # optional: {prop: value}, {prop: [a, b]} or {prop: {in: [a, b]}}
    window: 1d                           # optional, at most the experiment's attribution_window
    direction: increase                  # increase (default) | decrease: which way is better

a ratio has a ``numerator`` and a ``denominator`` of the same shape::

    - key: revenue_per_order
      title: Revenue per order
      type: ratio
      numerator: {events: purchase, aggregation: sum}   # aggregation: count (default) | sum of value
      denominator: {events: purchase}
      cap: 1000                          # or cap: {percentile: 0.99}; mean and ratio only

``revision`` (default 1) and ``description`` are optional; a mean takes ``aggregation`` at the top
level. :func:`load_metrics` gives the canonical :class:`~schemas.metrics.MetricSpec` of every metric,
or raises one :class:`~abstream.errors.DefinitionError` with every problem of every file. An
experiment's ``metrics:`` block is resolved against the catalog by :func:`resolve_metrics`; by default
the catalog is the ``metrics`` directory beside the experiments' (:func:`catalog_for`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError

from abstream.errors import DefinitionError
from schemas._definition_rules import Problem, Problems
from schemas._definition_yaml import describe_errors, read_yaml, yaml_files
from schemas.durations import parse_duration
from schemas.metrics import Correction, ExperimentMetrics, MetricSide, MetricSpec, MetricType

__all__ = ["METRIC_FIELDS", "MetricCatalog", "catalog_for", "load_metrics", "parse_metric", "resolve_metrics"]

METRIC_FIELDS = (
    "key", "revision", "title", "description", "type", "events", "filter", "aggregation",
    "numerator", "denominator", "cap", "window", "direction",
)  # fmt: skip
"""The fields of a metric as written in a catalog file."""

_SIDE_FIELDS = tuple(MetricSide.model_fields)
_TOP_SIDE = ("events", "filter", "aggregation")
_TYPES: tuple[str, ...] = get_args(MetricType)
_EXAMPLES = {"key": "key: reserve_click", "title": "title: Reserve clicks", "type": "type: proportion"}
_ERROR_FIELDS = {
    "": METRIC_FIELDS,
    "numerator": _SIDE_FIELDS,
    "denominator": _SIDE_FIELDS,
    "cap": ("value", "percentile"),
}
_SIDE_EXAMPLES = {
    "numerator": "numerator: {events: purchase, aggregation: sum}",
    "denominator": "denominator: {events: purchase}",
}


class MetricCatalog(dict[str, MetricSpec]):
    """Metric definitions by key, and ``source``: where they were read (named in the errors that list them)."""

    def __init__(self, specs: Mapping[str, MetricSpec] | None = None, *, source: str = "") -> None:
        super().__init__(specs or {})
        self.source = source


def parse_metric(data: object, *, source: str = "<metric>") -> MetricSpec:
    """The canonical form of one metric written in the catalog's form; ``source`` prefixes every problem."""
    if not isinstance(data, Mapping):
        kind = "nothing" if data is None else f"a {type(data).__name__}"
        raise DefinitionError([(source, f"must be a mapping of fields (key: ..., type: ..., ...), got {kind}")])
    canonical, problems = _canonical(data)
    try:
        spec = MetricSpec.model_validate(canonical)
    except ValidationError as exc:
        problems += _spec_problems(exc, data, explained={where for where, _ in problems})
    else:
        if not problems:
            return spec
    raise DefinitionError([(f"{source}: {where}" if where else source, what) for where, what in problems])


def load_metrics(paths: Path | Iterable[Path]) -> MetricCatalog:
    """Every metric in ``paths`` (files, or directories of ``*.yaml``), by key; all problems in one DefinitionError."""
    given = [paths] if isinstance(paths, Path) else list(paths)
    problems: list[Problem] = []
    found: dict[str, tuple[str, MetricSpec]] = {}
    for path in yaml_files(given, "metric"):
        for source, data in _entries(path, problems):
            try:
                spec = parse_metric(data, source=source)
            except DefinitionError as exc:
                problems += exc.problems
                continue
            if spec.key in found:
                message = f"{spec.key!r} is also defined in {found[spec.key][0]}; define each metric once"
                problems.append((f"{source}: key", message))
            found.setdefault(spec.key, (source, spec))
    if problems:
        raise DefinitionError(problems)
    return MetricCatalog({key: spec for key, (_, spec) in found.items()}, source=", ".join(map(str, given)))


def catalog_for(
    experiments: Path | Iterable[Path], metrics: Mapping[str, MetricSpec] | Path | None = None
) -> MetricCatalog:
    """The catalog the experiments in ``experiments`` name their metrics from.

    ``metrics`` as given (a catalog, or a directory or file to load); else the ``metrics`` directory
    beside the experiments' directory when it exists (``deploy/experiments`` -> ``deploy/metrics``);
    else an empty catalog.
    """
    if isinstance(metrics, Path):
        return load_metrics(metrics)
    if metrics is not None:
        return metrics if isinstance(metrics, MetricCatalog) else MetricCatalog(metrics)
    paths = [experiments] if isinstance(experiments, Path) else list(experiments)
    folders = dict.fromkeys((p if p.is_dir() else p.parent).resolve() for p in paths)
    beside = [folder.parent / "metrics" for folder in folders]
    found = [directory for directory in dict.fromkeys(beside) if directory.is_dir()]
    return load_metrics(found) if found else MetricCatalog()


def _entries(path: Path, problems: list[Problem]) -> list[tuple[str, object]]:
    """The metrics of one file with the name problems give each: the file, or ``file[i]`` in a list."""
    try:
        data = read_yaml(path)
    except DefinitionError as exc:
        problems += exc.problems
        return []
    if not isinstance(data, list):
        return [(str(path), data)]
    if not data:
        problems.append((str(path), "holds an empty list; write one metric (a mapping) or a list of them"))
    return [(f"{path}[{i}]", item) for i, item in enumerate(data)]


def _canonical(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """The MetricSpec fields of a metric as written, and the problems of its shape (fields the type forbids)."""
    problems = [
        (str(name), f"is not a known field; the fields are: {', '.join(METRIC_FIELDS)}")
        for name in data
        if name not in METRIC_FIELDS
    ]
    out = {
        name: data[name] for name in ("key", "revision", "title", "description", "type", "direction") if name in data
    }
    kind = data.get("type")
    if kind == "ratio":
        problems += _ratio_shape(data, out)
    elif kind in _TYPES:
        problems += _single_shape(str(kind), data, out)
    if "cap" in data and kind != "proportion":
        cap, problem = _cap(data["cap"])
        out["cap"] = cap
        problems += problem
    if "window" in data:
        try:
            out["window_ms"] = parse_duration(data["window"])
        except ValueError as exc:
            problems.append(("window", str(exc)))
    return out, problems


def _single_shape(kind: str, data: Mapping[str, Any], out: dict[str, Any]) -> list[Problem]:
    """A proportion or mean: its one side at the top level."""
    problems = [
        (side, f"only a ratio has a {side}; a {kind} names its events at the top level (events: ..., filter: ...)")
        for side in ("numerator", "denominator")
        if side in data
    ]
    if "events" not in data:
        problems.append(("events", f"is required for a {kind}; add it (e.g. events: purchase)"))
    if kind == "proportion" and data.get("aggregation") == "sum":
        message = "a proportion is 1 for a unit with a matching event, else 0, so it does not sum; use type: mean"
        problems.append(("aggregation", message))
    if kind == "proportion" and "cap" in data:
        problems.append(("cap", "a proportion is 0 or 1 per unit, so there is nothing to cap; remove cap"))
    out["numerator"] = {name: data[name] for name in _TOP_SIDE if name in data}
    return problems


def _ratio_shape(data: Mapping[str, Any], out: dict[str, Any]) -> list[Problem]:
    """A ratio: a numerator and a denominator block, nothing of a side at the top level."""
    problems = [
        (name, f"a ratio takes {name} from its numerator and denominator blocks; move it into them")
        for name in _TOP_SIDE
        if name in data
    ]
    for side in ("numerator", "denominator"):
        if side in data:
            out[side] = data[side]
        else:
            problems.append((side, f"is required for a ratio; add it (e.g. {_SIDE_EXAMPLES[side]})"))
    return problems


def _cap(value: object) -> tuple[object, list[Problem]]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"value": value}, []
    if isinstance(value, Mapping):
        return value, []
    message = f"write a fixed bound (cap: 100) or a percentile of the units (cap: {{percentile: 0.99}}), got {value!r}"
    return None, [("cap", message)]


def _spec_problems(exc: ValidationError, data: Mapping[str, Any], *, explained: set[str]) -> list[Problem]:
    """MetricSpec's errors at the fields as written, but for those the shape problems (at ``explained``) cover."""
    known_type = data.get("type") in _TYPES
    found = []
    for where, what in describe_errors(exc, _ERROR_FIELDS, _EXAMPLES):
        if not known_type and where.split(".")[0] in ("numerator", "denominator"):
            continue  # without a type there is no telling where the events belong
        path = _user_path(where, data)
        if path in explained or (explained and not path):  # a model-level error repeats a shape problem
            continue
        found.append((path, what))
    return found


def _user_path(where: str, data: Mapping[str, Any]) -> str:
    """The field as written: a proportion's or a mean's ``numerator.events`` is its top-level ``events``."""
    if where == "window_ms":
        return "window"
    if data.get("type") != "ratio" and (where == "numerator" or where.startswith("numerator.")):
        return where.removeprefix("numerator").removeprefix(".")
    return where


def _one_or_more(value: object) -> object:
    return [value] if isinstance(value, str) else value


_Keys = Annotated[list[Annotated[str, Strict()]], BeforeValidator(_one_or_more)]


class _MetricsBlock(BaseModel):
    """An experiment's ``metrics:`` block as written: metric keys by role, and the correction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    primary: _Keys = Field(default_factory=list)
    secondary: _Keys = Field(default_factory=list)
    guardrails: _Keys = Field(default_factory=list)
    correction: Correction = "none"


def resolve_metrics(block: object, catalog: MetricCatalog) -> ExperimentMetrics:
    """The metrics an experiment's block names, with their definitions from ``catalog``.

    Raises :class:`~schemas._definition_rules.Problems` (field paths under ``metrics``): a key the
    catalog does not define, or a key named twice.
    """
    if block is None:
        return ExperimentMetrics()
    if not isinstance(block, Mapping):
        example = "metrics: {primary: [reserve_click], guardrails: [bounce]}"
        raise Problems([("metrics", f"must map roles to metric keys, e.g. {example}; got {block!r}")])
    try:
        written = _MetricsBlock.model_validate(block)
    except ValidationError as exc:
        found = describe_errors(exc, {"": tuple(_MetricsBlock.model_fields)})
        raise Problems([(f"metrics.{where}" if where else "metrics", what) for where, what in found]) from None
    problems = _naming_problems(written, catalog)
    if problems:
        raise Problems(problems)
    named = [*written.primary, *written.secondary, *written.guardrails]
    return ExperimentMetrics(**written.model_dump(), definitions={key: catalog[key] for key in named})


def _naming_problems(block: _MetricsBlock, catalog: MetricCatalog) -> list[Problem]:
    problems: list[Problem] = []
    first: dict[str, str] = {}
    for role in ("primary", "secondary", "guardrails"):
        for i, key in enumerate(getattr(block, role)):
            where = f"metrics.{role}[{i}]"
            if key in first:
                problems.append(
                    (where, f"{key!r} is already named at {first[key]}; name each metric once, under one role")
                )
            elif key not in catalog:
                problems.append((where, _unknown(key, catalog)))
            first.setdefault(key, where)
    return problems


def _unknown(key: str, catalog: MetricCatalog) -> str:
    close = difflib.get_close_matches(key, list(catalog), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    if catalog:
        return f"unknown metric {key!r}{hint}; the catalog ({catalog.source}) defines: {', '.join(sorted(catalog))}"
    if catalog.source:
        return f"unknown metric {key!r}; the catalog ({catalog.source}) defines no metrics"
    return (
        f"unknown metric {key!r}: no metric catalog was found; put metric files in a metrics directory "
        "beside the experiments directory (deploy/experiments -> deploy/metrics)"
    )
