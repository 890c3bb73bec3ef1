"""The result every scheme returns: the variant plus enough of the arithmetic to explain it.

A stream job that flags a mismatching exposure, or a CLI asked "why did user 42 get B?", needs more
than the variant name: it needs the hashed string, the bucket it landed in and the ranges it was
compared with. Schemes put those in ``inputs`` under stable, scheme-specific keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Assignment"]


@dataclass(frozen=True, slots=True)
class Assignment:
    """A deterministic assignment and how it was reached.

    ``variant`` is the name an exposure should log, or ``None`` when the unit is not in the experiment
    (outside the coverage, the namespace, every allocation...). ``value`` is what the SDK itself would
    return (a PlanOut ``RandomInteger`` gives an ``int``, GrowthBook the variation index), ``bucket``
    the hash position the decision was taken on, and ``reason`` one human sentence.

    Usage: ``print(f"{a.variant} because {a.reason} (bucket {a.bucket}, {dict(a.inputs)})")``
    """

    scheme: str
    variant: str | None
    bucket: int | float | None
    reason: str
    value: object = None
    inputs: Mapping[str, object] = field(default_factory=dict)

    @property
    def in_experiment(self) -> bool:
        """Whether the unit was assigned a variant at all."""
        return self.variant is not None
