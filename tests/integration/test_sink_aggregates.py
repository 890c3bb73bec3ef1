"""The per-unit aggregates (sinks/aggregates.py) on chDB against a brute-force reference.

Batches are inserted as the sink inserts them and the aggregates updated after each; the reference
recomputes every metric from the deduplicated records in Python. Replays, re-emissions at new offsets,
a crash between the two aggregate inserts and a definition that arrives after its conversions must
all leave the aggregates equal to the reference. Some units are flagged multi-variant, half before
their exposures, half after their conversions: their share must be in the multi-variant tables too.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from schemas.metrics import ExperimentMetrics, MetricSpec
from schemas.models import AssignmentFlag, AttributedConversion, FirstExposure, UnattributedEvent
from sinks.aggregates import BUILTIN_METRIC, UnitAggregates
from sinks.migrator import load_migrations, migrate, split_statements
from sinks.tables import TABLES

pytestmark = pytest.mark.integration

BASE_TS = 1_767_225_600_000
EXPERIMENT = "checkout"
VARIANTS = ("A", "B", "C")
SPECS = [
    MetricSpec.model_validate(spec)
    for spec in (
        {"key": "buyers", "title": "Buyers", "type": "proportion", "numerator": {"events": "purchase"}},
        {"key": "revenue", "title": "Revenue", "type": "mean",
         "numerator": {"events": "purchase", "aggregation": "sum"}, "cap": 60},
        {"key": "blue_clicks", "title": "Blue clicks", "type": "mean",
         "numerator": {"events": ["click", "tap"], "filter": {"color": {"in": ["blue", "navy"]}}},
         "window_ms": 3_600_000},
        {"key": "order_value", "title": "Order value", "type": "ratio",
         "numerator": {"events": "purchase", "aggregation": "sum"}, "denominator": {"events": "purchase"}},
    )
]  # fmt: skip
METRICS = ExperimentMetrics(
    primary=["buyers"], secondary=["revenue", "order_value"], guardrails=["blue_clicks"],
    definitions={spec.key: spec for spec in SPECS},
)  # fmt: skip


@dataclass
class History:
    """What the jobs emitted: first exposures, conversions (with re-emissions) and multi-variant flags."""

    exposures: list[dict[str, Any]] = field(default_factory=list)
    conversions: list[dict[str, Any]] = field(default_factory=list)
    switches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def switched(self) -> set[str]:
        return {flag["unit_id"] for flag in self.switches}


def build_history(seed: int, units: int) -> History:
    rnd, history = random.Random(seed), History()
    for i in range(units):
        unit, ts = f"u{i:05d}", BASE_TS + i * 1_000
        exposure = FirstExposure(
            event_id=_uuid(rnd), experiment=EXPERIMENT, revision=1 + (i % 2), variant=rnd.choice(VARIANTS),
            unit_type="user_id", unit_id=unit, scheme="sha256-weights", client_ts=ts,
        ).to_avro()  # fmt: skip
        history.exposures.append(exposure)
        if rnd.random() < 0.1:  # folded duplicates, re-emitted
            history.exposures.append({**exposure, "duplicates": rnd.randint(1, 3)})
        for _ in range(rnd.choice((0, 0, 1, 2, 4))):
            history.conversions.append(_conversion(rnd, exposure))
        if i % 29 == 3:
            history.switches.append(switch_flag(rnd, exposure))
    rnd.shuffle(history.conversions)
    return history


def switch_flag(rnd: random.Random, exposure: dict[str, Any]) -> dict[str, Any]:
    """The jobs' flag for a unit that logged another variant after ``exposure``."""
    other = next(v for v in VARIANTS if v != exposure["variant"])
    return AssignmentFlag(
        event_id=_uuid(rnd), experiment=EXPERIMENT, revision=exposure["revision"], unit_type="user_id",
        unit_id=exposure["unit_id"], logged_variant=other, expected_variant=exposure["variant"],
        reason="multiple_variants", detail=f"seen {exposure['variant']}, {other}",
        variants_seen=[exposure["variant"], other], exposure_ts=exposure["client_ts"],
        flagged_ts=exposure["client_ts"] + 5_000,
    ).to_avro()  # fmt: skip


def _conversion(rnd: random.Random, exposure: dict[str, Any]) -> dict[str, Any]:
    name = rnd.choice(("purchase", "click", "tap", "bounce"))
    latency = rnd.choice((60_000, 1_800_000, 7_200_000))
    return AttributedConversion(
        event_id=_uuid(rnd), unit_type="user_id", unit_id=exposure["unit_id"], name=name,
        value=round(rnd.uniform(1, 40), 2) if name == "purchase" else None, ts=exposure["client_ts"] + latency,
        properties={"color": rnd.choice(("blue", "navy", "red"))}, experiment=EXPERIMENT,
        revision=exposure["revision"], variant=exposure["variant"], exposure_event_id=uuid.UUID(exposure["event_id"]),
        exposure_ts=exposure["client_ts"], latency_ms=latency, late=rnd.random() < 0.1,
    ).to_avro()  # fmt: skip


def _uuid(rnd: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rnd.getrandbits(128), version=4)


def definition_row(metrics: ExperimentMetrics, revision: int = 1) -> tuple[Any, ...]:
    record = {
        "key": EXPERIMENT, "revision": revision, "title": "Checkout", "unit_type": "user_id",
        "scheme": "sha256-weights", "scheme_params": "{}", "variants": [{"name": v, "weight": 1} for v in VARIANTS],
        "fallback_variant": "A", "state": "active", "rollout_variant": None, "start_ts": None, "end_ts": None,
        "attribution_window_ms": 86_400_000, "dedupe": "first_ever", "dedupe_window_ms": None, "owner": None,
        "published_ts": BASE_TS + revision, "definition_hash": "0" * 64, "metrics": metrics.to_json(),
    }  # fmt: skip
    return TABLES["experiment_definitions"].row(record, 0, revision)


# -- the reference ------------------------------------------------------------------------------
def _value(spec: MetricSpec, events: Sequence[dict[str, Any]]) -> tuple[float, float]:
    return spec.unit_value(events)


def earliest(history: History) -> dict[str, tuple[dict[str, Any], int]]:
    """Per unit: its earliest first exposure and its exposures (every first exposure, duplicates folded in)."""
    rows: dict[str, dict[str, Any]] = {}
    for e in history.exposures:  # per first exposure, the highest duplicates count wins (ReplacingMergeTree)
        if e["event_id"] not in rows or e["duplicates"] >= rows[e["event_id"]]["duplicates"]:
            rows[e["event_id"]] = e
    units: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in rows.values():
        units[e["unit_id"]].append(e)
    return {
        unit: (min(found, key=lambda e: (e["client_ts"], e["event_id"])), sum(1 + e["duplicates"] for e in found))
        for unit, found in units.items()
    }


def counted_events(history: History) -> dict[str, list[dict[str, Any]]]:
    """Per unit: the latest delivery of each event attributed to its earliest first exposure."""
    first = {unit: e["event_id"] for unit, (e, _) in earliest(history).items()}
    latest = {c["event_id"]: c for c in history.conversions}  # the last delivered row wins
    per_unit: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in latest.values():
        if first.get(c["unit_id"]) == c["exposure_event_id"]:
            per_unit[c["unit_id"]].append(c)
    return per_unit


def reference(history: History, metrics: ExperimentMetrics) -> dict[str, Any]:
    """exposure_stats and metric_stats as sums per variant from the deduplicated records; under ``multi_``
    the same over the multi-variant units alone."""
    first, events = earliest(history), counted_events(history)
    out = {}
    for prefix, units in (("", set(first)), ("multi_", history.switched & set(first))):
        exposures: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
        stats: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * 6)
        for unit in units:
            e, count = first[unit]
            cell = exposures[(e["revision"], e["variant"])]
            cell[0], cell[1] = cell[0] + 1, cell[1] + count
            if unit not in events:
                continue
            mine = events[unit]
            values = {BUILTIN_METRIC: (float(len(mine)), float(sum(c["late"] for c in mine)))}
            values |= {spec.key: _value(spec, mine) for _, spec in metrics.in_order()}
            for key, (x, y) in values.items():
                sums = stats[(key, e["variant"])]
                for i, v in enumerate((float(x != 0), x, x * x, y, y * y, x * y)):
                    sums[i] += v
        out[f"{prefix}exposures"] = {k: tuple(v) for k, v in exposures.items()}
        out[f"{prefix}metrics"] = _rounded(stats)
    return out


def _rounded(stats: dict[tuple[str, str], Sequence[float]]) -> dict[tuple[str, str], tuple[float, ...]]:
    return {k: tuple(round(v, 6) for v in values) for k, values in stats.items() if any(values)}


def stored(client: Any) -> dict[str, Any]:
    out = {}
    for prefix in ("", "multi_"):
        exposures = client.query(
            f"SELECT revision, variant, sum(units), sum(exposures) FROM {prefix}exposure_stats "
            "GROUP BY revision, variant HAVING sum(units) != 0"
        ).result_rows
        metrics = client.query(
            "SELECT metric, variant, sum(nonzero), sum(sum_x), sum(sum_x2), sum(sum_y), sum(sum_y2), sum(sum_xy) "
            f"FROM {prefix}metric_stats GROUP BY metric, variant"
        ).result_rows
        out[f"{prefix}exposures"] = {(r[0], r[1]): (r[2], r[3]) for r in exposures}
        out[f"{prefix}metrics"] = _rounded({(r[0], r[1]): r[2:] for r in metrics})
    return out


# -- the sink's side ----------------------------------------------------------------------------
def batches(history: History, rnd: random.Random) -> Iterator[tuple[str, list[tuple[Any, ...]], str]]:
    """Batches of rows per table, as the sink cuts them (a partition's offset range each); half the
    multi-variant flags come before the exposures, half after the conversions."""
    half = len(history.switches) // 2
    parts = (
        ("variant_switches", history.switches, 0, half),
        ("first_exposures", history.exposures, 0, len(history.exposures)),
        ("attributed_conversions", history.conversions, 0, len(history.conversions)),
        ("variant_switches", history.switches, half, len(history.switches)),
    )
    for role, records, offset, end in parts:
        spec = TABLES[role]
        while offset < end:
            size = min(rnd.randint(1, 200), end - offset)
            rows = [spec.row(r, 0, offset + i) for i, r in enumerate(records[offset : offset + size])]
            yield spec.table, rows, f"{role}/0/{offset}-{offset + len(rows) - 1}"
            offset += len(rows)


def deliver(client: Any, aggregates: UnitAggregates, history: History, seed: int, *, prefix: str = "") -> None:
    for table, rows, token in batches(history, random.Random(seed)):
        spec = next(s for s in TABLES.values() if s.table == table)
        client.insert(
            table, rows, column_names=spec.insert_columns, settings={"insert_deduplication_token": prefix + token}
        )
        aggregates.after_insert(table, rows, token=prefix + token)


@pytest.fixture
def store(clickhouse: Any) -> Any:
    migrate(clickhouse)
    return clickhouse


def test_the_aggregates_equal_the_brute_force_reference(store: Any) -> None:
    store.insert(
        "experiment_definitions",
        [definition_row(METRICS)],
        column_names=TABLES["experiment_definitions"].insert_columns,
    )
    history = build_history(seed=1, units=1500)

    deliver(store, UnitAggregates(store), history, seed=2)

    want = reference(history, METRICS)
    assert stored(store) == want
    assert {metric for metric, _ in want["metrics"]} == {BUILTIN_METRIC, *(s.key for s in SPECS)}


def test_replays_and_reemissions_at_new_offsets_move_no_number(store: Any) -> None:
    store.insert(
        "experiment_definitions",
        [definition_row(METRICS)],
        column_names=TABLES["experiment_definitions"].insert_columns,
    )
    history = build_history(seed=3, units=800)
    aggregates = UnitAggregates(store)
    deliver(store, aggregates, history, seed=4)
    before = stored(store)

    deliver(store, aggregates, history, seed=4)  # the sink replays the same ranges
    deliver(store, UnitAggregates(store), history, seed=5, prefix="reemitted/")  # the jobs re-emit, cut otherwise

    assert stored(store) == before == reference(history, METRICS)


def test_a_later_delivery_of_a_conversion_replaces_the_first_in_the_aggregates(store: Any) -> None:
    """A re-emitted conversion whose late flag differs: the aggregates follow the row the detail keeps."""
    history = build_history(seed=6, units=400)
    aggregates = UnitAggregates(store)
    deliver(store, aggregates, history, seed=7)
    flipped = History([], [{**c, "late": not c["late"]} for c in history.conversions[:150]])

    deliver(store, aggregates, flipped, seed=8, prefix="again/")

    merged = History(history.exposures, history.conversions + flipped.conversions, history.switches)
    assert stored(store) == reference(merged, ExperimentMetrics())


class CrashingClient:
    """A client whose first insert into ``table`` fails after the statistics went in (a crash between the two)."""

    def __init__(self, client: Any, table: str) -> None:
        self._client, self._table, self.crashed = client, table, 0

    def insert(self, table: str, *args: Any, **kwargs: Any) -> Any:
        if table == self._table and not self.crashed:
            self.crashed += 1
            raise ConnectionError(f"crashed before inserting into {table}")
        return self._client.insert(table, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.mark.parametrize("table", ["metric_units", "exposure_units"])
def test_a_crash_between_the_statistics_and_the_unit_states_is_retried_exactly(store: Any, table: str) -> None:
    store.insert(
        "experiment_definitions",
        [definition_row(METRICS)],
        column_names=TABLES["experiment_definitions"].insert_columns,
    )
    history = build_history(seed=9, units=300)
    crashing = CrashingClient(store, table)
    aggregates = UnitAggregates(crashing)

    for table_name, rows, token in batches(history, random.Random(10)):
        spec = next(s for s in TABLES.values() if s.table == table_name)
        store.insert(table_name, rows, column_names=spec.insert_columns, settings={"insert_deduplication_token": token})
        try:
            aggregates.after_insert(table_name, rows, token=token)
        except ConnectionError:  # the sink retries the same batch, with the same token
            aggregates = UnitAggregates(store)
            aggregates.after_insert(table_name, rows, token=token)

    assert crashing.crashed == 1
    assert stored(store) == reference(history, METRICS)


def test_a_definition_that_arrives_after_its_conversions_is_computed_over_every_unit(store: Any) -> None:
    history = build_history(seed=11, units=600)
    aggregates = UnitAggregates(store)
    deliver(store, aggregates, history, seed=12)
    assert {metric for metric, _ in stored(store)["metrics"]} == {BUILTIN_METRIC}

    store.insert(
        "experiment_definitions",
        [definition_row(METRICS)],
        column_names=TABLES["experiment_definitions"].insert_columns,
    )
    aggregates.after_insert("experiment_definitions", [definition_row(METRICS)], token="definitions/0/0-0")
    late = History([], [_conversion(random.Random(13), history.exposures[0])])
    deliver(store, aggregates, late, seed=14, prefix="late/")

    merged = History(history.exposures, history.conversions + late.conversions, history.switches)
    assert stored(store) == reference(merged, METRICS)


def test_a_store_older_than_the_aggregates_is_counted_whole_on_the_first_batch(store: Any) -> None:
    """First exposures and conversions inserted before the sink kept aggregates (an upgraded store)."""
    history = build_history(seed=15, units=700)
    spec = TABLES["first_exposures"]
    older = [spec.row(r, 0, i) for i, r in enumerate(history.exposures)]
    store.insert(spec.table, older, column_names=spec.insert_columns)
    conversions = TABLES["attributed_conversions"]
    rows = [conversions.row(r, 0, i) for i, r in enumerate(history.conversions)]
    store.insert(conversions.table, rows, column_names=conversions.insert_columns)
    switches = TABLES["variant_switches"]
    flags = [switches.row(r, 0, i) for i, r in enumerate(history.switches)]
    store.insert(switches.table, flags, column_names=switches.insert_columns)

    aggregates = UnitAggregates(store)
    aggregates.after_insert(spec.table, older[:1], token="first_exposures/0/0-0")
    aggregates.after_insert(conversions.table, rows[:1], token="attributed_conversions/0/0-0")

    assert stored(store) == reference(history, ExperimentMetrics())


def test_a_multi_variant_flag_moves_the_units_share_once_whatever_is_replayed(store: Any) -> None:
    history = build_history(seed=40, units=600)
    aggregates = UnitAggregates(store)
    deliver(store, aggregates, History(history.exposures, history.conversions), seed=41)
    assert stored(store)["multi_exposures"] == {}

    deliver(store, aggregates, History([], [], history.switches), seed=42)  # the flags, after everything
    deliver(store, UnitAggregates(store), History([], [], history.switches), seed=43, prefix="again/")  # re-emitted

    assert stored(store) == reference(history, ExperimentMetrics())
    assert sum(n for n, _ in stored(store)["multi_exposures"].values()) == len(history.switched) > 10


def test_a_store_whose_states_predate_the_multi_variant_tables_is_filled_by_the_migration(store: Any) -> None:
    """Migration 0011 on a store the sink filled before it (flags stored, unit states not marked)."""
    columns = TABLES["experiment_definitions"].insert_columns
    store.insert("experiment_definitions", [definition_row(METRICS)], column_names=columns)
    history = build_history(seed=44, units=700)
    deliver(store, UnitAggregates(store), History(history.exposures, history.conversions), seed=45)
    switches = TABLES["variant_switches"]
    flags = [switches.row(r, 0, i) for i, r in enumerate(history.switches)]
    store.insert(switches.table, flags, column_names=switches.insert_columns)  # as a sink before 0011 did
    (migration,) = [m for m in load_migrations() if m.version == 11]

    for _ in range(2):  # interrupted and run again: nothing counts twice
        for statement in split_statements(migration.sql):
            store.command(statement)

    assert stored(store) == reference(history, METRICS)


def unit_values(history: History, metrics: ExperimentMetrics, skip: set[str]) -> dict[str, dict[str, list[Any]]]:
    """metric -> variant -> every exposed unit's (x, y), zeros included: what a notebook would compute."""
    events = counted_events(history)
    out: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for unit, (first, _) in earliest(history).items():
        if unit not in skip:
            for _, spec in metrics.in_order():
                out[spec.key][first["variant"]].append(_value(spec, events.get(unit, [])))
    return out


@pytest.mark.parametrize("policy", ["first_seen", "exclude"])
def test_the_readout_from_the_aggregates_equals_numpy_and_scipy_on_the_units(store: Any, policy: str) -> None:
    import numpy as np
    from scipy import stats as scipy_stats

    from sinks.metric_report import metric_results

    columns = TABLES["experiment_definitions"].insert_columns
    store.insert("experiment_definitions", [definition_row(METRICS)], column_names=columns)
    history = build_history(seed=16, units=1200)
    deliver(store, UnitAggregates(store), history, seed=17)
    switched = history.switched

    results = metric_results(store, EXPERIMENT, METRICS, control="A", policy=policy)  # type: ignore[arg-type]

    truth = unit_values(history, METRICS, switched if policy == "exclude" else set())
    assert [m["key"] for m in results] == ["buyers", "revenue", "order_value", "blue_clicks"]
    for metric in results:
        for variant, got in metric["variants"].items():
            x, y = (np.array(v) for v in zip(*truth[metric["key"]][variant], strict=True))
            assert got["units"] == len(x)
            want = x.sum() / y.sum() if metric["type"] == "ratio" else x.mean()
            assert got["value"] == pytest.approx(want, rel=1e-9)
            if metric["type"] == "mean" and variant != "A":
                control = np.array([v[0] for v in truth[metric["key"]]["A"]])
                welch = scipy_stats.ttest_ind(x, control, equal_var=False)
                assert got["lift"]["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)


def test_the_metric_moments_view_gives_the_analyst_the_same_sums_and_the_units(store: Any) -> None:
    columns = TABLES["experiment_definitions"].insert_columns
    store.insert("experiment_definitions", [definition_row(METRICS)], column_names=columns)
    history = build_history(seed=18, units=500)
    deliver(store, UnitAggregates(store), history, seed=19)

    rows = store.query(
        "SELECT metric, variant, units, nonzero, sum_x, sum_x2, sum_y, sum_y2, sum_xy FROM metric_moments"
    ).result_rows

    units: dict[str, int] = defaultdict(int)
    for (_, variant), (n, _) in reference(history, METRICS)["exposures"].items():
        units[variant] += n
    assert {(r[0], r[1]): r[2] for r in rows} == {(r[0], r[1]): units[r[1]] for r in rows}
    assert _rounded({(r[0], r[1]): r[3:] for r in rows}) == reference(history, METRICS)["metrics"]


def test_conversions_that_reach_the_sink_before_their_exposures_count_once_these_arrive(store: Any) -> None:
    columns = TABLES["experiment_definitions"].insert_columns
    store.insert("experiment_definitions", [definition_row(METRICS)], column_names=columns)
    history = build_history(seed=20, units=500)
    aggregates = UnitAggregates(store)

    deliver(store, aggregates, History([], history.conversions), seed=21)
    assert stored(store)["metrics"] == {}  # no unit is exposed yet: nothing counts
    deliver(store, aggregates, History(history.exposures, [], history.switches), seed=22)

    assert stored(store) == reference(history, METRICS)


def test_a_corrected_first_exposure_decides_the_variant_and_what_counts(store: Any) -> None:
    """An earlier first exposure arrives late: the jobs re-emit it and re-attribute what its window holds."""
    columns = TABLES["experiment_definitions"].insert_columns
    store.insert("experiment_definitions", [definition_row(METRICS)], column_names=columns)
    history = build_history(seed=23, units=400)
    aggregates = UnitAggregates(store)
    deliver(store, aggregates, history, seed=24)
    rnd, corrections, reattributed = random.Random(25), [], []
    for k, exposure in enumerate(history.exposures[::5]):
        earlier = {**exposure, "event_id": str(_uuid(rnd)), "client_ts": exposure["client_ts"] - 60_000,
                   "variant": rnd.choice(VARIANTS), "duplicates": 0}  # fmt: skip
        corrections.append(earlier)
        mine = [c for c in history.conversions if c["unit_id"] == exposure["unit_id"]]
        reattributed += [
            {**c, "exposure_event_id": earlier["event_id"], "exposure_ts": earlier["client_ts"],
             "variant": earlier["variant"], "latency_ms": c["latency_ms"] + 60_000}
            # the rest (all of them, every other unit): outside the corrected window, left with the superseded one
            for c in (mine[::2] if k % 2 else [])
        ]  # fmt: skip

    deliver(store, aggregates, History(corrections, reattributed), seed=26, prefix="corrected/")

    merged = History(history.exposures + corrections, history.conversions + reattributed, history.switches)
    assert stored(store) == reference(merged, METRICS)
    assert any(c["unit_id"] == e["unit_id"] for c in reattributed for e in corrections)


def test_a_percentile_cap_is_the_percentile_of_the_non_zero_values_applied_per_unit(store: Any) -> None:
    from sinks.metric_report import metric_results

    capped = MetricSpec.model_validate(
        {"key": "revenue_p90", "title": "Revenue (p90 cap)", "type": "mean",
         "numerator": {"events": "purchase", "aggregation": "sum"}, "cap": {"percentile": 0.9}}
    )  # fmt: skip
    metrics = ExperimentMetrics(primary=["revenue_p90"], definitions={"revenue_p90": capped})
    columns = TABLES["experiment_definitions"].insert_columns
    store.insert("experiment_definitions", [definition_row(metrics)], column_names=columns)
    history = build_history(seed=27, units=900)
    deliver(store, UnitAggregates(store), history, seed=28)

    (result,) = metric_results(store, EXPERIMENT, metrics, control="A", policy="first_seen")

    raw = unit_values(history, metrics, set())["revenue_p90"]
    values = sorted(x for cells in raw.values() for x, _ in cells if x != 0)
    cap = values[int(0.9 * len(values))]  # ClickHouse's quantileExact: the element at floor(p * n)
    for variant, cells in raw.items():
        xs = [min(x, cap) for x, _ in cells]
        assert result["variants"][variant]["value"] == pytest.approx(sum(xs) / len(xs), rel=1e-9)
    assert max(x for cells in raw.values() for x, _ in cells) > cap  # the cap did bind


def unattributed_history(seed: int, events: int) -> list[dict[str, Any]]:
    """Events attributed to no experiment; a fifth decided again (a replay), some with another reason."""
    rnd, out = random.Random(seed), []
    for i in range(events):
        record = UnattributedEvent(
            event_id=_uuid(rnd), unit_type="user_id", unit_id=f"n{i % 50}", name=rnd.choice(("click", "buy")),
            value=None, ts=BASE_TS + i, reason=rnd.choice(("never_exposed", "outside_window", "late")),
        ).to_avro()  # fmt: skip
        out.append(record)
        if rnd.random() < 0.2:
            out.append({**record, "reason": rnd.choice(("never_exposed", "late"))})
    return out


def unattributed_counts(client: Any) -> dict[tuple[str, str], int]:
    rows = client.query("SELECT reason, name, sum(events) FROM unattributed_stats GROUP BY ALL HAVING sum(events) != 0")
    return {(reason, name): n for reason, name, n in rows.result_rows}


def latest_reasons(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], int]:
    latest = {r["event_id"]: (r["reason"], r["name"]) for r in records}
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for key in latest.values():
        counts[key] += 1
    return dict(counts)


def deliver_unattributed(client: Any, aggregates: UnitAggregates, records: Sequence[dict[str, Any]], seed: int) -> None:
    spec, rnd, offset = TABLES["unattributed_events"], random.Random(seed), 0
    while offset < len(records):
        rows = [spec.row(r, 0, offset + i) for i, r in enumerate(records[offset : offset + rnd.randint(1, 90)])]
        token = f"{seed}/unattributed_events/0/{offset}"
        client.insert(
            spec.table, rows, column_names=spec.insert_columns, settings={"insert_deduplication_token": token}
        )
        aggregates.after_insert(spec.table, rows, token=token)
        offset += len(rows)


def test_events_attributed_to_no_experiment_count_once_under_their_latest_reason(store: Any) -> None:
    records = unattributed_history(seed=50, events=700)
    aggregates = UnitAggregates(store)

    deliver_unattributed(store, aggregates, records, seed=51)
    deliver_unattributed(store, aggregates, records, seed=51)  # the sink replays the same ranges
    first = unattributed_counts(store)
    deliver_unattributed(store, UnitAggregates(store), records, seed=52)  # the jobs re-emit at new offsets

    assert unattributed_counts(store) == first == latest_reasons(records)
    assert sum(first.values()) == 700


def test_a_store_older_than_the_unattributed_counts_is_filled_by_the_migration(store: Any) -> None:
    records = unattributed_history(seed=53, events=300)
    spec = TABLES["unattributed_events"]
    rows = [spec.row(r, 0, i) for i, r in enumerate(records)]
    store.insert(spec.table, rows, column_names=spec.insert_columns)  # as a sink before 0013 did
    (migration,) = [m for m in load_migrations() if m.version == 13]

    for _ in range(2):  # interrupted and run again: nothing counts twice
        for statement in split_statements(migration.sql):
            store.command(statement)
    deliver_unattributed(store, UnitAggregates(store), records[:40], seed=54)  # then the sink goes on

    assert unattributed_counts(store) == latest_reasons(records)


class RecordingClient:
    """A client that keeps every query it sends."""

    def __init__(self, client: Any) -> None:
        self._client, self.sent = client, []

    def query(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(sql)
        return self._client.query(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


# What the readout may read: the aggregates, the definitions, and the flags by distinct event id (no FINAL).
READOUT_TABLES = {
    "exposure_stats", "metric_stats", "multi_exposure_stats", "multi_metric_stats", "unattributed_stats",
    "experiment_definitions", "assignment_flags", "variant_switches",
}  # fmt: skip


@pytest.mark.parametrize("policy", ["exclude", "first_seen"])
def test_the_report_and_the_dashboard_read_the_aggregates_and_no_detail_table(store: Any, policy: str) -> None:
    import re

    from sinks.dashboard import DashboardData
    from sinks.report import fetch_report

    columns = TABLES["experiment_definitions"].insert_columns
    store.insert("experiment_definitions", [definition_row(METRICS)], column_names=columns)
    history = build_history(seed=60, units=300)
    deliver(store, UnitAggregates(store), history, seed=61)
    client = RecordingClient(store)

    report = fetch_report(client, EXPERIMENT, policy=policy)  # type: ignore[arg-type]
    page = DashboardData(client, ttl_s=0).experiment(EXPERIMENT, policy)  # type: ignore[arg-type]

    read = {table for sql in client.sent for table in re.findall(r"\bFROM\s+(\w+)", sql)}
    assert read <= READOUT_TABLES, read - READOUT_TABLES
    assert {"exposure_stats", "metric_stats"} <= read
    assert ("multi_metric_stats" in read) == (policy == "exclude")
    assert not [sql for sql in client.sent if "FINAL" in sql]
    got = report["experiments"][EXPERIMENT]
    assert [m["key"] for m in got["metrics"]] == ["buyers", "revenue", "order_value", "blue_clicks"]
    assert sum(v["units"] for v in got["variants"].values()) == len(earliest(history)) - (
        len(history.switched) if policy == "exclude" else 0
    )
    assert page["series"]["metrics"].keys() == {"buyers", "revenue", "order_value", "blue_clicks"}
