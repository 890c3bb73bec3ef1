"""pydantic models that mirror the ``.avsc`` files, for validating records at the edges.

The ``.avsc`` files stay the source of truth; a test walks both and fails when they disagree. Models
hold Python types (aware ``datetime``, ``UUID``); ``to_avro()`` gives the dict the serde encodes
(epoch milliseconds, UUID strings) and ``from_avro()`` reads one back. Inside the stream jobs, work
on the decoded dicts and do not re-validate.

    >>> exposure = Exposure(event_id=uuid4(), experiment="checkout_v2", revision=3, variant="B",
    ...                     unit_type="user_id", unit_id="u-1", scheme="growthbook", client_ts=now)
    >>> AvroSerde("Exposure").encode(exposure.to_avro())
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.metrics import ExperimentMetrics

__all__ = [
    "MODELS",
    "AssignmentFlag",
    "AttributedConversion",
    "AvroModel",
    "DeadLetter",
    "Event",
    "ExperimentDefinition",
    "Exposure",
    "FirstExposure",
    "Source",
    "Timestamp",
    "UnattributedEvent",
    "Variant",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_INT32 = 2**31
_INT64 = 2**63


def _from_millis(value: Any) -> Any:
    """Epoch milliseconds become datetimes; pydantic's own int rule guesses seconds or millis by size."""
    if isinstance(value, str) and value.lstrip("-").isdigit():
        raise ValueError("epoch milliseconds must be a JSON number, not a string")
    if isinstance(value, float):
        raise ValueError("epoch milliseconds must be a whole number")
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return _EPOCH + value * _MILLISECOND
        except OverflowError:
            raise ValueError("epoch milliseconds must be within the years 1 to 9999") from None
    return value


def _whole_millis(value: datetime) -> datetime:
    """UTC, cut to the millisecond the wire keeps, so that a model equals its own round trip."""
    return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)


def _to_millis(value: datetime) -> int:
    return (value - _EPOCH) // _MILLISECOND


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_from_millis),
    AfterValidator(_whole_millis),
    PlainSerializer(_to_millis, return_type=int),
]
"""An aware datetime; accepts epoch milliseconds or ISO 8601 with an offset; dumps as epoch milliseconds."""

_AvroUuid = Annotated[UUID, PlainSerializer(str, return_type=str)]
_Int64 = Annotated[int, Strict(), Field(ge=-_INT64, lt=_INT64)]
_Count32 = Annotated[int, Strict(), Field(ge=0, lt=_INT32)]
_Count64 = Annotated[int, Strict(), Field(ge=0, lt=_INT64)]
_Double = Annotated[float, Strict()]
_Flag = Annotated[bool, Strict()]
_Name = Annotated[str, Field(min_length=1)]
_StringMap = dict[str, str]


class AvroModel(BaseModel):
    """Base of the record models: strict about unknown fields, immutable, bytes as base64 in JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64")
    avro_name: ClassVar[str]

    def to_avro(self) -> dict[str, Any]:
        """The record as the serde encodes it: epoch milliseconds, UUID strings, nested dicts."""
        return self.model_dump()

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Self:
        """Validate a decoded record back into the model."""
        return cls.model_validate(record)


class Source(AvroModel):
    """Who logged the record."""

    avro_name = "Source"
    sdk: str | None = None
    sdk_version: str | None = None
    app: str | None = None
    host: str | None = None


class Exposure(AvroModel):
    """A unit was shown a variant; see ``schemas/avro/Exposure`` for each field's meaning."""

    avro_name = "Exposure"
    event_id: _AvroUuid
    experiment: _Name
    revision: _Count32
    variant: _Name
    unit_type: _Name
    unit_id: _Name
    scheme: _Name
    hash_seed: str | None = None
    hash_version: Annotated[int, Strict(), Field(ge=1, lt=_INT32)] | None = None
    bucket_position: Annotated[float, Strict(), Field(ge=0.0, lt=1.0)] | None = None
    bucket_index: _Count64 | None = None
    params: _StringMap = Field(default_factory=dict)
    hash_used: _Flag = True
    sticky_bucket_used: _Flag = False
    forced: _Flag = False
    source: Source = Field(default_factory=Source)
    client_ts: Timestamp
    received_ts: Timestamp | None = None
    context: _StringMap = Field(default_factory=dict)
    sampling_rate: Annotated[float, Strict(), Field(gt=0.0, le=1.0)] = 1.0


class FirstExposure(Exposure):
    """The first exposure of a unit to an experiment, with the repeats folded into it."""

    avro_name = "FirstExposure"
    duplicates: _Count64 = 0


class Event(AvroModel):
    """Something a unit did (a conversion or any analytics event)."""

    avro_name = "Event"
    event_id: _AvroUuid
    unit_type: _Name
    unit_id: _Name
    name: _Name
    value: _Double | None = None
    ts: Timestamp
    received_ts: Timestamp | None = None
    properties: _StringMap = Field(default_factory=dict)
    source: Source = Field(default_factory=Source)


class AttributedConversion(Event):
    """An event attributed to the first exposure of its unit to one experiment."""

    avro_name = "AttributedConversion"
    experiment: _Name
    revision: _Count32
    variant: _Name
    exposure_event_id: _AvroUuid
    exposure_ts: Timestamp
    latency_ms: _Int64
    late: _Flag = False


UnattributedReason = Literal["never_exposed", "outside_window", "late", "other"]


class UnattributedEvent(Event):
    """An event attributed to no experiment, and why (counted, never silently dropped)."""

    avro_name = "UnattributedEvent"
    reason: UnattributedReason


class Variant(AvroModel):
    """One arm of an experiment."""

    avro_name = "Variant"
    name: _Name
    weight: _Count32


class ExperimentDefinition(AvroModel):
    """One revision of an experiment, checked for internal consistency."""

    avro_name = "ExperimentDefinition"
    key: _Name
    revision: _Count32
    title: str
    unit_type: _Name
    scheme: _Name
    scheme_params: str
    variants: list[Variant] = Field(min_length=1)
    fallback_variant: _Name
    state: Literal["inactive", "active", "rollout"]
    rollout_variant: str | None = None
    start_ts: Timestamp | None = None
    end_ts: Timestamp | None = None
    attribution_window_ms: _Count64
    dedupe: Literal["first_ever", "window"]
    dedupe_window_ms: Annotated[int, Strict(), Field(gt=0, lt=_INT64)] | None = None
    owner: str | None = None
    published_ts: Timestamp
    definition_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    metrics: str = ""

    @field_validator("scheme_params")
    @classmethod
    def _scheme_params_is_json_object(cls, value: str) -> str:
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise ValueError(f"must be a JSON object, not {type(parsed).__name__}")
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics_is_empty_or_a_block(cls, value: str) -> str:
        if not value:
            return value
        try:
            ExperimentMetrics.from_json(value)
        except ValidationError as exc:
            found = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'the block'}: {error['msg']}"
                for error in exc.errors(include_url=False)[:3]
            )
            raise ValueError(f"must be empty or the JSON of an ExperimentMetrics block ({found})") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [variant.name for variant in self.variants]
        where = f"{self.key!r} revision {self.revision}"
        if len(set(names)) != len(names):
            raise ValueError(f"variants: names repeat in {where} ({', '.join(names)})")
        if sum(variant.weight for variant in self.variants) <= 0:
            raise ValueError(f"variants: the weights of {where} sum to 0")
        for field in ("fallback_variant", "rollout_variant"):
            chosen = getattr(self, field)
            if chosen is not None and chosen not in names:
                raise ValueError(f"{field}: {chosen!r} is not a variant of {where} (variants: {', '.join(names)})")
        if self.state == "rollout" and self.rollout_variant is None:
            raise ValueError(f"rollout_variant: {where} is in state rollout but names no rollout_variant")
        if (self.dedupe == "window") != (self.dedupe_window_ms is not None):
            raise ValueError("dedupe_window_ms: set it exactly when dedupe is 'window'")
        if self.start_ts and self.end_ts and self.end_ts <= self.start_ts:
            raise ValueError(f"end_ts: {self.end_ts.isoformat()} is not after start_ts {self.start_ts.isoformat()}")
        return self

    def digest(self) -> str:
        """SHA-256 of the canonical definition: every field but published_ts and definition_hash.

        Keys are sorted and ``scheme_params`` and ``metrics`` are parsed, so formatting never changes the
        digest. An empty ``metrics`` is left out: records written before the field existed keep their hash.
        """
        body = self.to_avro()
        del body["published_ts"], body["definition_hash"], body["metrics"]
        body["scheme_params"] = json.loads(self.scheme_params)
        if self.metrics:
            body["metrics"] = json.loads(self.metrics)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


FlagReason = Literal[
    "variant_mismatch",
    "unknown_experiment",
    "unknown_revision",
    "unknown_variant",
    "exposure_while_inactive",
    "rollout_mismatch",
    "multiple_variants",
    "other",
]


class AssignmentFlag(AvroModel):
    """An exposure that disagrees with its experiment definition."""

    avro_name = "AssignmentFlag"
    event_id: _AvroUuid
    experiment: _Name
    revision: _Count32
    unit_type: _Name
    unit_id: _Name
    logged_variant: str
    expected_variant: str | None = None
    reason: FlagReason
    detail: str
    variants_seen: list[str] = Field(default_factory=list)
    exposure_ts: Timestamp
    flagged_ts: Timestamp


class DeadLetter(AvroModel):
    """A message a stream job could not process, kept byte for byte."""

    avro_name = "DeadLetter"
    source_topic: _Name
    source_partition: _Count32
    source_offset: _Count64
    key: bytes | None = None
    raw: bytes
    error_kind: _Name
    message: str
    job: str | None = None
    first_seen_ts: Timestamp
    attempts: Annotated[int, Strict(), Field(ge=1, lt=_INT32)] = 1


MODELS: Mapping[str, type[AvroModel]] = {
    model.avro_name: model
    for model in (
        AssignmentFlag,
        AttributedConversion,
        DeadLetter,
        Event,
        ExperimentDefinition,
        Exposure,
        FirstExposure,
        UnattributedEvent,
    )
}
"""The model of each top-level record, by short record name."""
