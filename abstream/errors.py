"""The error hierarchy: one root, subclasses that carry enough context to act on.

A decode error keeps the raw bytes and where they came from, so a stream job can send the record to
the dead-letter topic with its reason instead of dropping it.
"""

from __future__ import annotations

__all__ = [
    "AbstreamError",
    "BatchTooLargeError",
    "ClickHouseError",
    "ClickHouseLockedError",
    "ConfigError",
    "DecodeError",
    "DefinitionError",
    "DefinitionsTopicError",
    "EncodeError",
    "InvalidRecordError",
    "KafkaSetupError",
    "LocalKafkaError",
    "MigrationError",
    "RegistryError",
    "ReportError",
    "SchemaError",
    "SchemeParamsError",
    "SinkError",
    "SpoolError",
    "SpoolFullError",
    "SpoolLockedError",
    "UnassignableUnitError",
    "UnknownExperimentError",
    "UnknownSchemaError",
]


class AbstreamError(Exception):
    """Root of every error abstream raises on purpose."""


class ConfigError(AbstreamError, ValueError):
    """A setting, a spec file or an option is wrong; the message names the key and the file."""


class LocalKafkaError(AbstreamError):
    """The local Kafka cluster could not be fetched, formatted, started or stopped."""

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        self.log_tail = log_tail
        super().__init__(f"{message}\n--- last lines of the broker log ---\n{log_tail}" if log_tail else message)


class KafkaSetupError(AbstreamError):
    """Topics could not be created or do not match the declared spec."""


class ClickHouseError(AbstreamError):
    """ClickHouse could not be reached or rejected a statement."""


class SchemaError(AbstreamError):
    """An ``.avsc`` file is missing or invalid."""


class InvalidRecordError(AbstreamError, ValueError):
    """A record given by the caller does not satisfy the contract; ``field`` names the culprit."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class EncodeError(InvalidRecordError):
    """A record could not be encoded with its schema."""


class UnassignableUnitError(InvalidRecordError):
    """The scheme's SDK cannot assign this unit at all (PlanOut raises on a non-ASCII unit id).

    Verification turns it into an ``unassignable_unit`` flag: no real client logged that assignment.
    """


class DecodeError(AbstreamError):
    """Bytes could not be decoded; keeps the raw bytes and their origin for the dead-letter topic."""

    def __init__(
        self,
        message: str,
        *,
        raw: bytes,
        kind: str,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.raw = raw
        self.kind = kind
        self.topic = topic
        self.partition = partition
        self.offset = offset
        super().__init__(message)


class SchemeParamsError(ConfigError):
    """An assignment scheme is unknown or its ``scheme_params`` are invalid.

    ``scheme`` and ``key`` name the culprit so a definition linter can point at the exact field.
    """

    def __init__(self, message: str, *, scheme: str, key: str | None = None) -> None:
        self.scheme = scheme
        self.key = key
        super().__init__(message)


class SpoolError(AbstreamError):
    """The local spool could not be opened, written or read; ``directory`` names the spool."""

    def __init__(self, message: str, *, directory: str) -> None:
        self.directory = directory
        super().__init__(message)


class SpoolLockedError(SpoolError):
    """Another process owns the spool directory; ``pid`` is that process when its lock file names it."""

    def __init__(self, message: str, *, directory: str, pid: int | None) -> None:
        self.pid = pid
        super().__init__(message, directory=directory)


class SpoolFullError(SpoolError):
    """The record would take the spool past ``max_bytes``; it was not stored, so count it as failed."""

    def __init__(self, message: str, *, directory: str, pending_bytes: int, max_bytes: int) -> None:
        self.pending_bytes = pending_bytes
        self.max_bytes = max_bytes
        super().__init__(message, directory=directory)


class UnknownSchemaError(SchemaError, LookupError):
    """No known schema version has this fingerprint or registry id; ``kind`` says which lookup failed."""

    def __init__(self, message: str, *, kind: str) -> None:
        self.kind = kind
        super().__init__(message)


class RegistryError(AbstreamError):
    """The schema registry could not be reached or refused a request: retry later, do not dead-letter."""


class DefinitionError(ConfigError):
    """Experiment definition files are invalid; ``problems`` holds one ``(where, what)`` per mistake.

    ``where`` is ``"<file>: <field path>"`` so a user (or an editor) can jump to it; the message lists
    every problem at once, because fixing a definition one error per run is tedious.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{where}: {what}" if where else what for where, what in problems))


class UnknownExperimentError(AbstreamError, LookupError):
    """An experiment key has no definition: a typo in the app or definitions not deployed."""

    def __init__(self, message: str, *, experiment: str, known: tuple[str, ...] = ()) -> None:
        self.experiment = experiment
        self.known = known
        super().__init__(message)


class DefinitionsTopicError(KafkaSetupError):
    """The experiment definitions topic could not be read or written; ``topic`` names it."""

    def __init__(self, message: str, *, topic: str) -> None:
        self.topic = topic
        super().__init__(message)


class ClickHouseLockedError(ClickHouseError):
    """The embedded store is open in another process; ``pid`` is the owner (None when unreadable).

    ``abstream report`` catches it to ask the owner (a running sink) over its local HTTP API instead.
    """

    def __init__(self, message: str, *, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        super().__init__(message)


class MigrationError(ClickHouseError):
    """A ClickHouse migration is malformed, failed, or was edited after it was applied; ``migration`` names it."""

    def __init__(self, message: str, *, migration: str) -> None:
        self.migration = migration
        super().__init__(message)


class SinkError(AbstreamError):
    """The sink cannot start or cannot hand a record on (missing topics, undeliverable dead letters)."""


class ReportError(AbstreamError):
    """A report cannot be produced: unknown experiment, views not migrated, or the sink's API unreachable."""


class BatchTooLargeError(InvalidRecordError):
    """A batch posted to the collector holds more than ``max_records`` records; the client must split it."""

    def __init__(self, message: str, *, records: int, max_records: int) -> None:
        self.records = records
        self.max_records = max_records
        super().__init__(message, field="body")
