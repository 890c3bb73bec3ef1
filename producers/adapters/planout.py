"""PlanOut experiments whose exposure log goes to Kafka, as Sentry routed PlanOut's log to its warehouse.

    from producers.adapters.planout import KafkaLoggedExperiment
    from planout.ops.random import WeightedChoice

    class SampleEventExperiment(KafkaLoggedExperiment):
        unit_input = "userid"          # the input that is the randomisation unit
        variant_param = "variant"      # the param that is "the variant"
        revision = 2

        def assign(self, params, userid):
            params.variant = WeightedChoice(choices=["button", "link", "control"], weights=[1, 1, 2], unit=userid)

    KafkaLoggedExperiment.use_sink(exposure_logger)    # once, at startup
    SampleEventExperiment(userid=42).get("variant")    # logs the exposure (auto exposure logging)

Set ``auto_exposure_log = False`` to compute assignments early and call ``log_exposure()`` when the unit
actually sees the variant (what Sentry did for its single-page app). Each exposure carries scheme
``planout``, the experiment salt as ``hash_seed``, every param (as strings) in ``params``, the assignment
code's checksum in ``context["planout_checksum"]`` and ``forced=True`` when the variant was overridden.
Other PlanOut events (``log_event("click")``) become abstream Events named after them.

planout 0.6, its latest release, does ``from collections import MutableMapping``, which Python 3.10 removed.
Importing this module adds that alias only while planout itself is imported, and only if it is missing.
"""

from __future__ import annotations

import collections
import collections.abc
from collections.abc import Collection, Mapping
from typing import Any, ClassVar

from abstream.errors import ConfigError, InvalidRecordError

from .base import AdapterStats, Delivery, EventSink, ExposureFields, check_revision, string_map, string_value

__all__ = ["KafkaLoggedExperiment", "KafkaLogging", "planout_exposure"]

PLANOUT = "planout"


def _import_planout_experiment() -> Any:
    added = not hasattr(collections, "MutableMapping")
    if added:
        collections.MutableMapping = collections.abc.MutableMapping  # type: ignore[attr-defined]
    try:
        import planout.experiment
    except ImportError as exc:
        raise ImportError(f"the PlanOut adapter needs planout: pip install 'abstream[planout]' ({exc})") from exc
    finally:
        if added:
            del collections.MutableMapping  # type: ignore[attr-defined]
    return planout.experiment


_Experiment: Any = _import_planout_experiment().Experiment


def planout_exposure(
    blob: Mapping[str, Any],
    *,
    unit_id: str,
    unit_type: str,
    variant_param: str | None,
    revision: int,
    forced: bool = False,
    context_inputs: Collection[str] = (),
) -> ExposureFields:
    """Map PlanOut's log record (``name``, ``salt``, ``inputs``, ``params``, ``checksum``, ``extra_data``).

    ``variant_param`` None means: the experiment's only param. Raises InvalidRecordError naming the field.
    """
    params: Mapping[str, Any] = blob.get("params") or {}
    variant = _variant(blob.get("name"), params, variant_param)
    context = string_map({k: v for k, v in (blob.get("inputs") or {}).items() if k in context_inputs}, prefix="input.")
    context.update(string_map(blob.get("extra_data")))
    if blob.get("checksum"):
        context["planout_checksum"] = str(blob["checksum"])
    return ExposureFields(
        experiment=str(blob["name"]), variant=variant, unit_id=unit_id, revision=revision, unit_type=unit_type,
        scheme=PLANOUT, hash_seed=str(blob["salt"]), params=string_map(params), context=context, forced=forced,
    )  # fmt: skip


def _variant(experiment: object, params: Mapping[str, Any], variant_param: str | None) -> str:
    if variant_param is None:
        if len(params) != 1:
            raise InvalidRecordError(
                f"PlanOut experiment {experiment!r} assigned {len(params)} params ({', '.join(params)}); "
                "set variant_param to the one that is the variant",
                field="variant",
            )
        variant_param = next(iter(params))
    if params.get(variant_param) is None:
        raise InvalidRecordError(
            f"PlanOut experiment {experiment!r} assigned no param {variant_param!r} (params: {', '.join(params)})",
            field="variant",
        )
    return string_value(params[variant_param])


class KafkaLogging:
    """Mixin for a PlanOut ``Experiment`` class: its exposure log goes to an abstream sink.

    Class attributes configure it: ``unit_input`` (the input that is the unit; None: the only input),
    ``unit_type`` (None: ``unit_input``), ``variant_param`` (None: the only param), ``revision``,
    ``auto_exposure_log`` and ``context_inputs`` (inputs copied into the context as ``input.<name>``).
    Override :meth:`unit_id` when the unit input is an object (``str(user.id)``, not ``str(user)``).
    """

    unit_input: ClassVar[str | None] = None
    unit_type: ClassVar[str | None] = None
    variant_param: ClassVar[str | None] = None
    revision: ClassVar[int] = 1
    auto_exposure_log: ClassVar[bool] = True
    context_inputs: ClassVar[tuple[str, ...]] = ()
    _abstream_delivery: ClassVar[Delivery | None] = None

    # What the PlanOut base class provides.
    inputs: dict[str, Any]
    name: str
    _auto_exposure_log: bool
    _assignment: Any

    @classmethod
    def use_sink(cls, sink: EventSink) -> None:
        """Send this class's (and its subclasses') log to ``sink``, an ExposureLogger; call once at startup."""
        cls._abstream_delivery = Delivery(sink, adapter=PLANOUT)

    @classmethod
    def exposure_stats(cls) -> AdapterStats:
        """Records (exposures and PlanOut events) logged, skipped and failed through this class's sink."""
        return cls._delivery().stats

    @classmethod
    def _delivery(cls) -> Delivery:
        if cls._abstream_delivery is None:
            raise ConfigError(f"{cls.__name__}: call {cls.__name__}.use_sink(exposure_logger) at startup first")
        return cls._abstream_delivery

    def __init__(self, **inputs: Any) -> None:
        self._delivery()
        check_revision(PLANOUT, f"{type(self).__name__}.revision", self.revision)
        super().__init__(**inputs)
        self._auto_exposure_log = self.auto_exposure_log
        self._unit_input()

    def _unit_input(self) -> str:
        if self.unit_input is not None:
            if self.unit_input not in self.inputs:
                raise ConfigError(f"{type(self).__name__}: unit_input {self.unit_input!r} is not among the inputs")
            return self.unit_input
        if len(self.inputs) != 1:
            raise ConfigError(f"{type(self).__name__}: set unit_input to the input that is the unit")
        return next(iter(self.inputs))

    def unit_id(self) -> str:
        """The unit's id: ``str()`` of the unit input's value."""
        return string_value(self.inputs[self._unit_input()])

    # -- PlanOut's logger interface ---------------------------------------------------------------
    def configure_logger(self) -> None:
        """Nothing to set up: the sink was given to :meth:`use_sink`."""

    def previously_logged(self) -> bool:
        return False

    def log(self, data: Mapping[str, Any]) -> None:
        """PlanOut's log call: an exposure goes to ``log_exposure``, any other event to ``log_event``."""
        delivery = self._delivery()
        if data.get("event") == "exposure":
            delivery.send(lambda: self._exposure_fields(data))
        else:
            delivery.guard(lambda: self._log_other(delivery.sink, data))

    def _exposure_fields(self, data: Mapping[str, Any]) -> ExposureFields:
        overrides = self._assignment.get_overrides()
        return planout_exposure(
            data, unit_id=self.unit_id(), unit_type=self.unit_type or self._unit_input(),
            variant_param=self.variant_param, revision=self.revision,
            forced=self.variant_param in overrides if self.variant_param else bool(overrides),
            context_inputs=self.context_inputs,
        )  # fmt: skip

    def _log_other(self, sink: EventSink, data: Mapping[str, Any]) -> str:
        properties = string_map(data.get("extra_data"))
        properties["experiment"] = self.name
        return sink.log_event(
            unit_id=self.unit_id(),
            name=str(data.get("event")),
            unit_type=self.unit_type or self._unit_input(),
            properties=properties,
        )


class KafkaLoggedExperiment(KafkaLogging, _Experiment):
    """A PlanOut ``Experiment`` logging to an abstream sink; subclass it and write ``assign``."""
