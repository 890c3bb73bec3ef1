"""Start one worker: check the topics, load the definitions, build the app, run until stopped."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import faust

from stream_jobs.app import create_app, preflight
from stream_jobs.assignment_flags import AssignmentChecker
from stream_jobs.definitions import DefinitionFollower
from stream_jobs.processor import ExperimentRules, UnitProcessor
from stream_jobs.settings import JobsSettings
from stream_jobs.unit_agent import install

__all__ = ["build_worker", "rules_from"]

log = logging.getLogger("abstream.stream_jobs")


def rules_from(definitions: DefinitionFollower) -> Callable[[str], ExperimentRules | None]:
    """The jobs' view of an experiment: from its latest revision, built once per revision."""
    cache: dict[tuple[str, int], ExperimentRules] = {}

    def rules(key: str) -> ExperimentRules | None:
        definition = definitions.latest(key)
        if definition is None:
            return None
        found = cache.get((key, definition["revision"]))
        if found is None:
            window = definition["dedupe_window_ms"] if definition["dedupe"] == "window" else None
            found = cache[(key, definition["revision"])] = ExperimentRules(
                attribution_window_ms=definition["attribution_window_ms"],
                dedupe_window_ms=window,
                end_ts=definition["end_ts"],
            )
        return found

    return rules


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def build_worker(settings: JobsSettings, *, loglevel: str = "info") -> tuple[faust.Worker, DefinitionFollower]:
    """A ready-to-run worker and the definitions follower it uses (close it after the worker stops)."""
    cluster = preflight(settings)
    definitions = DefinitionFollower(settings.kafka_bootstrap, settings.topic("experiment_definitions"))
    known = definitions.load()
    definitions.start()
    log.info("loaded %d experiment definition revision(s)", known)
    checker: Callable[[dict[str, Any], int], dict[str, Any] | None] = AssignmentChecker(definitions).check
    processor = UnitProcessor(
        rules=rules_from(definitions),
        check_assignment=checker if "assignment_flags" in settings.jobs else (lambda _, __: None),
        allowed_lateness_ms=settings.allowed_lateness_ms,
        state_grace_ms=settings.state_grace_ms,
        now_ms=_now_ms,
    )
    app = create_app(settings, cluster)
    install(app, settings, processor, cluster.partitions)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # Faust's terminal spinner turns the root logger to DEBUG at levels above INFO, so every debug
    # call of aiokafka and Faust builds a log record: a service has no terminal to spin anyway.
    worker.spinner = None
    return worker, definitions
