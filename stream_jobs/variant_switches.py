"""Variant switches: a unit logged in more than one variant of one experiment is flagged.

The flag (an AssignmentFlag with reason ``multiple_variants``) lists every variant seen, in the order
first seen, with their times in ``detail``. It is emitted each time a new variant appears, so the last
flag for (experiment, unit) carries the full set; analysts exclude those units or count them in their
first variant (the sink applies the policy).
"""

from __future__ import annotations

from typing import Any

from stream_jobs.first_exposures import ExperimentEntry

__all__ = ["switch_flag"]


def switch_flag(entry: ExperimentEntry, exposure: dict[str, Any], flagged_ts: int) -> dict[str, Any] | None:
    """The multiple_variants flag if ``exposure`` showed ``entry`` a new variant (beyond the first)."""
    seen = entry["seen"]
    if len(seen) < 2 or seen.get(exposure["variant"], [None, None])[1] != exposure["event_id"]:
        return None
    ordered = sorted(seen.items(), key=lambda item: tuple(item[1]))
    return {
        "event_id": exposure["event_id"],
        "experiment": exposure["experiment"],
        "revision": exposure["revision"],
        "unit_type": exposure["unit_type"],
        "unit_id": exposure["unit_id"],
        "logged_variant": exposure["variant"],
        "expected_variant": ordered[0][0],
        "reason": "multiple_variants",
        "detail": "variants seen: " + ", ".join(f"{name} (first at {ts})" for name, (ts, _) in ordered),
        "variants_seen": [name for name, _ in ordered],
        "exposure_ts": exposure["client_ts"],
        "flagged_ts": flagged_ts,
    }
