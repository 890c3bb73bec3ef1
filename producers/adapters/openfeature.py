"""An OpenFeature ``Hook`` that logs flag evaluations carrying a variant as Exposures.

    from openfeature import api
    from producers.adapters.openfeature import OpenFeatureExposures

    api.add_hooks([OpenFeatureExposures(exposure_logger)])
    client = api.get_client()
    client.get_string_value("checkout", "A", EvaluationContext(targeting_key="u-42"))

A flag evaluation is an exposure only when the provider reports a ``variant``; evaluations without one
(a static default, an error) are skipped. The targeting key is the unit. The flag's metadata may say
more, under the Exposure field names: ``experiment`` (default: the flag key), ``revision``, ``scheme``
(default ``external``: the variant cannot be recomputed), ``unit_type``, ``hash_seed``,
``hash_version``, ``bucket_position`` and ``bucket_index``. The revision is ``revisions[experiment]``,
else the metadata's, else ``default_revision``.
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

try:
    from openfeature.hook import Hook
except ImportError as exc:
    raise ImportError(
        f"the OpenFeature adapter needs openfeature-sdk: pip install 'abstream[openfeature]' ({exc})"
    ) from exc

__all__ = ["OpenFeatureExposures", "openfeature_exposure"]

EXTERNAL = "external"


def openfeature_exposure(
    flag_key: str,
    details: Any,
    targeting_key: str | None,
    *,
    revision: int,
    unit_type: str,
    context: Mapping[str, str] | None = None,
) -> ExposureFields | None:
    """Map a ``FlagEvaluationDetails``; None when it has no variant (not an exposure).

    ``revision`` and ``unit_type`` apply unless the flag metadata names its own ``unit_type``.
    """
    if details.variant is None:
        return None
    metadata: Mapping[str, Any] = details.flag_metadata or {}
    position = _metadata_number(metadata, "bucket_position", (int, float))
    return ExposureFields(
        experiment=_metadata_str(metadata, "experiment") or flag_key,
        variant=string_value(details.variant),
        unit_id=require("OpenFeature", "targeting_key", targeting_key),
        revision=revision,
        unit_type=_metadata_str(metadata, "unit_type") or unit_type,
        scheme=_metadata_str(metadata, "scheme") or EXTERNAL,
        hash_seed=_metadata_str(metadata, "hash_seed"),
        hash_version=_metadata_number(metadata, "hash_version", (int,)),
        bucket_position=None if position is None else float(position),
        bucket_index=_metadata_number(metadata, "bucket_index", (int,)),
        params={"flag_key": flag_key, "value": string_value(details.value)},
        context={**(context or {}), **string_map({"reason": details.reason})},
    )


def _metadata_str(metadata: Mapping[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    return value if isinstance(value, str) and value else None


def _metadata_number(metadata: Mapping[str, Any], key: str, kinds: tuple[type, ...]) -> Any:
    """The metadata value if it is one of ``kinds`` (a boolean never counts as a number), else None."""
    value = metadata.get(key)
    return value if isinstance(value, kinds) and not isinstance(value, bool) else None


class OpenFeatureExposures(Hook):
    """A ``Hook`` whose ``after`` logs each evaluation with a variant to ``sink`` (an ExposureLogger).

    ``context_attributes`` names evaluation-context attributes copied into the exposure's context
    (keep them low-cardinality).
    """

    def __init__(
        self,
        sink: ExposureSink,
        *,
        revisions: Mapping[str, int] | None = None,
        default_revision: int = 1,
        unit_type: str = "user_id",
        context_attributes: Sequence[str] = (),
    ) -> None:
        self._delivery = Delivery(sink, adapter="openfeature")
        self._revisions = {
            k: check_revision("openfeature", f"revisions[{k!r}]", v) for k, v in (revisions or {}).items()
        }
        self._default_revision = check_revision("openfeature", "default_revision", default_revision)
        self._unit_type = check_name("openfeature", "unit_type", unit_type)
        self._context_attributes = tuple(context_attributes)

    @property
    def stats(self) -> AdapterStats:
        return self._delivery.stats

    def after(self, hook_context: Any, details: Any, hints: Any) -> None:
        """Log the evaluation if it has a variant; never raises (a raising hook makes the SDK serve the default)."""
        self._delivery.send(lambda: self._fields(hook_context, details))

    def _fields(self, hook_context: Any, details: Any) -> ExposureFields | None:
        evaluation_context = hook_context.evaluation_context
        metadata: Mapping[str, Any] = details.flag_metadata or {}
        experiment = _metadata_str(metadata, "experiment") or hook_context.flag_key
        attributes: Mapping[str, Any] = evaluation_context.attributes or {}
        return openfeature_exposure(
            hook_context.flag_key, details, evaluation_context.targeting_key,
            revision=resolve_revision(experiment, self._revisions, metadata.get("revision"), self._default_revision),
            unit_type=self._unit_type,
            context=string_map({k: attributes.get(k) for k in self._context_attributes}),
        )  # fmt: skip
