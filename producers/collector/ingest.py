"""Hand a record validated at the edge to an ExposureLogger, as the client sent it plus ``received_ts``.

The pydantic models mirror the ``.avsc`` files and ``log_exposure`` / ``log_event`` take the Avro field
names as keywords, so a validated record maps one to one onto a logger call, including what a client app
does not pass itself: the client's ``event_id`` and ``source`` and the collector's ``received_ts``. The
record then takes the logger's own path to Kafka, spool included.
"""

from __future__ import annotations

from producers.logger import ExposureLogger, Source
from schemas.models import Event, Exposure

__all__ = ["log_record"]


def log_record(logger: ExposureLogger, record: Exposure | Event) -> str:
    """Log a validated Exposure or Event; returns its event id. InvalidRecordError names a field the logger refuses."""
    fields = record.to_avro()
    fields["source"] = Source(**fields["source"])
    if isinstance(record, Exposure):
        return logger.log_exposure(**fields)
    return logger.log_event(**fields)
