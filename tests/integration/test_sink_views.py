"""The analyst's view (``experiment_report``) in chDB against scipy, and migrations against a real store.

Detail rows are inserted directly (through the sink's own record-to-row functions), with counts
drawn at random, so every statistic is checked on many shapes: 2 to 5 variants, unequal weights,
clear SRM, a control with no conversions, a zero-weight variant with units.
"""

from __future__ import annotations

import math
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from scipy import stats as sps

from abstream.errors import MigrationError
from sinks import stats
from sinks.aggregates import UnitAggregates
from sinks.migrator import load_migrations, migrate
from sinks.report import fetch_report
from sinks.tables import TABLES

pytestmark = pytest.mark.integration

Z = sps.norm.ppf(0.975)


def _exposure(experiment: str, variant: str, unit: str, revision: int = 1) -> dict[str, Any]:
    return {
        "experiment": experiment, "unit_id": unit, "event_id": str(uuid.uuid4()), "revision": revision,
        "variant": variant, "unit_type": "user_id", "scheme": "external", "client_ts": 1_767_225_600_000,
        "received_ts": None, "duplicates": 0, "sampling_rate": 1.0, "forced": False, "sticky_bucket_used": False,
        "hash_used": True, "context": {},
    }  # fmt: skip


def _conversion(exposure: dict[str, Any]) -> dict[str, Any]:
    return {
        "experiment": exposure["experiment"], "event_id": str(uuid.uuid4()), "unit_id": exposure["unit_id"],
        "unit_type": "user_id", "name": "purchase", "value": 1.0, "ts": exposure["client_ts"] + 1000,
        "received_ts": None, "revision": exposure["revision"], "variant": exposure["variant"],
        "exposure_event_id": exposure["event_id"], "exposure_ts": exposure["client_ts"], "latency_ms": 1000,
        "late": False, "properties": {},
    }  # fmt: skip


def _definition(key: str, variants: list[tuple[str, int]], fallback: str, revision: int = 1) -> dict[str, Any]:
    return {
        "key": key, "revision": revision, "title": key, "unit_type": "user_id", "scheme": "external",
        "scheme_params": "{}", "variants": [{"name": n, "weight": w} for n, w in variants],
        "fallback_variant": fallback, "state": "active", "rollout_variant": None, "start_ts": None, "end_ts": None,
        "attribution_window_ms": 1, "dedupe": "first_ever", "dedupe_window_ms": None, "owner": None,
        "published_ts": 1_767_225_600_000 + revision, "definition_hash": "0" * 64,
    }  # fmt: skip


def insert(client: Any, role: str, records: list[dict[str, Any]]) -> None:
    """Insert as the sink does: the detail rows, then the aggregates the report reads."""
    spec = TABLES[role]
    rows = [spec.row(record, 0, offset) for offset, record in enumerate(records)]
    client.insert(spec.table, rows, column_names=spec.insert_columns)
    UnitAggregates(client).after_insert(spec.table, rows, token=f"{role}/{uuid.uuid4()}")


def load_counts(client: Any, key: str, counts: dict[str, tuple[int, int]], weights: dict[str, int]) -> None:
    """``counts``: variant -> (units, converting units); the first weighted variant is the fallback."""
    exposures, conversions = [], []
    for variant, (units, converting) in counts.items():
        batch = [_exposure(key, variant, f"{variant}-{i}") for i in range(units)]
        exposures += batch
        conversions += [_conversion(e) for e in batch[:converting]]
    insert(client, "first_exposures", exposures)
    insert(client, "attributed_conversions", conversions)
    insert(client, "experiment_definitions", [_definition(key, list(weights.items()), next(iter(weights)))])


def random_case(rnd: random.Random) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    names = ["control", "b", "c", "d", "e"][: rnd.randint(2, 5)]
    weights = {name: rnd.choice([1, 1, 2, 3, 5]) for name in names}
    counts = {}
    for name in names:
        units = rnd.randint(20, 400)
        counts[name] = (units, rnd.randint(0 if name != "control" else 1, units // 2))
    return counts, weights


def view(client: Any, key: str, policy: str = "exclude") -> dict[str, dict[str, Any]]:
    sql = "SELECT * FROM experiment_report(policy = {p:String}) WHERE experiment = {e:String}"
    return {row["variant"]: row for row in client.query(sql, parameters={"p": policy, "e": key}).named_results()}


@pytest.fixture
def store(clickhouse: Any) -> Any:
    migrate(clickhouse)
    return clickhouse


def test_every_statistic_of_the_view_matches_scipy(store: Any) -> None:
    rnd = random.Random(2026)
    for case in range(12):
        counts, weights = random_case(rnd)
        key = f"exp{case}"
        load_counts(store, key, counts, weights)
        rows = view(store, key)
        check_rates(rows, counts)
        check_against_control(rows, counts, "control")
        check_srm(rows, counts, weights)


def check_rates(rows: dict[str, dict[str, Any]], counts: dict[str, tuple[int, int]]) -> None:
    for name, (n, x) in counts.items():
        p = x / n
        low, high = sps.norm.interval(0.95, loc=p, scale=math.sqrt(p * (1 - p) / n)) if 0 < p < 1 else (p, p)
        row = rows[name]
        assert (row["units"], row["converting_units"], row["conversions"]) == (n, x, x)
        assert row["rate"] == pytest.approx(p, rel=1e-12)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((max(0, low), min(1, high)), rel=1e-9, abs=1e-12)
        assert stats.wald_interval(x, n) == pytest.approx((p, max(0, low), min(1, high)), rel=1e-9, abs=1e-12)


def check_against_control(rows: dict[str, dict[str, Any]], counts: dict[str, tuple[int, int]], control: str) -> None:
    n_c, x_c = counts[control]
    assert rows[control]["is_control"] and rows[control]["p_value"] is None and rows[control]["lift"] is None
    for name, (n, x) in counts.items():
        if name == control:
            continue
        table = [[x, n - x], [x_c, n_c - x_c]]
        want_p = sps.chi2_contingency(table, correction=False).pvalue if x + x_c > 0 else 1.0
        assert rows[name]["p_value"] == pytest.approx(want_p, rel=1e-7, abs=1e-300)
        assert stats.two_proportion_p_value(x, n, x_c, n_c) == pytest.approx(want_p, rel=1e-7, abs=1e-300)
        lift = delta_method_lift(x, n, x_c, n_c)
        assert (rows[name]["lift"], rows[name]["lift_ci_low"], rows[name]["lift_ci_high"]) == pytest.approx(lift)
        assert tuple(stats.relative_lift(x, n, x_c, n_c) or ()) == pytest.approx(lift)


def delta_method_lift(x: int, n: int, x_c: int, n_c: int) -> tuple[float, float, float]:
    """Independent reference: gradient of p/q - 1 times the diagonal covariance of (p, q)."""
    p, q = x / n, x_c / n_c
    gradient = (1 / q, -p / q**2)
    variance = gradient[0] ** 2 * p * (1 - p) / n + gradient[1] ** 2 * q * (1 - q) / n_c
    se = math.sqrt(variance)
    return p / q - 1, p / q - 1 - Z * se, p / q - 1 + Z * se


def check_srm(rows: dict[str, dict[str, Any]], counts: dict[str, tuple[int, int]], weights: dict[str, int]) -> None:
    units = [counts[name][0] for name in weights]
    total, weight = sum(units), sum(weights.values())
    want = sps.chisquare(units, f_exp=[total * w / weight for w in weights.values()]).pvalue
    srm = {row["srm_p"] for row in rows.values()}
    assert len(srm) == 1
    assert srm.pop() == pytest.approx(want, rel=1e-9, abs=1e-300)
    assert stats.srm_p_value(units, list(weights.values())) == pytest.approx(want, rel=1e-9, abs=1e-300)
    assert {row["srm_flag"] for row in rows.values()} == {int(want < 0.001)}


def test_a_clear_sample_ratio_mismatch_is_flagged(store: Any) -> None:
    load_counts(store, "skewed", {"A": (1000, 100), "B": (850, 90)}, {"A": 1, "B": 1})
    load_counts(store, "fine", {"A": (1000, 100), "B": (990, 90)}, {"A": 1, "B": 1})

    skewed, fine = view(store, "skewed")["A"], view(store, "fine")["A"]

    assert skewed["srm_flag"] == 1 and skewed["srm_p"] < 0.001
    assert fine["srm_flag"] == 0 and fine["srm_p"] == pytest.approx(sps.chisquare([1000, 990]).pvalue)


def load_revisions(client: Any, key: str, revisions: dict[int, tuple[dict[str, int], dict[str, int]]]) -> None:
    """``revisions``: revision -> (variant -> units whose first exposure names it, variant -> weight)."""
    exposures, definitions = [], []
    for revision, (units, weights) in revisions.items():
        exposures += [_exposure(key, v, f"r{revision}-{v}-{i}", revision) for v, n in units.items() for i in range(n)]
        definitions.append(_definition(key, list(weights.items()), next(iter(weights)), revision))
    insert(client, "first_exposures", exposures)
    insert(client, "experiment_definitions", definitions)


def test_a_ramp_up_is_tested_against_the_weights_of_each_revision(store: Any) -> None:
    # 90/10 at revision 1, then 50/50: 1,400 vs 600 units in all, exactly as assigned. Against the latest
    # weights alone that is p < 1e-70.
    load_revisions(
        store, "ramp", {1: ({"A": 900, "B": 100}, {"A": 9, "B": 1}), 2: ({"A": 500, "B": 500}, {"A": 1, "B": 1})}
    )

    rows = view(store, "ramp")

    assert (rows["A"]["units"], rows["B"]["units"]) == (1400, 600)
    assert rows["A"]["srm_p"] == pytest.approx(1.0) and rows["A"]["srm_flag"] == 0 and rows["A"]["srm_dof"] == 2
    assert (rows["A"]["expected_share"], rows["B"]["expected_share"]) == pytest.approx((0.7, 0.3))


def test_the_stratified_srm_matches_scipy(store: Any) -> None:
    rnd = random.Random(11)
    for case in range(6):
        revisions, statistic, dof = {}, 0.0, 0
        for revision in range(1, rnd.randint(2, 3) + 1):
            weights = {name: rnd.choice([1, 2, 3]) for name in ("A", "B", "C")[: rnd.randint(2, 3)]}
            units = {name: rnd.randint(20, 300) for name in weights}
            total, weight = sum(units.values()), sum(weights.values())
            statistic += sps.chisquare(list(units.values()), [total * w / weight for w in weights.values()]).statistic
            dof += len(weights) - 1
            revisions[revision] = (units, weights)
        load_revisions(store, f"strat{case}", revisions)

        rows = view(store, f"strat{case}")

        for row in rows.values():
            assert row["srm_dof"] == dof
            assert row["srm_chi2"] == pytest.approx(statistic, rel=1e-9)
            assert row["srm_p"] == pytest.approx(sps.chi2.sf(statistic, dof), rel=1e-7, abs=1e-300)


def test_units_of_a_variant_weighted_later_to_zero_are_no_mismatch(store: Any) -> None:
    load_revisions(
        store, "rolled_back", {1: ({"A": 300, "B": 290}, {"A": 1, "B": 1}), 2: ({"A": 50}, {"A": 1, "B": 0})}
    )

    assert view(store, "rolled_back")["B"]["srm_flag"] == 0


def test_a_zero_weight_variant_with_units_is_a_certain_mismatch(store: Any) -> None:
    load_counts(store, "rollback", {"A": (500, 50), "B": (500, 60), "C": (3, 0)}, {"A": 1, "B": 1, "C": 0})

    rows = view(store, "rollback")

    assert {row["srm_p"] for row in rows.values()} == {0.0}


def test_a_control_without_conversions_has_no_lift_but_a_p_value(store: Any) -> None:
    load_counts(store, "cold", {"A": (300, 0), "B": (300, 12)}, {"A": 1, "B": 1})

    b = view(store, "cold")["B"]

    assert b["lift"] is None and b["lift_ci_low"] is None
    assert b["p_value"] == pytest.approx(sps.chi2_contingency([[12, 288], [0, 300]], correction=False).pvalue)


def test_the_control_is_the_latest_fallback_else_the_first_variant_by_name(store: Any) -> None:
    load_counts(store, "with_def", {"A": (10, 1), "B": (10, 2)}, {"B": 1, "A": 1})  # fallback B
    insert(store, "first_exposures", [_exposure("no_def", v, f"{v}{i}") for v in "XY" for i in range(5)])

    assert view(store, "with_def")["B"]["is_control"] == 1
    assert {name for name, row in view(store, "no_def").items() if row["is_control"]} == {"X"}
    assert view(store, "no_def")["X"]["srm_p"] is None


def test_the_policy_decides_about_units_that_switched_variants(store: Any) -> None:
    load_counts(store, "sw", {"A": (100, 10), "B": (100, 20)}, {"A": 1, "B": 1})
    # A-0..A-4 switch to B; they are among the 10 converting units of A (the first 10 convert)
    insert(
        store,
        "variant_switches",
        [{**_flag("sw", f"A-{i}", ["A", "B"]), "reason": "multiple_variants"} for i in range(5)],
    )

    excluded, first_seen = view(store, "sw", "exclude"), view(store, "sw", "first_seen")

    assert (excluded["A"]["units"], excluded["A"]["converting_units"]) == (95, 5)
    assert (first_seen["A"]["units"], first_seen["A"]["converting_units"]) == (100, 10)
    assert excluded["B"]["units"] == first_seen["B"]["units"] == 100
    assert excluded["A"]["multi_variant_units"] == 5
    assert excluded["A"]["multi_variant_rate"] == pytest.approx(5 / 200)


def _flag(key: str, unit: str, seen: list[str]) -> dict[str, Any]:
    return {
        "experiment": key, "event_id": str(uuid.uuid4()), "reason": "variant_mismatch", "revision": 1,
        "unit_type": "user_id", "unit_id": unit, "logged_variant": seen[-1], "expected_variant": seen[0],
        "detail": "", "variants_seen": seen, "exposure_ts": 1_767_225_600_000, "flagged_ts": 1_767_225_600_001,
    }  # fmt: skip


def test_report_json_has_the_promised_shape(store: Any) -> None:
    load_counts(store, "moon_mars", {"Moon": (510, 51), "Mars": (490, 95)}, {"Moon": 1, "Mars": 1})
    insert(store, "assignment_flags", [_flag("moon_mars", "Moon-1", ["Moon"]), _flag("moon_mars", "Moon-2", ["Moon"])])

    body = fetch_report(store, "moon_mars", policy="exclude")

    entry = body["experiments"]["moon_mars"]
    assert set(entry) >= {"variants", "srm_p", "mismatches", "multi_variant_units"}
    assert set(entry["variants"]["Mars"]) >= {"units", "conversions", "rate", "ci_low", "ci_high"}
    assert entry["mismatches"] == 2 and entry["mismatch_rate"] == pytest.approx(2 / 1000)
    assert entry["variants"]["Mars"]["rate"] == pytest.approx(95 / 490)


def test_migrations_apply_once_and_an_edited_one_is_refused(clickhouse: Any, tmp_path: Path) -> None:
    for migration in load_migrations():
        (tmp_path / migration.filename).write_text(migration.sql)

    shipped = load_migrations()
    assert [m.version for m in migrate(clickhouse, load_migrations(tmp_path))] == [m.version for m in shipped]
    assert [m.version for m in shipped][:5] == [1, 2, 3, 4, 5]
    assert migrate(clickhouse, load_migrations(tmp_path)) == []
    (tmp_path / "0002_sink_batches.sql").write_text(load_migrations()[1].sql + "\n-- edited\n")

    with pytest.raises(MigrationError, match=r"0002_sink_batches\.sql was edited"):
        migrate(clickhouse, load_migrations(tmp_path))
    recorded = clickhouse.query("SELECT version, name FROM schema_migrations ORDER BY version").result_rows
    assert recorded == [(m.version, m.name) for m in shipped]
    assert recorded[1] == (2, "sink_batches")


def test_a_conversion_counts_only_for_the_units_final_first_exposure(store: Any) -> None:
    later = _exposure("fx", "A", "u1")
    earlier = {**_exposure("fx", "A", "u1"), "client_ts": later["client_ts"] - 60_000}
    insert(store, "first_exposures", [later, earlier])  # the jobs corrected the first exposure
    stale = _conversion(later)  # attributed before the correction; the corrected window misses it
    kept = _conversion(earlier)
    insert(store, "attributed_conversions", [stale, kept])
    insert(store, "experiment_definitions", [_definition("fx", [("A", 1), ("B", 1)], "A")])

    row = view(store, "fx")["A"]

    assert (row["units"], row["converting_units"], row["conversions"]) == (1, 1, 1)
