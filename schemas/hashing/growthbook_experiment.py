"""A GrowthBook experiment as a definition, and the hash-based part of the SDK's ``run``.

``scheme_params`` keys are GrowthBook's own experiment fields, so a definition can be pasted from a
feature payload: ``key`` (required), ``variations`` (required: the variant names, at least two),
``weights``, ``coverage``, ``seed`` (defaults to ``key``; an empty seed does too), ``hashVersion``
(1 or 2, default 1), ``namespace`` (``[id, start, end]``), ``ranges`` (``[[start, end], ...]``,
which override coverage and weights), ``filters`` (``[{"seed", "ranges", "hashVersion" (default 2),
"attribute" (default "id")}]``; when present the namespace is ignored, as in the SDK) and
``hashAttribute`` (default ``"id"``: the attribute the unit id is the value of).

What decides a variant here is only the hash. The SDK's other ways in or out are legitimate
exceptions this module does not model: forced variations, URL query-string overrides, ``force``,
QA mode, inactive/draft/stopped experiments, conditions, prerequisites, groups, URL targeting,
and sticky bucketing (a sticky user keeps the variant of an older bucketing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ._params import Params
from .assignment import Assignment
from .growthbook import (
    Range,
    growthbook_bucket_ranges,
    growthbook_choose_variation,
    growthbook_hash,
    growthbook_hash_string,
    growthbook_in_namespace,
    growthbook_in_range,
    growthbook_is_hashable,
)

__all__ = [
    "GROWTHBOOK",
    "GrowthBookExperiment",
    "GrowthBookFilter",
    "growthbook_choose",
    "growthbook_experiment",
]

GROWTHBOOK = "growthbook"
_HASH_VERSIONS = (1, 2)


@dataclass(frozen=True, slots=True)
class GrowthBookFilter:
    """A hash filter: the unit must fall in one of ``ranges`` of its own seeded hash."""

    seed: str
    ranges: tuple[Range, ...]
    hash_version: int = 2
    attribute: str = "id"


@dataclass(frozen=True, slots=True)
class GrowthBookExperiment:
    """The fields of a GrowthBook experiment that bucketing reads."""

    key: str
    variations: tuple[str, ...]
    weights: tuple[float, ...] | None = None
    coverage: float | None = None
    seed: str | None = None
    hash_version: int = 1
    namespace: tuple[str, float, float] | None = None
    ranges: tuple[Range, ...] | None = None
    filters: tuple[GrowthBookFilter, ...] = ()
    hash_attribute: str = "id"


def growthbook_experiment(params: Mapping[str, object]) -> GrowthBookExperiment:
    """Parse and validate ``scheme_params`` for the ``growthbook`` scheme (keys in the module docstring)."""
    p = Params.of(
        GROWTHBOOK,
        params,
        required=("key", "variations"),
        optional=(
            "weights",
            "coverage",
            "seed",
            "hashVersion",
            "namespace",
            "ranges",
            "filters",
            "hashAttribute",
        ),
    )
    variations = _strings(p, "variations")
    if len(variations) < 2:
        raise p.error("variations", f"needs at least two variants, got {list(variations)!r}")
    weights = p.opt_list("weights")
    return GrowthBookExperiment(
        key=p.str_("key"),
        variations=variations,
        weights=None if weights is None else _numbers(p, "weights", weights),
        coverage=p.opt_number("coverage"),
        seed=p.opt_str("seed"),
        hash_version=_hash_version(p, default=1),
        namespace=_namespace(p) if p.has("namespace") else None,
        ranges=_ranges(p, "ranges") if p.has("ranges") else None,
        filters=tuple(_filter(p, i, f) for i, f in enumerate(p.opt_list("filters") or ())),
        hash_attribute=p.opt_str("hashAttribute") or "id",
    )


def _strings(p: Params, key: str) -> tuple[str, ...]:
    given = p.list_(key)
    if not all(isinstance(v, str) for v in given):
        raise p.error(key, f"must be a list of strings, got {given!r}")
    return tuple(str(v) for v in given)


def _numbers(p: Params, key: str, given: Sequence[object]) -> tuple[float, ...]:
    numbers = [v for v in given if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != len(given):
        raise p.error(key, f"must be a list of numbers, got {given!r}")
    return tuple(numbers)


def _hash_version(p: Params, default: int) -> int:
    version = p.int_("hashVersion") if p.has("hashVersion") else default
    if version not in _HASH_VERSIONS:
        raise p.error("hashVersion", f"must be 1 or 2, got {version} (the SDK would skip the experiment)")
    return version


def _namespace(p: Params) -> tuple[str, float, float]:
    given = p.list_("namespace")
    if len(given) == 3 and isinstance(given[0], str):
        bounds = _numbers(p, "namespace", given[1:])
        return given[0], bounds[0], bounds[1]
    raise p.error("namespace", f"must be [id, start, end], got {given!r}")


def _ranges(p: Params, key: str) -> tuple[Range, ...]:
    ranges: list[Range] = []
    for entry in p.list_(key):
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise p.error(key, f"entries must be [start, end], got {entry!r}")
        start, end = _numbers(p, key, entry)
        ranges.append((start, end))
    return tuple(ranges)


def _filter(p: Params, index: int, given: object) -> GrowthBookFilter:
    f = Params.of(
        GROWTHBOOK,
        given,
        required=("ranges",),
        optional=("seed", "hashVersion", "attribute"),
        where=f"filters.{index}.",
    )
    return GrowthBookFilter(
        seed=f.opt_str("seed") or "",
        ranges=_ranges(f, "ranges"),
        hash_version=_hash_version(f, default=2),
        attribute=f.opt_str("attribute") or "id",
    )


def _attribute_value(unit: object, exp: GrowthBookExperiment, attributes: Mapping[str, object], name: str) -> str:
    """The hash string of attribute ``name`` ("" when missing or unhashable, as in the SDK)."""
    value = unit if name == exp.hash_attribute else attributes.get(name)
    if not growthbook_is_hashable(value):
        return ""
    return growthbook_hash_string(value)


def _filtered_out(unit: object, exp: GrowthBookExperiment, attributes: Mapping[str, object]) -> bool:
    for flt in exp.filters:
        value = _attribute_value(unit, exp, attributes, flt.attribute)
        n = growthbook_hash(flt.seed, value, flt.hash_version) if value else None
        if n is None or not any(growthbook_in_range(n, r) for r in flt.ranges):
            return True
    return False


def _out(reason: str, bucket: float | None, inputs: dict[str, object]) -> Assignment:
    return Assignment(GROWTHBOOK, None, bucket, reason, -1, inputs)


def growthbook_choose(
    unit: str | int | float, exp: GrowthBookExperiment, *, attributes: Mapping[str, object] | None = None
) -> Assignment:
    """The variant GrowthBook's ``run`` buckets ``unit`` (the ``hashAttribute`` value) into, by hash only.

    ``attributes`` is only read by filters on another attribute than ``hashAttribute``.
    Usage: ``growthbook_choose("user-1", GrowthBookExperiment("checkout", ("A", "B"))).variant``
    """
    value = _attribute_value(unit, exp, {}, exp.hash_attribute)
    inputs: dict[str, object] = {
        "hash_value": value,
        "seed": exp.seed or exp.key,
        "hash_version": exp.hash_version,
    }
    if len(exp.variations) < 2:
        return _out("fewer than two variations", None, inputs)
    if not value:
        return _out(f"{exp.hash_attribute} {unit!r} is not hashable (empty, zero, not a string/number)", None, inputs)
    if exp.filters:
        if _filtered_out(unit, exp, attributes or {}):
            return _out("excluded by the experiment's hash filters", None, inputs)
    elif exp.namespace is not None and not growthbook_in_namespace(value, exp.namespace):
        return _out(f"outside namespace {exp.namespace!r}", None, inputs)
    n = growthbook_hash(exp.seed or exp.key, value, exp.hash_version or 1)
    if n is None:
        return _out(f"unknown hashVersion {exp.hash_version}", None, inputs)
    ranges = exp.ranges or growthbook_bucket_ranges(
        len(exp.variations), 1 if exp.coverage is None else exp.coverage, exp.weights
    )
    inputs["ranges"] = ranges
    index = growthbook_choose_variation(n, ranges)
    if not 0 <= index < len(exp.variations):
        return _out(f"bucket {n} is in no variation's range (coverage)", n, inputs)
    variant = exp.variations[index]
    return Assignment(GROWTHBOOK, variant, n, f"bucket {n} is in range {ranges[index]} of {variant!r}", index, inputs)
