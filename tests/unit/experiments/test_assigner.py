"""The Assigner: exactly the hash the verifier recomputes, the tutorial's states, and what it logs."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from abstream.cli.experiments import default_definitions_dir
from abstream.errors import ConfigError, UnknownExperimentError
from producers.assigner import Assigner
from schemas.hashing import assign
from tests.unit.experiments.base import definition

NOW = datetime(2025, 6, 1, tzinfo=UTC)
UNITS = [f"user-{i}" for i in range(5_000)]
SCHEMES: list[dict[str, Any]] = [
    {},
    {"scheme": "growthbook", "scheme_params": {"key": "checkout", "variations": ["A", "B"], "hashVersion": 2}},
    {
        "scheme": "planout",
        "scheme_params": {
            "param": "variant",
            "op": "WeightedChoice",
            "choices": ["A", "B"],
            "weights": [1, 3],
            "experiment_name": "checkout",
        },
        "variants": [{"name": "A"}, {"name": "B"}],  # 1:3, from the weights PlanOut splits by
    },
]


class FakeLogger:
    """Records what would have been logged (the real logger is exercised by the integration tests)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def log_exposure(self, **fields: Any) -> str:
        self.calls.append(fields)
        return f"event-{len(self.calls)}"


@pytest.mark.parametrize("changes", SCHEMES, ids=["sha256-weights", "growthbook", "planout"])
def test_assignments_equal_the_hash_schemes_and_repeat(changes: dict[str, Any]) -> None:
    chosen = definition(**changes)
    assigner = Assigner([chosen])

    for unit in UNITS:
        result = assigner.assign("checkout", unit, at=NOW)
        expected = assign(chosen.scheme, chosen.scheme_params, unit)
        assert (result.variant, result.bucket, result.exposed) == (expected.variant, expected.bucket, True)
        assert assigner.assign("checkout", unit, at=NOW) == result


def test_the_split_follows_the_weights_within_five_sigma() -> None:
    weights = {"A": 70, "B": 20, "C": 10}
    assigner = Assigner([definition(variants=[{"name": n, "weight": w} for n, w in weights.items()])])
    n = 30_000

    counts = Counter(assigner.assign("checkout", f"unit-{i}", at=NOW).variant for i in range(n))

    for name, weight in weights.items():
        p = weight / sum(weights.values())
        assert abs(counts[name] - n * p) < 5 * math.sqrt(n * p * (1 - p)), (name, counts)


def test_an_active_exposure_is_logged_with_its_hash_inputs() -> None:
    logger = FakeLogger()
    assigner = Assigner([definition(revision=4)], logger=logger)  # type: ignore[arg-type]

    result = assigner.assign("checkout", "user-7", at=NOW)

    assert result.event_id == "event-1" and result.revision == 4
    assert logger.calls == [
        {
            "experiment": "checkout", "variant": result.variant, "unit_id": "user-7", "revision": 4,
            "unit_type": "user_id", "scheme": "sha256-weights", "client_ts": NOW, "hash_seed": "checkout",
            "bucket_index": result.bucket,
        }
    ]  # fmt: skip


def test_growthbook_exposures_carry_seed_version_and_position() -> None:
    logger = FakeLogger()
    assigner = Assigner([definition(**SCHEMES[1])], logger=logger)  # type: ignore[arg-type]

    result = assigner.assign("checkout", "user-7", at=NOW)

    (call,) = logger.calls
    assert (call["hash_seed"], call["hash_version"], call["bucket_position"]) == ("checkout", 2, result.bucket)


def test_log_false_or_no_logger_logs_nothing() -> None:
    logger = FakeLogger()

    quiet = Assigner([definition()], logger=logger).assign("checkout", "u", at=NOW, log=False)  # type: ignore[arg-type]
    unlogged = Assigner([definition()]).assign("checkout", "u", at=NOW)

    assert logger.calls == [] and quiet.event_id is None and unlogged.event_id is None
    assert quiet.exposed and quiet.variant == unlogged.variant


@pytest.mark.parametrize(
    ("changes", "variant", "reason"),
    [
        ({"state": "inactive", "fallback_variant": "B"}, "B", "inactive: everyone gets the fallback variant"),
        ({"state": "rollout", "rollout_variant": "B"}, "B", "rollout: everyone gets 'B'"),
        ({"start": "2025-07-01T00:00:00Z", "fallback_variant": "B"}, "B", "outside the active window"),
        ({"end": "2025-05-01T00:00:00Z", "fallback_variant": "B"}, "B", "outside the active window"),
    ],
)
def test_only_active_units_in_the_window_are_hashed_and_logged(
    changes: dict[str, Any], variant: str, reason: str
) -> None:
    logger = FakeLogger()
    assigner = Assigner([definition(**changes)], logger=logger)  # type: ignore[arg-type]

    results = [assigner.assign("checkout", unit, at=NOW) for unit in UNITS[:200]]

    assert {(r.variant, r.exposed, r.event_id) for r in results} == {(variant, False, None)}
    assert all(r.reason.startswith(reason) for r in results)
    assert logger.calls == []


def test_a_rollout_ignores_the_window() -> None:
    rolled = Assigner([definition(state="rollout", rollout_variant="B", end="2025-01-01T00:00:00Z")])

    assert rolled.assign("checkout", "u", at=NOW).variant == "B"


def test_units_the_scheme_leaves_out_get_the_fallback_unlogged() -> None:
    logger = FakeLogger()
    params = {"key": "checkout", "variations": ["A", "B"], "coverage": 0.5}
    assigner = Assigner([definition(scheme="growthbook", scheme_params=params)], logger=logger)  # type: ignore[arg-type]

    results = [assigner.assign("checkout", unit, at=NOW) for unit in UNITS[:400]]
    left_out = [r for r in results if not r.exposed]

    assert 100 < len(left_out) < 300
    assert all(r.variant == "A" and r.reason.startswith("not in the experiment") for r in left_out)
    assert len(logger.calls) == len(results) - len(left_out)


def test_an_unknown_experiment_is_a_programming_error() -> None:
    with pytest.raises(UnknownExperimentError, match="no definition of experiment 'chekout' \\(known: checkout\\)"):
        Assigner([definition()]).assign("chekout", "u")


def test_an_external_scheme_cannot_be_assigned_here() -> None:
    assigner = Assigner([definition(scheme="external", scheme_params={})])

    with pytest.raises(ConfigError, match="uses scheme external"):
        assigner.assign("checkout", "u", at=NOW)
    paused = Assigner([definition(scheme="external", scheme_params={}, state="inactive")])
    assert paused.assign("checkout", "u", at=NOW).variant == "A"  # a fixed variant needs no hash


def test_the_latest_revision_wins_whatever_the_order() -> None:
    old, new = (
        definition(revision=1),
        definition(revision=2, variants=[{"name": "A", "weight": 1}, {"name": "B", "weight": 0}]),
    )

    for given in ([old, new.to_record()], [new, old]):
        assigner = Assigner(given)
        assert assigner.experiments["checkout"].revision == 2
        assert {assigner.assign("checkout", u, at=NOW).variant for u in UNITS[:50]} == {"A"}


def test_built_from_a_store_or_a_directory() -> None:
    class Store:
        def latest(self) -> dict[str, Any]:
            return {"checkout": definition(revision=3).to_record()}

    assert Assigner.from_store(Store()).assign("checkout", "u", at=NOW).revision == 3
    shipped = Assigner.from_dir(default_definitions_dir())
    assert shipped.assign("moon_mars", "device-1", at=NOW).variant in ("Moon", "Mars")


def test_the_clock_gives_the_time_when_none_is_passed() -> None:
    assigner = Assigner([definition(start="2030-01-01T00:00:00Z")], clock=lambda: datetime(2031, 1, 1, tzinfo=UTC))

    assert assigner.assign("checkout", "u").exposed
