"""What every SDK adapter shares: the sink it writes to, the fields it maps, and a guard that never raises.

An adapter runs inside an SDK callback, on the app's request path. A bug in our mapping or a record the
logger refuses must not turn a page view into an error, so :class:`Delivery` catches it, logs it and counts
it in :class:`AdapterStats`. Only construction-time mistakes (a bad option) raise, as ``ConfigError``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NotRequired, Protocol, Required, TypedDict

from abstream.errors import ConfigError, InvalidRecordError

__all__ = [
    "AdapterStats",
    "Delivery",
    "EventSink",
    "ExposureFields",
    "ExposureSink",
    "check_name",
    "check_revision",
    "check_sink",
    "require",
    "resolve_revision",
    "string_map",
    "string_value",
]

log = logging.getLogger("abstream.producers.adapters")

# A failure is logged at WARNING the first time and then once every this many, so a systematic mapping
# problem on a busy app cannot flood the log; AdapterStats.failed has the exact count.
_WARN_EVERY = 1000


class ExposureSink(Protocol):
    """Where adapters send exposures: :class:`producers.logger.ExposureLogger` satisfies it."""

    def log_exposure(
        self,
        *,
        experiment: str,
        variant: str,
        unit_id: str,
        revision: int,
        unit_type: str = ...,
        scheme: str = ...,
        params: Mapping[str, Any] | None = ...,
        context: Mapping[str, Any] | None = ...,
        hash_seed: str | None = ...,
        hash_version: int | None = ...,
        bucket_position: float | None = ...,
        bucket_index: int | None = ...,
        hash_used: bool = ...,
        sticky_bucket_used: bool = ...,
        forced: bool = ...,
        client_ts: int | datetime | None = ...,
    ) -> str: ...


class EventSink(ExposureSink, Protocol):
    """A sink that also takes events (PlanOut's ``log_event``); ``ExposureLogger`` satisfies it."""

    def log_event(
        self,
        *,
        unit_id: str,
        name: str,
        unit_type: str = ...,
        value: float | None = ...,
        properties: Mapping[str, Any] | None = ...,
    ) -> str: ...


class ExposureFields(TypedDict, total=False):
    """The keyword arguments an adapter passes to :meth:`ExposureSink.log_exposure`."""

    experiment: Required[str]
    variant: Required[str]
    unit_id: Required[str]
    revision: Required[int]
    unit_type: Required[str]
    scheme: Required[str]
    params: NotRequired[dict[str, str]]
    context: NotRequired[dict[str, str]]
    hash_seed: NotRequired[str | None]
    hash_version: NotRequired[int | None]
    bucket_position: NotRequired[float | None]
    bucket_index: NotRequired[int | None]
    hash_used: NotRequired[bool]
    sticky_bucket_used: NotRequired[bool]
    forced: NotRequired[bool]
    client_ts: NotRequired[int | datetime | None]


@dataclass
class AdapterStats:
    """Counters since the adapter was built: ``failed`` are exposures lost to an error (alert on it)."""

    logged: int = 0
    skipped: int = 0
    failed: int = 0


class Delivery:
    """Maps and sends one SDK callback's exposure; a failure is logged and counted, never raised."""

    def __init__(self, sink: ExposureSink, *, adapter: str) -> None:
        self.sink = check_sink(sink, adapter)
        self.adapter = adapter
        self._stats = AdapterStats()
        self._lock = threading.Lock()

    @property
    def stats(self) -> AdapterStats:
        with self._lock:
            return replace(self._stats)

    def send(self, build: Callable[[], ExposureFields | None]) -> str | None:
        """Log what ``build()`` maps (None: not an exposure, counted as skipped); returns the event id."""

        def log_exposure() -> str | None:
            fields = build()
            return None if fields is None else self.sink.log_exposure(**fields)

        return self.guard(log_exposure)

    def guard(self, action: Callable[[], str | None]) -> str | None:
        """Run ``action`` (it logs one record and returns its id, or None to skip) and count the outcome."""
        try:
            event_id = action()
        except Exception:
            self._failed()
            return None
        with self._lock:
            if event_id is None:
                self._stats.skipped += 1
            else:
                self._stats.logged += 1
        return event_id

    def _failed(self) -> None:
        with self._lock:
            self._stats.failed += 1
            count = self._stats.failed
        if count % _WARN_EVERY == 1:
            log.warning(
                "abstream %s adapter: an exposure was not logged (%d so far)", self.adapter, count, exc_info=True
            )
        else:
            log.debug("abstream %s adapter: an exposure was not logged", self.adapter, exc_info=True)


def check_sink(sink: object, adapter: str) -> Any:
    """``sink`` if it has a callable ``log_exposure``, else ConfigError (a wiring mistake, at startup)."""
    if not callable(getattr(sink, "log_exposure", None)):
        raise ConfigError(
            f"{adapter} adapter: sink must have a log_exposure(...) method (an ExposureLogger), got {sink!r}"
        )
    return sink


def check_revision(adapter: str, name: str, value: object) -> int:
    """A revision option: an int >= 0, else ConfigError naming the option."""
    if type(value) is not int or value < 0:
        raise ConfigError(f"{adapter} adapter: {name} must be an int >= 0, got {value!r}")
    return value


def check_name(adapter: str, name: str, value: object) -> str:
    """A string option (a unit type, a key): non-empty, else ConfigError naming the option."""
    if isinstance(value, str) and value:
        return value
    raise ConfigError(f"{adapter} adapter: {name} must be a non-empty string, got {value!r}")


def resolve_revision(experiment: str, revisions: Mapping[str, int], found: object, default: int) -> int:
    """The revision to log: ``revisions[experiment]``, else what the SDK carried (an int or digits), else default."""
    if experiment in revisions:
        return revisions[experiment]
    if type(found) is int and found >= 0:
        return found
    if isinstance(found, str) and found.isdigit():
        return int(found)
    return default


def require(record: str, field: str, value: object) -> str:
    """A non-empty string the SDK must have given, else InvalidRecordError naming ``record.field``."""
    if isinstance(value, str) and value:
        return value
    raise InvalidRecordError(f"{record}.{field}: expected a non-empty string, got {value!r}", field=field)


def string_value(value: object) -> str:
    """An SDK value as a map value: strings as they are, booleans as JSON (``true``), containers as JSON."""
    if type(value) is str:
        return value
    if isinstance(value, str):  # a StrEnum: its value, not its repr
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return str(value)


def string_map(values: Mapping[str, object] | None, *, prefix: str = "") -> dict[str, str]:
    """A ``map<string,string>`` from SDK data: None values dropped, the rest through :func:`string_value`."""
    return {f"{prefix}{k}": string_value(v) for k, v in (values or {}).items() if v is not None}
