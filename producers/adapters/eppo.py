"""An Eppo ``AssignmentLogger`` that logs each assignment event as an Exposure.

    import eppo_client
    from eppo_client import ClientConfig
    from producers.adapters.eppo import EppoExposures

    client = eppo_client.init(ClientConfig(api_key=KEY, assignment_logger=EppoExposures(exposure_logger)))
    client.get_string_assignment("checkout", "u-42", {"country": "FR"}, "control")

Mapping of the SDK's event dict: ``experiment`` (Eppo's ``"{flag}-{allocation}"``) is the experiment,
``variation`` the variant, ``subject`` the unit, ``subjectAttributes`` the context (all of them, or those
named in ``context_attributes``), ``featureFlag``, ``allocation`` and the split's ``extraLogging`` (Eppo
merges it into the event) the params. Eppo does not report the shard it hashed into; when the split's
``extraLogging`` (or ``metaData``) carries ``salt`` and ``shard`` they become ``hash_seed`` and
``bucket_index``. The revision is ``revisions[experiment]``, else ``revisions[flag]``, else
``default_revision``. Bandit actions are not exposures and are not logged.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from .base import (
    AdapterStats,
    Delivery,
    ExposureFields,
    ExposureSink,
    check_name,
    check_revision,
    require,
    string_map,
)

try:
    from eppo_client import AssignmentLogger
except ImportError as exc:
    raise ImportError(f"the Eppo adapter needs eppo-server-sdk: pip install 'abstream[eppo]' ({exc})") from exc

__all__ = ["EppoExposures", "eppo_exposure"]

EPPO = "eppo"
_EVENT_KEYS = frozenset(
    ("featureFlag", "allocation", "experiment", "variation", "metaData", "subject", "subjectAttributes", "timestamp")
)
_HASH_KEYS = ("salt", "shard")


def eppo_exposure(
    event: Mapping[str, Any],
    *,
    revision: int,
    unit_type: str,
    context_attributes: Collection[str] | None = None,
) -> ExposureFields:
    """Map Eppo's assignment event dict (keys in the module docstring); ``context_attributes`` None: all."""
    flag = require("Eppo", "featureFlag", event.get("featureFlag"))
    allocation = require("Eppo", "allocation", event.get("allocation"))
    extra = {k: v for k, v in event.items() if k not in _EVENT_KEYS}
    hashing = {**_hash_info(event.get("metaData")), **_hash_info(extra)}
    params = {
        "flag": flag,
        "allocation": allocation,
        **string_map({k: v for k, v in extra.items() if k not in _HASH_KEYS}),
    }
    attributes: Mapping[str, Any] = event.get("subjectAttributes") or {}
    if context_attributes is not None:
        attributes = {k: v for k, v in attributes.items() if k in context_attributes}
    return ExposureFields(
        experiment=str(event.get("experiment") or f"{flag}-{allocation}"),
        variant=require("Eppo", "variation", event.get("variation")),
        unit_id=require("Eppo", "subject", event.get("subject")),
        revision=revision, unit_type=unit_type, scheme=EPPO,
        hash_seed=hashing.get("salt"), bucket_index=hashing.get("shard"),
        params=params, context=string_map(attributes), client_ts=_timestamp(event.get("timestamp")),
    )  # fmt: skip


def _hash_info(source: object) -> dict[str, Any]:
    """``salt`` (a string) and ``shard`` (an int >= 0) when ``source`` carries them with those types."""
    if not isinstance(source, Mapping):
        return {}
    found: dict[str, Any] = {}
    if isinstance(source.get("salt"), str):
        found["salt"] = source["salt"]
    shard = source.get("shard")
    if type(shard) is int and shard >= 0:
        found["shard"] = shard
    return found


def _timestamp(text: object) -> datetime | None:
    """The event's ISO 8601 time (nanoseconds cut to micro), or None (then: now) if unreadable."""
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


class EppoExposures(AssignmentLogger):
    """An ``AssignmentLogger`` for ``eppo_client.ClientConfig`` that logs to ``sink`` (an ExposureLogger).

    ``unit_type`` is what subjects are (default ``user_id``); ``context_attributes`` names the subject
    attributes copied into the context (None: all; keep them low-cardinality).
    """

    def __init__(
        self,
        sink: ExposureSink,
        *,
        revisions: Mapping[str, int] | None = None,
        default_revision: int = 1,
        unit_type: str = "user_id",
        context_attributes: Collection[str] | None = None,
    ) -> None:
        super().__init__()
        self._delivery = Delivery(sink, adapter=EPPO)
        self._revisions = {k: check_revision(EPPO, f"revisions[{k!r}]", v) for k, v in (revisions or {}).items()}
        self._default_revision = check_revision(EPPO, "default_revision", default_revision)
        self._unit_type = check_name(EPPO, "unit_type", unit_type)
        self._context_attributes = None if context_attributes is None else frozenset(context_attributes)

    @property
    def stats(self) -> AdapterStats:
        return self._delivery.stats

    def log_assignment(self, event: dict[str, Any]) -> None:
        """Called by the SDK for each logged assignment; never raises (failures are counted in ``stats``)."""
        self._delivery.send(lambda: self._fields(event))

    def log_bandit_action(self, event: dict[str, Any]) -> None:
        """Bandit actions are not experiment exposures: not logged."""

    def _fields(self, event: Mapping[str, Any]) -> ExposureFields:
        experiment = str(event.get("experiment") or "")
        revision = self._revisions.get(experiment, self._revisions.get(str(event.get("featureFlag")), None))
        return eppo_exposure(
            event,
            revision=self._default_revision if revision is None else revision,
            unit_type=self._unit_type,
            context_attributes=self._context_attributes,
        )
