"""Experiment definitions as people write them: one YAML file per experiment, checked precisely.

A file in ``deploy/experiments/`` says how an experiment assigns units and how its data is read::

    key: moon_mars
    revision: 1
    title: Moon/Mars
    unit_type: device_id
    scheme: sha256-weights
    scheme_params: {salt: moon_mars}   # sha256-weights takes its weights from the variants
    variants:
      - {name: Moon, weight: 50}
      - {name: Mars, weight: 50}
    fallback_variant: Moon
    state: active                      # inactive | active | rollout (then rollout_variant: Mars)
    start: 2025-01-01T00:00:00Z        # optional; start and end need a timezone
    attribution_window: 7d             # 7d, 24h, 1h30m, or a number of seconds
    dedupe: first_ever                 # or window, with dedupe_window: 1d
    metrics:                           # optional: keys of the metric catalog (deploy/metrics)
      primary: [reserve_click]
      secondary: [clicks_per_visitor]
      guardrails: [bounce]
      correction: none                 # none | holm | benjamini-hochberg

``scheme`` is one of :data:`schemas.hashing.SCHEMES` or ``external`` (assigned by something whose hash
we cannot recompute). Its ``scheme_params`` are checked by building the scheme's assigner, so a typo
fails here and not on the first exposure. The weights are written once: sha256-weights takes them from
the variants; ``planout``, ``growthbook`` and ``eppo`` split by their own ``scheme_params`` (weights as
the SDK writes them, floats included), so their variants may leave ``weight`` out and get that split
(:mod:`schemas._definition_weights`; an Eppo definition stands for the allocation its key names,
``<flag>-<allocation>`` as the SDK logs the experiment, or the flag's only one), and weights written
there must give the same shares. The SRM test checks the variants' weights.

The ``metrics`` block names keys of the metric catalog
(:mod:`schemas.metric_catalog`; by default the ``metrics`` directory beside the experiments directory); the
definition keeps them resolved, as an :class:`~schemas.metrics.ExperimentMetrics` with their definitions,
so its record carries exactly the metrics it is analysed with. A mistake raises
:class:`~abstream.errors.DefinitionError` listing every problem as ``<file>: <field path>: what is wrong; what to do``.

:meth:`Definition.to_record` gives the Avro :class:`~schemas.models.ExperimentDefinition` published to
Kafka and :meth:`Definition.from_record` reads one back. Pure: no I/O but reading the files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from abstream.errors import DefinitionError
from schemas._definition_rules import EXTERNAL, Problems, consistency_problems, normalised_params
from schemas._definition_weights import with_derived_weights
from schemas._definition_yaml import describe_errors, read_yaml, yaml_files
from schemas.durations import format_duration, parse_duration
from schemas.hashing import SCHEMES
from schemas.metric_catalog import MetricCatalog, catalog_for, resolve_metrics
from schemas.metrics import ExperimentMetrics, MetricSpec
from schemas.models import ExperimentDefinition, Variant

__all__ = [
    "EXTERNAL",
    "SCHEME_NAMES",
    "Definition",
    "State",
    "VariantSpec",
    "format_duration",
    "load_definition",
    "load_definitions",
    "parse_definition",
    "parse_duration",
]

State = Literal["inactive", "active", "rollout"]
SCHEME_NAMES: tuple[str, ...] = (*SCHEMES, EXTERNAL)
"""Every scheme a definition may name."""

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_INT32 = 2**31


def _not_a_bare_date(value: object) -> object:
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ValueError(f"{value} is a date without a time; write {value}T00:00:00Z (a time with its timezone)")
    return value


def _whole_millis_utc(value: datetime) -> datetime:
    """UTC, cut to the millisecond the Avro record keeps, so that a definition equals its round trip."""
    return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)


_Instant = Annotated[AwareDatetime, BeforeValidator(_not_a_bare_date), AfterValidator(_whole_millis_utc)]
_Duration = Annotated[int, BeforeValidator(parse_duration)]
_Text = Annotated[str, Strict(), Field(min_length=1)]


class VariantSpec(BaseModel):
    """One arm: a name exposures log and an integer traffic weight (share = weight / sum of weights).

    Left out for planout, growthbook and eppo, the weight is derived from ``scheme_params`` before this
    model is built (see the module docstring).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: _Text
    weight: Annotated[int, Strict(), Field(ge=0, lt=_INT32)]


class Definition(BaseModel):
    """One revision of one experiment as written in its file; see the module docstring for the fields.

    Usage: ``load_definitions(Path("deploy/experiments"))["moon_mars"].to_record()``
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Annotated[str, Strict()]
    revision: Annotated[int, Strict(), Field(ge=1, lt=_INT32)]
    title: _Text
    owner: Annotated[str, Strict()] | None = None
    unit_type: _Text
    scheme: Annotated[str, Strict()]
    scheme_params: dict[str, Any] = Field(default_factory=dict)
    variants: list[VariantSpec] = Field(min_length=2)
    fallback_variant: _Text
    state: State
    rollout_variant: _Text | None = None
    start: _Instant | None = None
    end: _Instant | None = None
    attribution_window_ms: _Duration = Field(alias="attribution_window")
    dedupe: Literal["first_ever", "window"] = "first_ever"
    dedupe_window_ms: _Duration | None = Field(default=None, alias="dedupe_window")
    metrics: ExperimentMetrics = Field(default_factory=ExperimentMetrics)

    @field_validator("key")
    @classmethod
    def _key_fits_the_topic_key(cls, value: str) -> str:
        if not _KEY.fullmatch(value):
            raise ValueError(
                f"{value!r} must start with a letter or digit and hold only letters, digits, '_', '.' and '-' "
                "(':' separates key and revision on the definitions topic)"
            )
        return value

    @field_validator("scheme")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value not in SCHEME_NAMES:
            raise ValueError(f"unknown scheme {value!r}; use one of: {', '.join(SCHEME_NAMES)}")
        return value

    @field_validator("metrics", mode="before")
    @classmethod
    def _resolved(cls, value: object, info: ValidationInfo) -> object:
        """A block as written names catalog keys; a record's block (from ``from_record``) is already resolved."""
        if isinstance(value, ExperimentMetrics):
            return value
        catalog = (info.context or {}).get("metrics")
        return resolve_metrics(value, catalog if isinstance(catalog, MetricCatalog) else MetricCatalog())

    @model_validator(mode="before")
    @classmethod
    def _weights_from_the_sdk(cls, data: Any) -> Any:
        """planout, growthbook, eppo: variants written without weights get the split of scheme_params."""
        return with_derived_weights(data)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        params, problems = normalised_params(self.scheme, self.scheme_params, self.variants)
        problems += consistency_problems(self, params)
        if problems:
            raise Problems(problems)
        # A frozen model: the derived sha256 weights are set once, here, during validation.
        object.__setattr__(self, "scheme_params", params)
        return self

    @property
    def variant_names(self) -> list[str]:
        return [variant.name for variant in self.variants]

    @property
    def weights(self) -> dict[str, int]:
        return {variant.name: variant.weight for variant in self.variants}

    def digest(self) -> str:
        """The ``definition_hash`` its record carries: equal digests mean identical definitions."""
        return self.to_record(published_ts=datetime(1970, 1, 1, tzinfo=UTC)).definition_hash

    def to_record(self, *, published_ts: datetime | None = None) -> ExperimentDefinition:
        """The Avro record published to Kafka (``published_ts`` defaults to now), with its digest."""
        record = ExperimentDefinition(
            key=self.key, revision=self.revision, title=self.title, unit_type=self.unit_type,
            scheme=self.scheme, scheme_params=json.dumps(self.scheme_params, sort_keys=True, separators=(",", ":")),
            variants=[Variant(name=v.name, weight=v.weight) for v in self.variants],
            fallback_variant=self.fallback_variant, state=self.state, rollout_variant=self.rollout_variant,
            start_ts=self.start, end_ts=self.end, attribution_window_ms=self.attribution_window_ms,
            dedupe=self.dedupe, dedupe_window_ms=self.dedupe_window_ms, owner=self.owner,
            published_ts=published_ts or datetime.now(UTC), definition_hash="0" * 64,
            metrics="" if self.metrics == ExperimentMetrics() else self.metrics.to_json(),
        )  # fmt: skip
        return record.model_copy(update={"definition_hash": record.digest()})

    @classmethod
    def from_record(cls, record: ExperimentDefinition) -> Definition:
        """The definition a published record holds (validated again: records may come from elsewhere)."""
        return parse_definition(_record_fields(record), source=f"{record.key}:{record.revision}")


_FIELDS = {
    "": [info.alias or name for name, info in Definition.model_fields.items()],
    "variants": list(VariantSpec.model_fields),
}


def _record_fields(record: ExperimentDefinition) -> dict[str, Any]:
    window = record.dedupe_window_ms
    return {
        "key": record.key, "revision": record.revision, "title": record.title, "owner": record.owner,
        "unit_type": record.unit_type, "scheme": record.scheme, "scheme_params": json.loads(record.scheme_params),
        "variants": [v.model_dump() for v in record.variants], "fallback_variant": record.fallback_variant,
        "state": record.state, "rollout_variant": record.rollout_variant, "start": record.start_ts,
        "end": record.end_ts, "attribution_window": f"{record.attribution_window_ms}ms", "dedupe": record.dedupe,
        "dedupe_window": None if window is None else f"{window}ms",
        "metrics": ExperimentMetrics.from_json(record.metrics),
    }  # fmt: skip


def parse_definition(
    data: object, *, source: str = "<definition>", metrics: Mapping[str, MetricSpec] | None = None
) -> Definition:
    """Validate already-parsed data; ``source`` prefixes every problem (a file name, a topic key).

    ``metrics`` is the catalog the ``metrics`` block names keys of (none: the block must be empty).
    """
    if not isinstance(data, Mapping):
        kind = "nothing" if data is None else f"a {type(data).__name__}"
        raise DefinitionError([(source, f"must be a mapping of fields (key: ..., revision: ...), got {kind}")])
    catalog = metrics if isinstance(metrics, MetricCatalog) else MetricCatalog(metrics)
    try:
        return Definition.model_validate(data, context={"metrics": catalog})
    except ValidationError as exc:
        problems = describe_errors(exc, _FIELDS)
        raise DefinitionError([_located(source, *problem) for problem in problems]) from None


def _located(source: str, field: str, message: str) -> tuple[str, str]:
    return (f"{source}: {field}" if field else source, message)


def load_definition(path: Path, *, metrics: Mapping[str, MetricSpec] | Path | None = None) -> Definition:
    """Read and validate one YAML file; ``metrics`` as for :func:`load_definitions`."""
    return parse_definition(read_yaml(path), source=str(path), metrics=catalog_for(path, metrics))


def load_definitions(
    paths: Path | Iterable[Path], *, metrics: Mapping[str, MetricSpec] | Path | None = None
) -> dict[str, Definition]:
    """Every definition in ``paths`` (files, or directories of ``*.yaml``/``*.yml``), by key.

    ``metrics`` is the catalog their metrics blocks name: a mapping, or a directory (or file) to load;
    by default the ``metrics`` directory beside the experiments directory when there is one
    (``deploy/experiments`` -> ``deploy/metrics``). Raises one DefinitionError with the problems of every
    file, including a key defined twice; a broken catalog raises its own problems first.
    """
    files = yaml_files(paths, "definition")
    catalog = catalog_for(files, metrics)
    problems: list[tuple[str, str]] = []
    found: dict[str, tuple[Path, Definition]] = {}
    for path in files:
        try:
            definition = load_definition(path, metrics=catalog)
        except DefinitionError as exc:
            problems += exc.problems
            continue
        if definition.key in found:
            other = found[definition.key][0]
            problems.append((f"{path}: key", f"{definition.key!r} is also defined in {other}; one file per experiment"))
        found.setdefault(definition.key, (path, definition))
    if problems:
        raise DefinitionError(problems)
    return {key: definition for key, (_, definition) in found.items()}
