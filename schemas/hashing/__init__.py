"""Deterministic assignment schemes reimplemented exactly, to check logged variants against their hash.

Each SDK's arithmetic is reproduced including its quirks (documented per module) and proven equal to the
real package by differential tests in ``tests/unit/hashing``. Pure functions, no I/O.

Usage::

    from schemas.hashing import assign

    a = assign("growthbook", {"key": "checkout", "variations": ["A", "B"]}, "user-1")
    print(a.variant, a.bucket, a.reason)
"""

from __future__ import annotations

from .assignment import Assignment
from .dispatch import SCHEMES, Assigner, assign, assigner
from .eppo import EPPO, EppoAllocation, EppoFlag, EppoShard, EppoSplit, eppo_assign, eppo_shard
from .eppo_config import eppo_flag
from .growthbook import (
    growthbook_bucket_ranges,
    growthbook_choose_variation,
    growthbook_equal_weights,
    growthbook_fnv1a32,
    growthbook_hash,
    growthbook_hash_string,
    growthbook_in_namespace,
    growthbook_in_range,
    growthbook_is_hashable,
    growthbook_weights_used,
)
from .growthbook_experiment import (
    GROWTHBOOK,
    GrowthBookExperiment,
    GrowthBookFilter,
    growthbook_choose,
    growthbook_experiment,
)
from .planout import (
    Unit,
    Units,
    planout_bernoulli_trial,
    planout_hash,
    planout_random_float,
    planout_random_integer,
    planout_salt,
    planout_sample,
    planout_uniform,
    planout_uniform_choice,
    planout_weighted_choice,
)
from .planout_experiment import (
    PLANOUT,
    PlanOutNamespace,
    PlanOutOp,
    PlanOutParam,
    planout_assign,
    planout_param,
)
from .planout_namespace import planout_namespace_allocation, planout_namespace_segment, planout_segment_unit
from .sha256_weights import SHA256_WEIGHTS, assign_sha256_weights, sha256_weights_bucket, sha256_weights_total
from .split import Split, traffic_split

__all__ = [
    "EPPO",
    "GROWTHBOOK",
    "PLANOUT",
    "SCHEMES",
    "SHA256_WEIGHTS",
    "Assigner",
    "Assignment",
    "EppoAllocation",
    "EppoFlag",
    "EppoShard",
    "EppoSplit",
    "GrowthBookExperiment",
    "GrowthBookFilter",
    "PlanOutNamespace",
    "PlanOutOp",
    "PlanOutParam",
    "Split",
    "Unit",
    "Units",
    "assign",
    "assign_sha256_weights",
    "assigner",
    "eppo_assign",
    "eppo_flag",
    "eppo_shard",
    "growthbook_bucket_ranges",
    "growthbook_choose",
    "growthbook_choose_variation",
    "growthbook_equal_weights",
    "growthbook_experiment",
    "growthbook_fnv1a32",
    "growthbook_hash",
    "growthbook_hash_string",
    "growthbook_in_namespace",
    "growthbook_in_range",
    "growthbook_is_hashable",
    "growthbook_weights_used",
    "planout_assign",
    "planout_bernoulli_trial",
    "planout_hash",
    "planout_namespace_allocation",
    "planout_namespace_segment",
    "planout_param",
    "planout_random_float",
    "planout_random_integer",
    "planout_salt",
    "planout_sample",
    "planout_segment_unit",
    "planout_uniform",
    "planout_uniform_choice",
    "planout_weighted_choice",
    "sha256_weights_bucket",
    "sha256_weights_total",
    "traffic_split",
]
