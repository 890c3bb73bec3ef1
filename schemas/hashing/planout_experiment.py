"""One PlanOut parameter of one experiment, optionally inside a ``SimpleNamespace``, as a definition.

``scheme_params`` keys (PlanOut's own argument names where it has them):

- ``param`` (str, required): the parameter's name; it is also the default param salt.
- ``op`` (required): ``UniformChoice`` (``choices``), ``WeightedChoice`` (``choices``, ``weights``),
  ``BernoulliTrial`` (``p``; variants ``"0"``/``"1"``) or ``RandomInteger`` (``min``, ``max``).
  The variant is ``str()`` of the value PlanOut returns.
- ``experiment_salt`` or ``experiment_name``: the experiment's salt; PlanOut defaults it to the name
  with runs of whitespace replaced by ``-``. Not allowed with ``namespace``: there PlanOut always
  uses ``"{namespace}.{experiment}"``, whatever the experiment class set.
- ``salt`` / ``full_salt`` (optional): the op's overrides, as in PlanOut.
- ``namespace`` (optional): ``name``, ``num_segments``, ``experiment`` (the name it was added
  under) and either ``segments`` (the segments it owns) or ``experiments`` (``[[name, count], ...]``
  in ``add_experiment`` order, from which they are computed), plus ``fast_sample`` (bool).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ._params import Params
from .assignment import Assignment
from .planout import (
    Units,
    planout_bernoulli_trial,
    planout_hash,
    planout_random_integer,
    planout_salt,
    planout_uniform,
    planout_uniform_choice,
    planout_weighted_choice,
)
from .planout_namespace import planout_namespace_allocation, planout_namespace_segment

__all__ = ["PLANOUT", "PlanOutNamespace", "PlanOutOp", "PlanOutParam", "planout_assign", "planout_param"]

PLANOUT = "planout"
_OP_ARGS: Mapping[str, tuple[str, ...]] = {
    "UniformChoice": ("choices",),
    "WeightedChoice": ("choices", "weights"),
    "BernoulliTrial": ("p",),
    "RandomInteger": ("min", "max"),
}
_ALL_OP_ARGS = ("choices", "weights", "p", "min", "max")


@dataclass(frozen=True, slots=True)
class PlanOutOp:
    """An operator and its validated arguments (the ones it does not take keep their defaults)."""

    name: str
    choices: tuple[str | int, ...] = ()
    weights: tuple[int | float, ...] = ()
    p: float = 0.0
    min: int = 0
    max: int = 0


@dataclass(frozen=True, slots=True)
class PlanOutNamespace:
    """The namespace an experiment lives in and the segments it owns there."""

    name: str
    num_segments: int
    experiment: str
    segments: frozenset[int]


@dataclass(frozen=True, slots=True)
class PlanOutParam:
    """A parsed definition; ``salt`` is the op's full salt (see :func:`planout_salt`).

    ``experiment_salt`` is the experiment's salt, what PlanOut logs as ``salt`` (and our adapter as
    ``hash_seed``); ``None`` when a ``full_salt`` keeps it out of the hash.
    """

    param: str
    op: PlanOutOp
    salt: str
    namespace: PlanOutNamespace | None = None
    experiment_salt: str | None = None


def planout_param(params: Mapping[str, object]) -> PlanOutParam:
    """Parse and validate ``scheme_params`` for the ``planout`` scheme (keys in the module docstring)."""
    p = Params.of(
        PLANOUT,
        params,
        required=("param", "op"),
        optional=(*_ALL_OP_ARGS, "experiment_salt", "experiment_name", "salt", "full_salt", "namespace"),
    )
    param = p.str_("param")
    namespace = _namespace(p) if p.has("namespace") else None
    experiment_salt, full_salt = _experiment_salt(p, namespace), p.opt_str("full_salt")
    salt = planout_salt(experiment_salt, param, salt=p.opt_str("salt"), full_salt=full_salt)
    return PlanOutParam(param, _op(p), salt, namespace, None if full_salt is not None else experiment_salt)


def _experiment_salt(p: Params, namespace: PlanOutNamespace | None) -> str:
    given = [k for k in ("experiment_salt", "experiment_name") if p.has(k)]
    if namespace is not None:
        if given:
            raise p.error(given[0], "is ignored by PlanOut inside a namespace; remove it")
        return f"{namespace.name}.{namespace.experiment}"
    if len(given) != 1:
        raise p.error("experiment_salt", "or experiment_name is required (exactly one of them)")
    if given[0] == "experiment_salt":
        return p.str_("experiment_salt")
    return re.sub(r"\s+", "-", p.str_("experiment_name"))


def _op(p: Params) -> PlanOutOp:
    op = p.str_("op")
    if op not in _OP_ARGS:
        raise p.error("op", f"must be one of {', '.join(_OP_ARGS)}, got {op!r}")
    stray = [k for k in _ALL_OP_ARGS if p.has(k) and k not in _OP_ARGS[op]]
    if stray:
        raise p.error(stray[0], f"is not an argument of {op}")
    missing = [k for k in _OP_ARGS[op] if not p.has(k)]
    if missing:
        raise p.error(missing[0], f"is required by {op}")
    if op == "BernoulliTrial":
        return PlanOutOp(op, p=_probability(p))
    if op == "RandomInteger":
        low, high = p.int_("min"), p.int_("max")
        if high < low:
            raise p.error("max", f"{high} is below min {low}")
        return PlanOutOp(op, min=low, max=high)
    choices = _choices(p)
    return PlanOutOp(op, choices, _weights(p, len(choices)) if op == "WeightedChoice" else ())


def _probability(p: Params) -> float:
    value = p.number("p")
    if not 0 <= value <= 1:
        raise p.error("p", f"must be between 0 and 1, got {value}")
    return value


def _choices(p: Params) -> tuple[str | int, ...]:
    given = p.list_("choices")
    choices = [c for c in given if isinstance(c, str | int) and not isinstance(c, bool)]
    if not choices or len(choices) != len(given):
        raise p.error("choices", f"must be a non-empty list of strings or integers, got {given!r}")
    return tuple(choices)


def _weights(p: Params, count: int) -> tuple[int | float, ...]:
    given = p.list_("weights")
    weights = [w for w in given if isinstance(w, int | float) and not isinstance(w, bool) and w >= 0]
    if len(weights) != len(given) or len(weights) != count or sum(weights) <= 0:
        raise p.error("weights", f"must be {count} non-negative numbers with a positive sum, got {given!r}")
    return tuple(weights)


def _namespace(p: Params) -> PlanOutNamespace:
    ns = p.sub(
        "namespace",
        required=("name", "num_segments", "experiment"),
        optional=("segments", "experiments", "fast_sample"),
    )
    name, num_segments, experiment = ns.str_("name"), ns.int_("num_segments"), ns.str_("experiment")
    if num_segments < 1:
        raise ns.error("num_segments", f"must be at least 1, got {num_segments}")
    if ns.has("segments") == ns.has("experiments"):
        raise ns.error("segments", "or experiments is required (exactly one of them)")
    if ns.has("segments"):
        if ns.has("fast_sample"):
            raise ns.error("fast_sample", "only applies when the segments are computed from experiments")
        return PlanOutNamespace(name, num_segments, experiment, _segments(ns, num_segments))
    plan = [_plan_entry(ns, entry) for entry in ns.list_("experiments")]
    if experiment not in {entry_name for entry_name, _ in plan}:
        raise ns.error("experiments", f"does not list the experiment {experiment!r}")
    owned = planout_namespace_allocation(name, num_segments, plan, fast_sample=ns.bool_("fast_sample", False))
    return PlanOutNamespace(name, num_segments, experiment, owned[experiment])


def _segments(ns: Params, num_segments: int) -> frozenset[int]:
    given = ns.list_("segments")
    segments = [s for s in given if isinstance(s, int) and not isinstance(s, bool) and 0 <= s < num_segments]
    if len(segments) != len(given):
        raise ns.error("segments", f"must be integers in [0, {num_segments}), got {given!r}")
    return frozenset(segments)


def _plan_entry(ns: Params, entry: object) -> tuple[str, int]:
    if isinstance(entry, list | tuple) and len(entry) == 2:
        name, count = entry
        if isinstance(name, str) and isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            return name, count
    raise ns.error("experiments", f"entries must be [name, segment count >= 0], got {entry!r}")


def planout_assign(units: Units, definition: PlanOutParam) -> Assignment:
    """Assign ``units`` the value PlanOut gives ``definition.param`` (``None`` outside its namespace slice).

    Usage: ``planout_assign("42", planout_param({"param": "color", "op": "UniformChoice", ...}))``
    """
    op = definition.op
    inputs: dict[str, object] = {"param": definition.param, "op": op.name, "salt": definition.salt}
    if definition.experiment_salt is not None:
        inputs["experiment_salt"] = definition.experiment_salt
    ns = definition.namespace
    if ns is not None:
        segment = planout_namespace_segment(ns.name, ns.num_segments, units)
        inputs.update(namespace=ns.name, segment=segment, experiment=ns.experiment)
        if segment not in ns.segments:
            reason = f"segment {segment} of namespace {ns.name!r} is not allocated to {ns.experiment!r}"
            return Assignment(PLANOUT, None, segment, reason, inputs=inputs)
    value, bucket = _evaluate(op, units, definition.salt)
    reason = f"{op.name} at hash position {bucket} under salt {definition.salt!r}"
    return Assignment(PLANOUT, None if value is None else str(value), bucket, reason, value, inputs)


def _evaluate(op: PlanOutOp, units: Units, salt: str) -> tuple[object, int | float]:
    """The op's value and the position it was read from (the 60-bit hash, or the uniform draw)."""
    if op.name == "WeightedChoice":
        return planout_weighted_choice(op.choices, op.weights, units, salt)
    if op.name == "BernoulliTrial":
        return planout_bernoulli_trial(op.p, units, salt), planout_uniform(units, salt)
    position = planout_hash(units, salt)
    if op.name == "UniformChoice":
        return planout_uniform_choice(op.choices, units, salt), position
    return planout_random_integer(op.min, op.max, units, salt), position
