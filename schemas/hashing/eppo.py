"""Eppo's flag evaluation (``eppo-server-sdk`` 4.x, a Rust ``eppo_core``), for the subset we support.

A shard is ``md5(f"{salt}-{subject_key}")``: the first 4 bytes as a big-endian unsigned int, modulo
the flag's ``totalShards`` (10,000 in practice). Allocations are tried in order; one applies when
``startAt <= at <= endAt`` (both optional; the end is inclusive), its rules allow the subject, and
one of its splits matches; the first split whose every shard puts the subject in one of its
``[start, end)`` ranges wins (a split without shards always matches). No allocation: the SDK
returns the caller's default, here ``variant=None``. A disabled flag always gives ``None``.

Targeting rules are not evaluated: an allocation with rules applies only if the caller names it in
``targeted`` (it knows the subject's attributes; we do not). Re-verifying a logged exposure names the
allocation the SDK reported with it (``schemas.verification``): its rules are taken to have matched and
no other rule-gated allocation's, and its time window and shards are still checked. Obfuscated (client)
configurations and bandits are not supported.

``scheme_params`` for ``eppo`` is the flag object of a Universal Flag Configuration (UFC) as the
SDK downloads it: ``key``, ``enabled``, ``variationType``, ``variations``, ``allocations``,
``totalShards`` (and ``entityId``, ignored).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from abstream.errors import SchemeParamsError

from .assignment import Assignment

__all__ = [
    "EPPO",
    "EppoAllocation",
    "EppoFlag",
    "EppoShard",
    "EppoSplit",
    "eppo_assign",
    "eppo_shard",
]

EPPO = "eppo"


@dataclass(frozen=True, slots=True)
class EppoShard:
    """One salted hash of the subject and the ``[start, end)`` shard ranges it must fall in."""

    salt: str
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class EppoSplit:
    """A variation and the shards a subject must match (all of them) to get it."""

    variation_key: str
    shards: tuple[EppoShard, ...] = ()


@dataclass(frozen=True, slots=True)
class EppoAllocation:
    """An ordered allocation: an optional time window, whether it has targeting rules, its splits."""

    key: str
    splits: tuple[EppoSplit, ...]
    start_at: datetime | None = None
    end_at: datetime | None = None
    has_rules: bool = False
    do_log: bool = True


@dataclass(frozen=True, slots=True)
class EppoFlag:
    """The parts of a UFC flag that decide a subject's variation; ``variations`` maps key to value."""

    key: str
    allocations: tuple[EppoAllocation, ...]
    variations: dict[str, object] = field(default_factory=dict)
    total_shards: int = 10_000
    enabled: bool = True


def eppo_shard(salt: str, subject_key: str, total_shards: int) -> int:
    """The subject's shard under ``salt``: md5 of ``"{salt}-{subject_key}"`` (UTF-8), 4 bytes big-endian."""
    digest = hashlib.md5(f"{salt}-{subject_key}".encode()).digest()  # noqa: S324 - Eppo's sharder, not security
    return int.from_bytes(digest[:4], "big") % total_shards


def _in_window(flag: EppoFlag, index: int, allocation: EppoAllocation, at: datetime | None) -> bool:
    if allocation.start_at is None and allocation.end_at is None:
        return True
    if at is None or at.tzinfo is None:
        raise SchemeParamsError(
            f"eppo: flag {flag.key!r} allocation {allocation.key!r} has a startAt/endAt window: "
            "pass at= (the exposure's timezone-aware timestamp)",
            scheme=EPPO,
            key=f"allocations.{index}",
        )
    after_start = allocation.start_at is None or at >= allocation.start_at
    return after_start and (allocation.end_at is None or at <= allocation.end_at)


def _split_matches(split: EppoSplit, subject_key: str, total: int, seen: dict[str, int]) -> bool:
    for shard in split.shards:
        if shard.salt not in seen:
            seen[shard.salt] = eppo_shard(shard.salt, subject_key, total)
        if not any(start <= seen[shard.salt] < end for start, end in shard.ranges):
            return False
    return True


def eppo_assign(
    flag: EppoFlag, subject_key: str, *, at: datetime | None = None, targeted: Collection[str] = ()
) -> Assignment:
    """The variation key Eppo assigns ``subject_key`` at time ``at`` (``None``: the SDK's default).

    ``at`` is needed only when an allocation has a time window; ``targeted`` names the allocations
    with rules the subject satisfies.
    Usage: ``eppo_assign(eppo_flag(ufc["flags"]["checkout"]), "user-1", at=exposure_time).variant``
    """
    if not flag.enabled:
        return Assignment(EPPO, None, None, f"flag {flag.key!r} is disabled")
    seen: dict[str, int] = {}
    skipped: list[str] = []
    for index, allocation in enumerate(flag.allocations):
        if not _in_window(flag, index, allocation, at):
            skipped.append(f"{allocation.key}: outside its time window")
        elif allocation.has_rules and allocation.key not in targeted:
            skipped.append(f"{allocation.key}: has targeting rules (not evaluated)")
        else:
            for split in allocation.splits:
                if _split_matches(split, subject_key, flag.total_shards, seen):
                    return _assigned(flag, allocation, split, seen, skipped)
            skipped.append(f"{allocation.key}: no split matched the shards")
    return Assignment(EPPO, None, None, "no allocation matched", inputs={"shards": seen, "skipped": skipped})


def _assigned(
    flag: EppoFlag, allocation: EppoAllocation, split: EppoSplit, seen: dict[str, int], skipped: list[str]
) -> Assignment:
    bucket = seen[split.shards[-1].salt] if split.shards else None
    inputs = {
        "experiment": f"{flag.key}-{allocation.key}",
        "allocation": allocation.key,
        "shards": dict(seen),
        "skipped": skipped,
        "do_log": allocation.do_log,
    }
    if split.variation_key not in flag.variations:
        reason = f"allocation {allocation.key!r} matched a split whose variation {split.variation_key!r} is "
        reason += "missing or does not fit variationType: the SDK serves the caller's default"
        return Assignment(EPPO, None, bucket, reason, inputs=inputs)
    reason = f"allocation {allocation.key!r}, first split whose shards all match"
    value = flag.variations[split.variation_key]
    return Assignment(EPPO, split.variation_key, bucket, reason, value, inputs)
