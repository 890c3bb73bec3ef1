"""Checks that span several fields of a definition, and the sha256-weights params derived from variants.

Each check returns ``(field path, message)`` pairs instead of raising, so a file with five mistakes is
reported in one run.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from abstream.errors import SchemeParamsError
from schemas._definition_weights import weight_problems
from schemas.durations import format_duration
from schemas.hashing import SHA256_WEIGHTS, assigner

if TYPE_CHECKING:
    from schemas.definitions import Definition, VariantSpec

__all__ = ["EXTERNAL", "Problem", "Problems", "consistency_problems", "normalised_params"]

EXTERNAL = "external"
"""The scheme of assignments made by something whose hash abstream cannot recompute."""

Problem = tuple[str, str]
_LARGEST_INTEGER_RANGE = 1_000


class Problems(ValueError):
    """Several problems found by one model validator; pydantic keeps it in the error's context."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))


def normalised_params(
    scheme: str, params: Mapping[str, Any], variants: Sequence[VariantSpec]
) -> tuple[dict[str, Any], list[Problem]]:
    """``params`` with sha256-weights' ``weights`` taken from the variants, so nobody writes them twice."""
    weights = {variant.name: variant.weight for variant in variants}
    out = dict(params)
    if scheme != SHA256_WEIGHTS or len(weights) < len(variants):
        return out, []  # repeated names are reported on their own
    given = out.setdefault("weights", weights)
    if given == weights:
        return out, []
    message = (
        f"{given!r} contradicts the variants' weights {weights!r}; "
        "remove scheme_params.weights: sha256-weights takes its weights from the variants"
    )
    return out, [("scheme_params.weights", message)]


def consistency_problems(definition: Definition, params: Mapping[str, Any]) -> list[Problem]:
    """Every cross-field mistake of ``definition`` (its ``scheme_params`` being ``params``)."""
    names = list(dict.fromkeys(definition.variant_names))
    variants = _variant_problems(definition.variants)
    return [
        *variants,
        *_chosen_variant_problems(definition, names),
        *_window_problems(definition),
        *_dedupe_problems(definition),
        *_metric_window_problems(definition),
        # sha256 params and the SDK splits need well-formed variants
        *([] if variants else _scheme_problems(definition.scheme, params, definition.key, definition.weights)),
    ]


def _variant_problems(variants: Sequence[VariantSpec]) -> list[Problem]:
    counts = Counter(variant.name for variant in variants)
    problems = [
        ("variants", f"{name!r} appears {count} times; variant names must be unique")
        for name, count in counts.items()
        if count > 1
    ]
    if sum(variant.weight for variant in variants) <= 0:
        problems.append(("variants", "the weights sum to 0; give at least one variant a positive weight"))
    return problems


def _chosen_variant_problems(definition: Definition, names: list[str]) -> list[Problem]:
    listed = ", ".join(names)
    problems = []
    if definition.fallback_variant not in names:
        problems.append(("fallback_variant", f"{definition.fallback_variant!r} is not a variant; use one of: {listed}"))
    rollout = definition.rollout_variant
    if definition.state == "rollout" and rollout is None:
        problems.append(("rollout_variant", f"is required in state rollout: the variant everyone gets ({listed})"))
    elif definition.state != "rollout" and rollout is not None:
        problems.append(("rollout_variant", f"applies only in state rollout (state is {definition.state}); remove it"))
    elif rollout is not None and rollout not in names:
        problems.append(("rollout_variant", f"{rollout!r} is not a variant; use one of: {listed}"))
    return problems


def _window_problems(definition: Definition) -> list[Problem]:
    start, end = definition.start, definition.end
    if start is None or end is None or end > start:
        return []
    return [("end", f"{end.isoformat()} is not after start {start.isoformat()}; the end must come later")]


def _dedupe_problems(definition: Definition) -> list[Problem]:
    if definition.dedupe == "window" and definition.dedupe_window_ms is None:
        return [("dedupe_window", "is required when dedupe is window (e.g. dedupe_window: 1d)")]
    if definition.dedupe != "window" and definition.dedupe_window_ms is not None:
        return [("dedupe_window", "applies only with dedupe: window; remove it or set dedupe: window")]
    return []


def _metric_window_problems(definition: Definition) -> list[Problem]:
    """A metric may narrow the attribution window, never widen it: the jobs attribute nothing beyond it."""
    block, window = definition.metrics, definition.attribution_window_ms
    problems = []
    for role in ("primary", "secondary", "guardrails"):
        for i, key in enumerate(getattr(block, role)):
            own = block.definitions[key].window_ms
            if own is not None and own > window:
                message = (
                    f"metric {key!r} has window {format_duration(own)}, longer than the attribution_window "
                    f"{format_duration(window)}: the stream jobs attribute no event beyond the experiment's "
                    "window; shorten the metric's window or lengthen attribution_window"
                )
                problems.append((f"metrics.{role}[{i}]", message))
    return problems


def _scheme_problems(scheme: str, params: Mapping[str, Any], key: str, weights: Mapping[str, int]) -> list[Problem]:
    names = list(weights)
    try:
        json.dumps(params)
    except (TypeError, ValueError) as exc:  # YAML reads an unquoted 2025-01-01 as a date
        return [("scheme_params", f"must hold only JSON values ({exc}); quote dates and times")]
    if scheme == EXTERNAL:
        return []
    try:
        assigner(scheme, params)
    except SchemeParamsError as exc:
        return [(f"scheme_params.{exc.key}" if exc.key else "scheme_params", str(exc))]
    hashed = _scheme_variants(scheme, params)
    if hashed is None or set(hashed) == set(names):
        return weight_problems(scheme, params, key, weights)
    message = (
        f"{', '.join(names)} are not the variants scheme_params can assign ({', '.join(hashed)}); "
        "exposures log the variant names and the hash returns these, so make them the same"
    )
    return [("variants", message)]


def _scheme_variants(scheme: str, params: Mapping[str, Any]) -> list[str] | None:
    """The variant names the scheme's hash can return, where params list them (validated already)."""
    if scheme == "growthbook":
        return [str(v) for v in params["variations"]]
    if scheme == "eppo":
        return [str(key) for key in params["variations"]]
    if scheme != "planout":
        return None
    op = params["op"]
    if op in ("UniformChoice", "WeightedChoice"):
        return [str(choice) for choice in params["choices"]]
    if op == "BernoulliTrial":
        return ["0", "1"]
    low, high = params["min"], params["max"]
    return [str(i) for i in range(low, high + 1)] if high - low < _LARGEST_INTEGER_RANGE else None
