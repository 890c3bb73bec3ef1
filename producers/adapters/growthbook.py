"""GrowthBook's ``on_experiment_viewed`` callback, logging each viewed experiment as an Exposure.

    from growthbook import GrowthBook
    from producers.adapters.growthbook import GrowthBookExposures

    exposures = GrowthBookExposures(exposure_logger, revisions={"checkout": 3})
    gb = GrowthBook(attributes={"id": "u-42"}, features=features, on_experiment_viewed=exposures)

The SDK calls it once per (user, experiment, variation) with keyword arguments ``experiment``, ``result``
and ``user_context``; the async ``GrowthBookClient`` takes the same callable in ``Options``.

Mapping: ``experiment.key`` is the experiment; the variant is the variation's ``name`` from
``experiment.meta`` when it has one, else ``str(variationId)`` (so a definition's ``variations`` must list
those names for the hash check to match); ``result.hashValue`` is the unit and ``result.hashAttribute``
says its type (through ``unit_types``). The hash inputs are the seed GrowthBook hashed with
(``seed or key``), ``hashVersion`` and ``result.bucket``; ``hashUsed``, ``stickyBucketUsed`` and a
forced variation set the exception flags. The revision is ``revisions[key]``, else the experiment's
``phase`` when it is a number, else ``default_revision``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base import (
    AdapterStats,
    Delivery,
    ExposureFields,
    ExposureSink,
    check_name,
    check_revision,
    require,
    resolve_revision,
    string_map,
    string_value,
)

__all__ = ["GrowthBookExposures", "growthbook_exposure", "growthbook_variant"]

GROWTHBOOK = "growthbook"


def growthbook_variant(experiment: Any, result: Any) -> str:
    """The variation's ``name`` from ``experiment.meta`` if set, else ``str(result.variationId)``."""
    meta: Sequence[Mapping[str, Any]] = experiment.meta or ()
    index = result.variationId
    if 0 <= index < len(meta) and meta[index].get("name"):
        return str(meta[index]["name"])
    return str(index)


def growthbook_exposure(
    experiment: Any,
    result: Any,
    *,
    revision: int,
    unit_type: str,
    context: Mapping[str, str] | None = None,
) -> ExposureFields:
    """Map a GrowthBook ``Experiment`` and its ``Result`` (the ``on_experiment_viewed`` arguments)."""
    params = {"variationId": str(result.variationId), "key": str(result.key), "value": string_value(result.value)}
    full_context = {**(context or {}), "hash_attribute": str(result.hashAttribute)}
    if result.featureId:
        full_context["feature_id"] = str(result.featureId)
    return ExposureFields(
        experiment=require("GrowthBook", "experiment.key", experiment.key),
        variant=growthbook_variant(experiment, result),
        unit_id=require("GrowthBook", "result.hashValue", string_value(result.hashValue)),
        revision=revision, unit_type=unit_type, scheme=GROWTHBOOK,
        hash_seed=experiment.seed or experiment.key, hash_version=experiment.hashVersion or 1,
        bucket_position=result.bucket, params=params, context=full_context,
        hash_used=bool(result.hashUsed), sticky_bucket_used=bool(result.stickyBucketUsed),
        forced=experiment.force is not None or not result.hashUsed,
    )  # fmt: skip


class GrowthBookExposures:
    """An ``on_experiment_viewed`` callback that logs exposures to ``sink`` (an ExposureLogger).

    ``unit_types`` maps a hash attribute to the logged unit type (default ``{"id": "user_id"}``; an
    attribute not in it is its own unit type). ``context_attributes`` names user attributes copied into
    the exposure's context (keep them low-cardinality: country, platform).
    """

    def __init__(
        self,
        sink: ExposureSink,
        *,
        revisions: Mapping[str, int] | None = None,
        default_revision: int = 1,
        unit_types: Mapping[str, str] | None = None,
        context_attributes: Sequence[str] = (),
    ) -> None:
        self._delivery = Delivery(sink, adapter=GROWTHBOOK)
        self._revisions = {k: check_revision(GROWTHBOOK, f"revisions[{k!r}]", v) for k, v in (revisions or {}).items()}
        self._default_revision = check_revision(GROWTHBOOK, "default_revision", default_revision)
        given = {"id": "user_id"} if unit_types is None else unit_types
        self._unit_types = {k: check_name(GROWTHBOOK, f"unit_types[{k!r}]", v) for k, v in given.items()}
        self._context_attributes = tuple(context_attributes)

    @property
    def stats(self) -> AdapterStats:
        return self._delivery.stats

    def __call__(self, *, experiment: Any, result: Any, user_context: Any = None) -> None:
        """The SDK's tracking callback; never raises (failures are logged and counted in ``stats``)."""
        self._delivery.send(lambda: self._fields(experiment, result, user_context))

    def _fields(self, experiment: Any, result: Any, user_context: Any) -> ExposureFields | None:
        if not result.inExperiment:
            return None
        attributes: Mapping[str, Any] = getattr(user_context, "attributes", None) or {}
        return growthbook_exposure(
            experiment, result,
            revision=resolve_revision(experiment.key, self._revisions, experiment.phase, self._default_revision),
            unit_type=self._unit_types.get(result.hashAttribute, result.hashAttribute),
            context=string_map({k: attributes.get(k) for k in self._context_attributes}),
        )  # fmt: skip
