"""Assignment for apps without an experimentation SDK: the variant of a unit, from the definitions.

    assigner = Assigner.from_dir(Path("deploy/experiments"), logger=exposure_logger)
    variant = assigner.assign("moon_mars", device_id).variant     # logs the exposure too

What ``assign`` returns, by the definition's state (the tutorial's rules, seed 004 step 9):

- ``active``: the scheme's hash of the unit (:mod:`schemas.hashing`, so the verifier recomputes exactly
  this), logged with scheme, revision, seed and bucket when ``log=True`` and a logger is set. Outside
  ``[start, end]``, or when the scheme leaves the unit out (coverage, namespace): the fallback, not logged.
- ``rollout``: the rollout variant, **not logged**. The tutorial records no assignments in rollout, and
  an exposure compares nothing when everyone sees the same variant (the verifier accepts one anyway:
  an SDK logging the rollout variant is not a mismatch).
- ``inactive``: the fallback, not logged.

An experiment without a definition raises :class:`~abstream.errors.UnknownExperimentError`: there is
no fallback to return either, and a typo or a missing deployment is better found in the first test
run than as an experiment that silently never runs. Scheme ``external`` raises ``ConfigError``: those
assignments are made elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from abstream.errors import ConfigError, UnknownExperimentError
from schemas.definitions import EXTERNAL, Definition, State, load_definitions
from schemas.hashing import Assigner as HashAssigner
from schemas.hashing import assigner
from schemas.models import ExperimentDefinition

if TYPE_CHECKING:
    from producers.logger import ExposureLogger

__all__ = ["Assigner", "AssignmentResult", "LatestDefinitions"]

_INT64 = 2**63


class LatestDefinitions(Protocol):
    """Where published definitions come from: ``deploy.definitions_topic.DefinitionStore`` has this."""

    def latest(self) -> Mapping[str, ExperimentDefinition]: ...


@dataclass(frozen=True, slots=True)
class AssignmentResult:
    """The variant a unit gets and why; ``exposed`` says whether this counts as an exposure to log.

    ``bucket`` and ``inputs`` are the hash's (see :class:`schemas.hashing.Assignment`); ``event_id`` is
    the logged exposure's, ``None`` when nothing was logged.
    """

    experiment: str
    revision: int
    variant: str
    state: State
    reason: str
    exposed: bool = False
    bucket: int | float | None = None
    inputs: Mapping[str, object] = field(default_factory=dict)
    event_id: str | None = None


class _Experiment:
    """One definition with its hash assigner built once."""

    __slots__ = ("definition", "hash")

    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        self.hash: HashAssigner | None = None
        if definition.scheme != EXTERNAL:
            self.hash = assigner(definition.scheme, definition.scheme_params)

    def decide(self, unit_id: str, at: datetime) -> AssignmentResult:
        d = self.definition
        if d.state == "inactive":
            return self._fallback("inactive: everyone gets the fallback variant")
        if d.state == "rollout":
            assert d.rollout_variant is not None  # guaranteed by the definition's validation
            return self._result(d.rollout_variant, f"rollout: everyone gets {d.rollout_variant!r}")
        if (d.start is not None and at < d.start) or (d.end is not None and at > d.end):
            return self._fallback(f"outside the active window [{_show(d.start)}, {_show(d.end)}]")
        if self.hash is None:
            raise ConfigError(f"experiment {d.key!r} uses scheme external: its assignments are made elsewhere")
        hashed = self.hash(unit_id, at)
        if hashed.variant is None:
            return self._fallback(f"not in the experiment: {hashed.reason}", hashed.bucket, hashed.inputs)
        reason = f"active: {hashed.reason}"
        return self._result(hashed.variant, reason, exposed=True, bucket=hashed.bucket, inputs=hashed.inputs)

    def _fallback(
        self, reason: str, bucket: Any = None, inputs: Mapping[str, object] | None = None
    ) -> AssignmentResult:
        return self._result(self.definition.fallback_variant, reason, bucket=bucket, inputs=inputs or {})

    def _result(self, variant: str, reason: str, **extra: Any) -> AssignmentResult:
        d = self.definition
        return AssignmentResult(d.key, d.revision, variant, d.state, reason, **extra)


class Assigner:
    """Deterministic assignment from definitions, the latest revision of each experiment; thread-safe.

    ``logger`` (an :class:`~producers.logger.ExposureLogger`) receives the exposures; ``clock`` gives
    the time when ``assign`` is not told one.
    """

    def __init__(
        self,
        definitions: Iterable[Definition | ExperimentDefinition],
        *,
        logger: ExposureLogger | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        latest: dict[str, Definition] = {}
        for given in definitions:
            definition = given if isinstance(given, Definition) else Definition.from_record(given)
            if definition.key not in latest or definition.revision > latest[definition.key].revision:
                latest[definition.key] = definition
        self._experiments = {key: _Experiment(definition) for key, definition in latest.items()}
        self._logger = logger
        self._clock = clock

    @classmethod
    def from_dir(cls, path: Path, *, logger: ExposureLogger | None = None) -> Assigner:
        """From the YAML files of a directory (``deploy/experiments``)."""
        return cls(load_definitions(path).values(), logger=logger)

    @classmethod
    def from_store(cls, store: LatestDefinitions, *, logger: ExposureLogger | None = None) -> Assigner:
        """From the published definitions, e.g. ``DefinitionStore.read(...)``."""
        return cls(store.latest().values(), logger=logger)

    @property
    def experiments(self) -> dict[str, Definition]:
        """The definition used for each experiment key."""
        return {key: experiment.definition for key, experiment in self._experiments.items()}

    def assign(
        self, experiment: str, unit_id: str, *, log: bool = True, at: datetime | None = None
    ) -> AssignmentResult:
        """The variant of ``unit_id`` in ``experiment`` at ``at`` (aware; now by default), logged if exposed."""
        entry = self._experiments.get(experiment)
        if entry is None:
            known = tuple(sorted(self._experiments))
            raise UnknownExperimentError(
                f"no definition of experiment {experiment!r} (known: {', '.join(known) or 'none'})",
                experiment=experiment,
                known=known,
            )
        when = self._clock() if at is None else at
        result = entry.decide(unit_id, when)
        if not (log and result.exposed and self._logger is not None):
            return result
        event_id = self._logger.log_exposure(
            experiment=experiment, variant=result.variant, unit_id=unit_id, revision=result.revision,
            unit_type=entry.definition.unit_type, scheme=entry.definition.scheme, client_ts=when,
            **_hash_fields(entry.definition, result),
        )  # fmt: skip
        return replace(result, event_id=event_id)


def _hash_fields(definition: Definition, result: AssignmentResult) -> dict[str, Any]:
    """The hash inputs an exposure carries, so a mismatch can be told apart from a different seed or bucket."""
    inputs, bucket = result.inputs, result.bucket
    seed = inputs.get("seed", inputs.get("salt", definition.scheme_params.get("salt")))
    fields: dict[str, Any] = {"hash_seed": seed if isinstance(seed, str) else None}
    if isinstance(inputs.get("hash_version"), int):
        fields["hash_version"] = inputs["hash_version"]
    if isinstance(bucket, int) and 0 <= bucket < _INT64:
        fields["bucket_index"] = bucket
    elif isinstance(bucket, float) and 0.0 <= bucket < 1.0:
        fields["bucket_position"] = bucket
    return fields


def _show(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat()
