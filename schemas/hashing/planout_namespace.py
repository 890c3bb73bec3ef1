"""PlanOut 0.6 ``SimpleNamespace``: which segment a unit falls in, and which segments an experiment owns.

A namespace splits units into ``num_segments`` segments with ``RandomInteger(0, num_segments - 1)``
under experiment salt = the namespace name and param ``segment``. Experiments are added in order;
each takes ``Sample(choices=available segments, draws=n, unit=experiment name)`` (param
``sampled_segments``), so an experiment's segments depend on every experiment added before it.
Quirks kept:

- the available segments are a Python ``set`` of small ints, which iterates in ascending order;
- a primary unit made of several inputs is hashed as the ``str()`` of their tuple, ``"('u1', 7)"``;
- ``add_experiment`` asking for more segments than remain, or reusing a name, only *prints* an
  error: that experiment gets no segments and later experiments sample from the same pool;
- ``use_fast_sample`` switches to ``FastSample``, which draws different segments.

Removing experiments is not modelled (PlanOut 0.6's ``remove_experiment`` uses ``dict.iteritems``
and fails on Python 3 anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from abstream.errors import SchemeParamsError

from .planout import Units, planout_random_integer, planout_salt, planout_sample

__all__ = ["planout_namespace_allocation", "planout_namespace_segment", "planout_segment_unit"]


def planout_segment_unit(units: Units) -> Units:
    """What ``get_segment`` hashes: the unit itself, or the ``str()`` of a tuple of several units."""
    if isinstance(units, str | int):
        return units
    if len(units) == 1:
        return units[0]
    return str(tuple(units))


def planout_namespace_segment(namespace: str, num_segments: int, units: Units) -> int:
    """The segment in ``[0, num_segments)`` that ``SimpleNamespace.get_segment`` gives ``units``."""
    if num_segments < 1:
        raise SchemeParamsError(
            f"planout: namespace.num_segments must be at least 1, got {num_segments}",
            scheme="planout",
            key="namespace.num_segments",
        )
    salt = planout_salt(namespace, "segment")
    return planout_random_integer(0, num_segments - 1, planout_segment_unit(units), salt)


def planout_namespace_allocation(
    namespace: str, num_segments: int, experiments: Sequence[tuple[str, int]], *, fast_sample: bool = False
) -> dict[str, frozenset[int]]:
    """The segments each experiment owns after ``add_experiment(name, ..., segments)`` calls in order.

    Experiments PlanOut would refuse (too few segments left, duplicate name) map to no segments.
    Cached: a 10,000-segment namespace costs tens of thousands of SHA-1s to allocate.
    """
    plan = tuple((name, count) for name, count in experiments)
    return dict(_allocation(namespace, num_segments, plan, fast_sample))


@lru_cache(maxsize=256)
def _allocation(
    namespace: str, num_segments: int, experiments: tuple[tuple[str, int], ...], fast_sample: bool
) -> tuple[tuple[str, frozenset[int]], ...]:
    available = set(range(num_segments))
    owned: dict[str, frozenset[int]] = {}
    salt = planout_salt(namespace, "sampled_segments")
    added: set[str] = set()
    for name, count in experiments:
        if name in added or count > len(available):
            owned.setdefault(name, frozenset())
            continue
        sampled = planout_sample(sorted(available), name, salt, draws=count, fast=fast_sample)
        added.add(name)
        owned[name] = frozenset(sampled)
        available.difference_update(sampled)
    return tuple(owned.items())
