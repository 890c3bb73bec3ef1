"""The traffic split an SDK's own config gives: each variant's share of the units in the experiment.

A definition's ``variants[].weight`` are what the SRM test checks; for ``planout``, ``growthbook`` and
``eppo`` the SDK assigns by ``scheme_params``, so the weights are derived from these shares (or checked
against them). Shares are exact fractions of what the SDK does, its quirks included:

- planout: ``WeightedChoice`` by its weights, ``UniformChoice`` and ``RandomInteger`` equally per value,
  ``BernoulliTrial`` ``"1"`` with probability ``p``; a namespace takes the same share of every variant.
- growthbook: the bucket ranges the SDK uses (``ranges``, else the weights it accepts: as many as the
  variations, summing to 1 +- 0.01, or equal weights); coverage, namespaces and filters take the same
  share of every variant.
- eppo: the allocation the definition stands for (its key is ``<flag>-<allocation>``, as the SDK logs
  the experiment, or the flag has one allocation), first matching split wins, each salt's shard an
  independent uniform draw.

Usage: ``traffic_split("growthbook", {"key": "k", "variations": ["A", "B"], "weights": [0.9, 0.1]}, "k")``
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from .eppo import EPPO, EppoAllocation, EppoFlag, EppoShard
from .eppo_config import eppo_flag
from .growthbook import Range, growthbook_bucket_ranges, growthbook_weights_used
from .growthbook_experiment import GROWTHBOOK, growthbook_experiment
from .planout_experiment import PLANOUT, planout_param

__all__ = ["Split", "traffic_split"]

_LARGEST_INTEGER_RANGE = 1_000
_LARGEST_GRID = 100_000


@dataclass(frozen=True, slots=True)
class Split:
    """Each variant's share of the units in the experiment (summing to 1), and where it comes from."""

    shares: Mapping[str, Fraction]
    source: str


def traffic_split(scheme: str, params: Mapping[str, object], key: str) -> Split | None:
    """The split ``params`` give under ``scheme`` for the definition ``key``; ``None`` when there is none to read.

    Raises :class:`~abstream.errors.SchemeParamsError` on params the scheme refuses.
    """
    if scheme == PLANOUT:
        return _planout(params)
    if scheme == GROWTHBOOK:
        return _growthbook(params)
    if scheme == EPPO:
        return _eppo(eppo_flag(params), key)
    return None


def _normalised(weights: Mapping[str, Fraction], source: str) -> Split | None:
    total = sum(weights.values(), Fraction(0))
    if total <= 0:
        return None
    return Split({name: weight / total for name, weight in weights.items()}, source)


def _add(shares: dict[str, Fraction], name: str, weight: Fraction) -> None:
    shares[name] = shares.get(name, Fraction(0)) + weight


def _planout(params: Mapping[str, object]) -> Split | None:
    op = planout_param(params).op
    shares: dict[str, Fraction] = {}
    if op.name == "BernoulliTrial":
        p = Fraction(op.p)
        return _normalised({"0": 1 - p, "1": p}, f"scheme_params.p {op.p} (BernoulliTrial)")
    if op.name == "RandomInteger":
        if op.max - op.min >= _LARGEST_INTEGER_RANGE:
            return None
        return _normalised({str(i): Fraction(1) for i in range(op.min, op.max + 1)}, "RandomInteger (equal)")
    weights = op.weights or (1,) * len(op.choices)
    for choice, weight in zip(op.choices, weights, strict=True):
        _add(shares, str(choice), Fraction(weight))
    source = f"scheme_params.weights {list(op.weights)}" if op.weights else "UniformChoice (equal)"
    return _normalised(shares, source)


def _growthbook(params: Mapping[str, object]) -> Split | None:
    exp = growthbook_experiment(params)
    n = len(exp.variations)
    if exp.ranges is not None:
        ranges, source = list(exp.ranges), f"scheme_params.ranges {[list(r) for r in exp.ranges]}"
    else:
        used = growthbook_weights_used(n, exp.weights)
        ranges = growthbook_bucket_ranges(n, 1, used)
        if exp.weights is None:
            source = "equal weights (no scheme_params.weights)"
        elif used == list(exp.weights):
            source = f"scheme_params.weights {list(exp.weights)}"
        else:
            source = (
                f"equal weights (GrowthBook ignores scheme_params.weights {list(exp.weights)}: they must be one "
                "per variation, each in [0, 1], summing to 1 +- 0.01)"
            )
    shares: dict[str, Fraction] = {}
    for index, width in enumerate(_first_match_widths(ranges)):
        if index < n:
            _add(shares, exp.variations[index], width)
    return _normalised(shares, source)


def _first_match_widths(ranges: Sequence[Range]) -> list[Fraction]:
    """How much of [0, 1) each range gets when a bucket goes to the first range containing it."""
    points = sorted({Fraction(0), Fraction(1), *(Fraction(min(max(b, 0), 1)) for r in ranges for b in r)})
    widths = [Fraction(0)] * len(ranges)
    for low, high in itertools.pairwise(points):
        index = next((i for i, (start, end) in enumerate(ranges) if start <= low and high <= end), None)
        if index is not None:
            widths[index] += high - low
    return widths


def _eppo(flag: EppoFlag, key: str) -> Split | None:
    allocation = _allocation(flag, key)
    if allocation is None:
        return None
    salts = sorted({shard.salt for split in allocation.splits for shard in split.shards})
    axes = [_axis(allocation, salt, flag.total_shards) for salt in salts]
    if len(salts) > 8 or _grid_size(axes) > _LARGEST_GRID:
        return None
    shares = dict.fromkeys(flag.variations, Fraction(0))
    for cell in itertools.product(*axes):
        split = next((s for s in allocation.splits if _contains(s.shards, salts, cell)), None)
        if split is not None and split.variation_key in flag.variations:
            measure = Fraction(1)
            for low, high in cell:
                measure *= Fraction(high - low, flag.total_shards)
            _add(shares, split.variation_key, measure)
    return _normalised(shares, f"the splits of allocation {allocation.key!r}")


def _allocation(flag: EppoFlag, key: str) -> EppoAllocation | None:
    named = [a for a in flag.allocations if f"{flag.key}-{a.key}" == key]
    if named:
        return named[0]
    return flag.allocations[0] if len(flag.allocations) == 1 else None


def _axis(allocation: EppoAllocation, salt: str, total: int) -> list[tuple[int, int]]:
    """The elementary shard intervals of one salt: between every range bound any split puts on it."""
    bounds = {0, total}
    for split in allocation.splits:
        for shard in split.shards:
            if shard.salt == salt:
                bounds.update(b for r in shard.ranges for b in r)
    return list(itertools.pairwise(sorted(bounds)))


def _grid_size(axes: Sequence[Sequence[object]]) -> int:
    size = 1
    for axis in axes:
        size *= len(axis)
    return size


def _contains(shards: Sequence[EppoShard], salts: Sequence[str], cell: Sequence[tuple[int, int]]) -> bool:
    """Whether every shard of a split holds the cell (an interval per salt, in ``salts`` order)."""
    for shard in shards:
        low, high = cell[salts.index(shard.salt)]
        if not any(start <= low and high <= end for start, end in shard.ranges):
            return False
    return True
