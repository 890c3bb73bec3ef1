"""The collector's logger: the same ExposureLogger (hand-off thread, spool, replay) fed validated records.

Records reaching the collector were validated at the edge with the pydantic models and carry what a
client-side ``log_exposure`` call cannot pass: ``received_ts`` (the collector's clock), the client's
``event_id`` and its ``source``. :class:`IngestLogger` encodes such a record as it is and hands the bytes
to the logger's delivery thread, so they take the same path to Kafka, spool included, as the logger's own.
"""

from __future__ import annotations

from typing import Any

from producers.logger import ExposureLogger, LoggerClosedError
from schemas.models import Event, Exposure
from schemas.serde import AvroSerde

__all__ = ["IngestLogger"]


def _encoded(values: tuple[Any, ...]) -> bytes:
    """The delivery thread's encode step: the record was encoded by the collector already."""
    encoded: bytes = values[0]
    return encoded


class IngestLogger(ExposureLogger):
    """An :class:`ExposureLogger` that also logs whole validated records (``log_record``)."""

    @property
    def default_source(self) -> dict[str, str | None]:
        """The ``source`` this logger writes (sdk, version, app, host): for records that bring none."""
        return dict(self._source)

    def log_record(self, record: Exposure | Event) -> str:
        """Log a validated Exposure or Event as it is; returns its event id. EncodeError if it does not encode."""
        if isinstance(record, Exposure):
            return self.log_exposure_record(record)
        return self.log_event_record(record)

    def log_exposure_record(self, record: Exposure) -> str:
        """Log a validated Exposure as it is; returns its event id. Raises EncodeError if it does not encode."""
        return self._submit_record(self.exposures_topic, self._exposure_serde, record.unit_id, record)

    def log_event_record(self, record: Event) -> str:
        """Log a validated Event as it is; returns its event id."""
        return self._submit_record(self.events_topic, self._event_serde, record.unit_id, record)

    def _submit_record(self, topic: str, serde: AvroSerde, key: str, record: Exposure | Event) -> str:
        if self._closed:
            raise LoggerClosedError(f"log_{record.avro_name.lower()}_record() after close()")
        avro = record.to_avro()
        value = serde.encode(avro)
        self._dispatcher.submit((topic, key, _encoded, (value,)))
        return str(avro["event_id"])
