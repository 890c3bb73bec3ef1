"""Adapters that plug abstream's exposure logger into experimentation SDKs' logging callbacks.

One module per SDK, each imported on its own so an app only needs the SDK it uses:

- :mod:`producers.adapters.planout`: ``KafkaLoggedExperiment`` / ``KafkaLogging`` (``abstream[planout]``);
- :mod:`producers.adapters.growthbook`: ``GrowthBookExposures``, an ``on_experiment_viewed`` callback;
- :mod:`producers.adapters.eppo`: ``EppoExposures``, an ``AssignmentLogger`` (``abstream[eppo]``);
- :mod:`producers.adapters.openfeature`: ``OpenFeatureExposures``, a ``Hook`` (``abstream[openfeature]``).

Each maps what its SDK knows, hash inputs included, onto ``ExposureLogger.log_exposure``, and never raises
into the SDK: a failure is logged and counted in the adapter's ``stats``.
"""

from __future__ import annotations

from .base import AdapterStats, EventSink, ExposureFields, ExposureSink

__all__ = ["AdapterStats", "EventSink", "ExposureFields", "ExposureSink"]
