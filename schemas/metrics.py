"""What an experiment measures: metric definitions, and the metrics block an experiment names.

A metric turns a unit's attributed events into a per-unit value:

- ``proportion``: 1 when the unit has at least one matching event in its window, else 0;
- ``mean``: the ``count`` of matching events, or the ``sum`` of their ``value`` (units with no event count 0);
- ``ratio``: a numerator and a denominator per unit (each a count or a sum); the estimate is
  ``sum(numerator) / sum(denominator)`` over the units, its variance by the delta method.

An event matches a side when its ``name`` is one of ``events`` and every ``filter`` property holds
one of the listed values (``{btn_type: Mars}`` is ``{btn_type: [Mars]}``). ``window`` narrows the
experiment's attribution window (the jobs attribute nothing beyond it); ``cap`` bounds the numerator's
per-unit value (a fixed value; a percentile is computed over the experiment's units at read time).

The published form is canonical JSON inside the experiment's definition record (``metrics``), so a
revision carries exactly the metrics it was analysed with and a metric change is a new revision::

    block = ExperimentMetrics.from_json(record.metrics)
    for role, spec in block.in_order():   # primary first, then secondary, then guardrails
        ...
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, field_validator, model_validator

__all__ = [
    "ROLES",
    "Cap",
    "Correction",
    "Direction",
    "ExperimentMetrics",
    "MetricSide",
    "MetricSpec",
    "MetricType",
    "Role",
]

MetricType = Literal["proportion", "mean", "ratio"]
Direction = Literal["increase", "decrease"]
Correction = Literal["none", "holm", "benjamini-hochberg"]
Role = Literal["primary", "secondary", "guardrail"]
ROLES: tuple[Role, ...] = ("primary", "secondary", "guardrail")

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_Text = Annotated[str, Strict(), Field(min_length=1)]


def _listed(value: object) -> object:
    """``{prop: x}`` means ``{prop: [x]}``; ``{prop: {in: [x, y]}}`` means ``{prop: [x, y]}``."""
    if isinstance(value, Mapping):
        if set(value) != {"in"}:
            raise ValueError(f"a filter value is a string, a list of strings or {{in: [...]}}, got {dict(value)!r}")
        value = value["in"]
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(
            f"a filter value is a string, a list of strings or {{in: [...]}}, got {value!r}; "
            "event properties are strings, so quote numbers and booleans"
        )
    return value


def _filter_mapping(value: object) -> object:
    if not isinstance(value, Mapping):
        raise ValueError(
            "must map event properties to their allowed values, e.g. filter: {btn_type: [Moon, Mars]}, "
            f"got {value!r} ({type(value).__name__})"
        )
    return value


_Values = Annotated[list[Annotated[str, Strict()]], BeforeValidator(_listed), Field(min_length=1)]


class MetricSide(BaseModel):
    """The events one side of a metric counts or sums, per unit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[_Text] = Field(min_length=1)
    filter: dict[str, _Values] = Field(default_factory=dict)
    aggregation: Literal["count", "sum"] = "count"

    def total(self, events: Iterable[Mapping[str, Any]]) -> float:
        """The count of the matching events, or the sum of their values (a missing value is 0)."""
        hits = [
            e for e in events
            if e["name"] in self.events and all(e["properties"].get(k) in v for k, v in self.filter.items())
        ]  # fmt: skip
        return float(len(hits)) if self.aggregation == "count" else float(sum(e["value"] or 0.0 for e in hits))

    @field_validator("events", mode="before")
    @classmethod
    def _one_or_more(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("filter", mode="before")
    @classmethod
    def _a_mapping(cls, value: object) -> object:
        return _filter_mapping(value)

    @field_validator("events")
    @classmethod
    def _sorted_events(cls, value: list[str]) -> list[str]:
        return sorted(set(value))

    @field_validator("filter")
    @classmethod
    def _sorted_values(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {key: sorted(set(values)) for key, values in sorted(value.items())}


class Cap(BaseModel):
    """A per-unit bound on the numerator: a fixed ``value``, or a ``percentile`` (0 < p < 1) of the units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    percentile: Annotated[float, Field(gt=0, lt=1)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.value is None) == (self.percentile is None):
            raise ValueError("give exactly one of value (e.g. cap: 100) or percentile (e.g. cap: {percentile: 0.99})")
        return self


def _cap(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"value": value}
    return value


class MetricSpec(BaseModel):
    """One metric, in its canonical form: ``numerator`` always, ``denominator`` exactly for ratios."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Annotated[str, Strict()]
    revision: Annotated[int, Strict(), Field(ge=1, lt=2**31)] = 1
    title: _Text
    description: str | None = None
    type: MetricType
    numerator: MetricSide
    denominator: MetricSide | None = None
    cap: Annotated[Cap | None, BeforeValidator(_cap)] = None
    window_ms: Annotated[int, Strict(), Field(gt=0, lt=2**63)] | None = None
    direction: Direction = "increase"

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not _KEY.fullmatch(value):
            raise ValueError(f"{value!r} must start with a letter and hold only letters, digits and '_'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.type == "ratio") != (self.denominator is not None):
            raise ValueError("denominator: a ratio metric needs one, and only a ratio metric has one")
        if self.type == "proportion" and self.numerator.aggregation != "count":
            raise ValueError("aggregation: a proportion counts units with a matching event; use type: mean to sum")
        if self.type == "proportion" and self.cap is not None:
            raise ValueError("cap: a proportion is 0 or 1 per unit; caps apply to mean and ratio numerators")
        return self

    def canonical(self) -> dict[str, Any]:
        """The JSON-ready form published in definitions (defaults written out, keys sorted)."""
        return self.model_dump(mode="json")

    @property
    def version(self) -> str:
        """Identifies what the per-unit values depend on: equal versions mean equal values.

        The title, description, direction and revision are left out: changing them reuses the values.
        """
        semantic = self.model_dump(mode="json", exclude={"title", "description", "direction", "revision"})
        text = json.dumps(semantic, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def unit_value(self, events: Iterable[Mapping[str, Any]]) -> tuple[float, float]:
        """(x, y) of one unit from its attributed events, as the sink computes it (a percentile cap aside).

        Each event is a mapping with ``name``, ``value``, ``properties`` and ``latency_ms`` (time since
        the unit's first exposure). For tests and simulations: the sink computes the same in SQL.
        """
        chosen = [e for e in events if self.window_ms is None or e["latency_ms"] <= self.window_ms]
        x = self.numerator.total(chosen)
        if self.type == "proportion":
            x = float(x > 0)
        elif self.cap is not None and self.cap.value is not None:
            x = min(x, self.cap.value)
        return x, 0.0 if self.denominator is None else self.denominator.total(chosen)


class ExperimentMetrics(BaseModel):
    """The metrics an experiment names, by role, with the definitions they had when it was published."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    primary: list[str] = Field(default_factory=list)
    secondary: list[str] = Field(default_factory=list)
    guardrails: list[str] = Field(default_factory=list)
    correction: Correction = "none"
    definitions: dict[str, MetricSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _named_once_and_defined(self) -> Self:
        named = [*self.primary, *self.secondary, *self.guardrails]
        repeated = sorted({key for key in named if named.count(key) > 1})
        if repeated:
            raise ValueError(f"metrics {', '.join(repeated)} are named under more than one role (or twice)")
        missing = [key for key in named if key not in self.definitions]
        if missing:
            raise ValueError(f"no definition for metric(s) {', '.join(missing)}")
        stray = sorted(set(self.definitions) - set(named))
        if stray:
            raise ValueError(f"definitions of metric(s) {', '.join(stray)} that no role names")
        mislabelled = [key for key, spec in self.definitions.items() if spec.key != key]
        if mislabelled:
            raise ValueError(f"definitions keyed by another metric's key: {', '.join(mislabelled)}")
        return self

    def in_order(self) -> Iterator[tuple[Role, MetricSpec]]:
        """Every named metric with its role: primary first, then secondary, then guardrails."""
        for role, keys in zip(ROLES, (self.primary, self.secondary, self.guardrails), strict=True):
            for key in keys:
                yield role, self.definitions[key]

    def to_json(self) -> str:
        """The canonical JSON text of the definition record's ``metrics`` field."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> ExperimentMetrics:
        """Parse a record's ``metrics`` field; an empty or missing one means no metrics."""
        if not text:
            return cls()
        return cls.model_validate_json(text)
