"""One entry point over every scheme, driven by an experiment definition's ``scheme`` and ``scheme_params``.

Schemes and their ``scheme_params`` keys:

- ``sha256-weights``: ``salt`` (the experiment name in the tutorial), ``weights`` (variant -> int).
- ``planout``: ``param``, ``op`` and its arguments, ``experiment_salt`` | ``experiment_name``,
  ``salt``, ``full_salt``, ``namespace`` (see :mod:`schemas.hashing.planout_experiment`).
- ``growthbook``: GrowthBook's experiment fields ``key``, ``variations``, ``weights``, ``coverage``,
  ``seed``, ``hashVersion``, ``namespace``, ``ranges``, ``filters``, ``hashAttribute``
  (see :mod:`schemas.hashing.growthbook_experiment`).
- ``eppo``: the flag object of Eppo's UFC configuration (see :mod:`schemas.hashing.eppo`).

:func:`assigner` parses and validates once and returns a callable for the hot path;
:func:`assign` is the one-shot form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from abstream.errors import SchemeParamsError

from ._params import Params
from .assignment import Assignment
from .eppo import EPPO, eppo_assign
from .eppo_config import eppo_flag
from .growthbook_experiment import GROWTHBOOK, growthbook_choose, growthbook_experiment
from .planout_experiment import PLANOUT, planout_assign, planout_param
from .sha256_weights import SHA256_WEIGHTS, assign_sha256_weights, sha256_weights_total

__all__ = ["SCHEMES", "Assigner", "assign", "assigner"]


class Assigner(Protocol):
    """Assigns one unit under a parsed definition; ``at`` (aware) is the exposure time, for Eppo windows.

    ``reported`` is what the SDK logged with the exposure (its ``params``): Eppo's targeting rules need the
    subject's attributes, so the allocation it reports is taken as the one whose rules matched.
    """

    def __call__(
        self, unit_id: str, at: datetime | None = None, reported: Mapping[str, str] | None = None
    ) -> Assignment: ...


def _sha256_weights(params: Mapping[str, object]) -> Assigner:
    p = Params.of(SHA256_WEIGHTS, params, required=("salt", "weights"))
    salt, weights = p.str_("salt"), p.data["weights"]
    if not isinstance(weights, Mapping):
        raise p.error("weights", f"must be a mapping of variant name to integer weight, got {weights!r}")
    frozen = dict(weights)
    sha256_weights_total(frozen)  # fail on the definition, not on its first exposure

    def run(unit_id: str, at: datetime | None = None, reported: Mapping[str, str] | None = None) -> Assignment:
        return assign_sha256_weights(unit_id, salt, frozen)

    return run


def _planout(params: Mapping[str, object]) -> Assigner:
    definition = planout_param(params)

    def run(unit_id: str, at: datetime | None = None, reported: Mapping[str, str] | None = None) -> Assignment:
        return planout_assign(unit_id, definition)

    return run


def _growthbook(params: Mapping[str, object]) -> Assigner:
    experiment = growthbook_experiment(params)

    def run(unit_id: str, at: datetime | None = None, reported: Mapping[str, str] | None = None) -> Assignment:
        return growthbook_choose(unit_id, experiment)

    return run


def _eppo(params: Mapping[str, object]) -> Assigner:
    flag = eppo_flag(params)

    def run(unit_id: str, at: datetime | None = None, reported: Mapping[str, str] | None = None) -> Assignment:
        allocation = reported.get("allocation") if reported else None
        return eppo_assign(flag, unit_id, at=at, targeted=(allocation,) if allocation else ())

    return run


SCHEMES: Mapping[str, Callable[[Mapping[str, object]], Assigner]] = {
    SHA256_WEIGHTS: _sha256_weights,
    PLANOUT: _planout,
    GROWTHBOOK: _growthbook,
    EPPO: _eppo,
}


def assigner(scheme: str, params: Mapping[str, object]) -> Assigner:
    """Validate ``params`` for ``scheme`` once and return ``(unit_id, at=None) -> Assignment``.

    Raises :class:`~abstream.errors.SchemeParamsError` (a ``ValueError``) naming the bad key.
    Usage: ``check = assigner("growthbook", definition.scheme_params); check(exposure.unit_id).variant``
    """
    build = SCHEMES.get(scheme)
    if build is None:
        raise SchemeParamsError(f"unknown scheme {scheme!r} (known: {', '.join(SCHEMES)})", scheme=scheme)
    return build(params)


def assign(scheme: str, params: Mapping[str, object], unit_id: str, *, at: datetime | None = None) -> Assignment:
    """Assign ``unit_id`` under ``scheme`` with ``params`` (keys in the module docstring), in one call."""
    return assigner(scheme, params)(unit_id, at)
