"""The readout's latency at 10M units from the aggregates, against the FINAL scans it replaces, in one run.

Paths, per store size (a database each: one experiment ``big`` of that size, 3 variants, 4 metrics, ~3
conversions a unit, and 50 small experiments beside it):

- ``report``: ``fetch_report(client, "big", policy="exclude")``, whatever it reads today;
- ``metric_results``: ``sinks.metric_report.metric_results`` alone (the aggregates);
- ``dashboard``: ``DashboardData(client, ttl_s=0).experiment("big", "exclude")`` (the data endpoint);
- ``view scan``: the baseline, ``experiment_report(policy='exclude')`` for ``big`` (FINAL over the detail);
- ``metric scan``: the metrics by brute force, per unit from ``conversions FINAL`` joined to the first
  exposures, summed per variant: what the aggregates avoid;
- ``small report`` / ``small metrics``: a 2,000-unit experiment's, beside the big one.

Each path's first call is timed apart, then ``--rounds`` interleaved rounds (the order rotates).
Set-up is not timed: ``_report_data`` generates the detail and fills the aggregates in bulk SQL, and
``_report_check`` proves that bulk path equal to the sink's own at ``--check-units`` (run first).

    .venv/bin/python benchmarks/bench_report.py [--units 10000000] [--compare-units 1000000] [--rounds 5]
        [--store DIR] [--json] [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

# The checkout this file is in, before any other install of abstream (an editable one may point elsewhere).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from _report_check import check_equivalence
from _report_data import METRICS, Population, fill_aggregates, generate
from _report_sizes import storage

from sinks.aggregates import compile_metric
from sinks.clickhouse import connect
from sinks.dashboard import DashboardData
from sinks.metric_report import metric_results
from sinks.migrator import migrate
from sinks.report import fetch_report

SETUP_VERSION = 1  # bump when the generated data change, so a reused --store is rebuilt
SMALL = "small_00"
GOAL_REPORT_S, GOAL_SPEEDUP, GOAL_FLAT = 1.0, 20.0, 1.5


class TimedClient:
    """A client that times each query by its first line, so a path's cost splits into its queries."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.log: list[tuple[str, float]] = []

    def query(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self._client.query(sql, *args, **kwargs)
        finally:
            self.log.append((_label(sql), time.perf_counter() - start))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _label(sql: str) -> str:
    return " ".join(sql.split())[:90]


# -- the brute-force metric scan -------------------------------------------------------------------
_SCAN = """
WITH exposed AS (
    SELECT unit_id, argMin(variant, (exposure_ts, event_id)) AS variant,
           argMin(event_id, (exposure_ts, event_id)) AS first_event_id
    FROM first_exposures FINAL WHERE experiment = {experiment:String} GROUP BY unit_id
),
per_unit AS (
    SELECT c.unit_id AS unit_id, any(e.variant) AS variant, /*values*/
    FROM conversions AS c FINAL
    INNER JOIN exposed AS e ON c.unit_id = e.unit_id AND c.exposure_event_id = e.first_event_id
    WHERE c.experiment = {experiment:String}
    GROUP BY c.unit_id
)
SELECT e.variant, count(), /*sums*/
FROM exposed AS e LEFT JOIN per_unit AS u ON e.unit_id = u.unit_id
WHERE e.unit_id NOT IN (
    SELECT unit_id FROM variant_switches FINAL WHERE experiment = {experiment:String} AND reason = 'multiple_variants'
)
GROUP BY e.variant
"""


def scan_sql() -> tuple[str, dict[str, Any]]:
    """Every metric's per-variant sums (units, Σx, Σx², Σy, Σy², Σxy) straight from the detail."""
    compiled = [compile_metric(spec, f"m{i}") for i, (_, spec) in enumerate(METRICS.in_order())]
    values = ", ".join(f"{m.x} AS x{i}, {m.y} AS y{i}" for i, m in enumerate(compiled))
    sums = ", ".join(
        f"sum(x{i}), sum(x{i} * x{i}), sum(y{i}), sum(y{i} * y{i}), sum(x{i} * y{i})" for i in range(len(compiled))
    )
    params = {k: v for m in compiled for k, v in m.params.items()}
    return _SCAN.replace("/*values*/", values).replace("/*sums*/", sums), params


def paths(client: TimedClient, *, with_small: bool) -> dict[str, Callable[[], Any]]:
    scan, scan_params = scan_sql()
    view = "SELECT * FROM experiment_report(policy = 'exclude') WHERE experiment = {experiment:String}"
    return {
        "report": lambda: fetch_report(client, "big", policy="exclude"),
        "metric_results": lambda: metric_results(client, "big", METRICS, control="A", policy="exclude"),
        "dashboard": lambda: DashboardData(client, ttl_s=0).experiment("big", "exclude"),
        "view scan": lambda: client.query(view, parameters={"experiment": "big"}).result_rows,
        "metric scan": lambda: client.query(scan, parameters={"experiment": "big", **scan_params}).result_rows,
    } | (
        {
            "small report": lambda: fetch_report(client, SMALL, policy="exclude"),
            "small metrics": lambda: metric_results(client, SMALL, METRICS, control="A", policy="exclude"),
        }
        if with_small
        else {}
    )


# -- set-up ----------------------------------------------------------------------------------------
def prepare(connect_to: Callable[[str], Any], units: int, args: argparse.Namespace) -> Any:
    """The database of one size, built unless a reused store already holds it with the same arguments."""
    database = f"bench_{units}"
    wanted = json.dumps({"version": SETUP_VERSION, "units": units, "small": args.small, "days": args.days})
    client = connect_to(database)
    if _setup_of(client) == wanted:
        print(f"{database}: reusing the store's data", file=sys.stderr)
        migrate(client)  # the migrations added since it was built (their fill statements run over it)
        return client
    client.command(f"DROP DATABASE IF EXISTS {database}")
    client = connect_to(database)
    start = time.perf_counter()
    migrate(client)
    for population in [
        Population("big", units, args.days),
        *(Population(f"small_{i:02d}", args.small_units, args.days) for i in range(args.small)),
    ]:
        generate(client, population)
        fill_aggregates(client, population.experiment, population.units)
        print(f"{database}: {population.experiment} at {time.perf_counter() - start:.0f} s", file=sys.stderr)
    client.command("CREATE TABLE bench_setup (arguments String) ENGINE = MergeTree ORDER BY tuple()")
    client.insert("bench_setup", [[wanted]], column_names=["arguments"])
    return client


def _setup_of(client: Any) -> str | None:
    try:
        rows = client.query("SELECT arguments FROM bench_setup").result_rows
    except Exception:  # a new database: no set-up yet
        return None
    return rows[0][0] if rows else None


# -- measurement -----------------------------------------------------------------------------------
def measure(clients: dict[int, TimedClient], rounds: int, *, with_small: bool, only: set[str] | None) -> dict[str, Any]:
    """First call of every (size, path), then interleaved rounds; wall seconds and per-query seconds."""
    calls = [
        (units, name, call)
        for units, client in clients.items()
        for name, call in paths(client, with_small=with_small).items()
        if only is None or name in only
    ]
    first: dict[tuple[int, str], float] = {}
    repeated: dict[tuple[int, str], list[float]] = defaultdict(list)
    queries: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in range(rounds + 1):
        shift = r % len(calls)
        for units, name, call in calls[shift:] + calls[:shift]:
            client = clients[units]
            client.log.clear()
            start = time.perf_counter()
            call()
            elapsed = time.perf_counter() - start
            if r == 0:
                first[(units, name)] = elapsed
                continue
            repeated[(units, name)].append(elapsed)
            for label, seconds in client.log:
                queries[(units, name)][label].append(seconds)
        print(f"round {r} done", file=sys.stderr)
    return {"first": first, "repeated": repeated, "queries": queries}


def summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for (units, name), times in results["repeated"].items():
        per_query = {
            label: statistics.median(s) for label, s in results["queries"][(units, name)].items()
        }  # per call: a label repeated within a call adds up below
        calls = len(times)
        totals = {label: sum(s) / calls for label, s in results["queries"][(units, name)].items()}
        rows.append({
            "units": units, "path": name, "first_s": results["first"][(units, name)],
            "p50_s": statistics.median(times), "max_s": max(times), "rounds": calls,
            "queries": sorted(({"query": q, "s_per_call": totals[q], "p50_s": per_query[q]} for q in totals),
                              key=lambda q: -q["s_per_call"]),
        })  # fmt: skip
    return rows


def verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each goal of the issue whose paths were measured, at the largest size (and the smallest, for flatness)."""
    p50 = {(r["units"], r["path"]): r["p50_s"] for r in rows}
    sizes = sorted({r["units"] for r in rows})
    big, small = sizes[-1], sizes[0]
    goals = [
        (f"report <= {GOAL_REPORT_S:g} s at {big:,} units", [(big, "report")], lambda v: v[0], GOAL_REPORT_S),
        (f"report >= {GOAL_SPEEDUP:g}x faster than the view scan", [(big, "view scan"), (big, "report")],
         lambda v: v[1] / v[0], 1 / GOAL_SPEEDUP),
        (f"metric_results >= {GOAL_SPEEDUP:g}x faster than the metric scan",
         [(big, "metric scan"), (big, "metric_results")], lambda v: v[1] / v[0], 1 / GOAL_SPEEDUP),
    ]  # fmt: skip
    if big != small:
        for path in ("dashboard", "metric_results", "report"):
            goals.append((f"{path} at {big:,} / at {small:,} units <= {GOAL_FLAT:g} (independent of units)",
                          [(big, path), (small, path)], lambda v: v[0] / v[1], GOAL_FLAT))  # fmt: skip
    out = []
    for goal, keys, value_of, limit in goals:
        if all(key in p50 for key in keys):
            value = value_of([p50[key] for key in keys])
            shown = 1 / value if "faster" in goal else value  # speed-ups are shown as "x faster"
            out.append({"goal": goal, "value": shown, "met": value <= limit})
    return out


def print_table(rows: list[dict[str, Any]], sizes: list[dict[str, Any]], goals: list[dict[str, Any]]) -> None:
    print(f"{'units':>12} {'path':<16} {'first s':>9} {'p50 s':>9} {'max s':>9}")
    for r in sorted(rows, key=lambda r: (r["units"], r["path"])):
        print(f"{r['units']:>12,} {r['path']:<16} {r['first_s']:>9.3f} {r['p50_s']:>9.3f} {r['max_s']:>9.3f}")
    print("\nslowest queries per call (s, mean over rounds):")
    for r in sorted(rows, key=lambda r: (r["units"], r["path"])):
        if r["path"] in ("report", "dashboard", "metric_results", "small report"):
            for q in r["queries"][:3]:
                print(f"{r['units']:>12,} {r['path']:<16} {q['s_per_call']:>8.3f}  {q['query']}")
    print("\nstorage (bytes on disk):")
    for s in sizes:
        print(f"{s['units']:>12,} {s['table']:<17} {s['rows']:>12,} rows {s['bytes']:>14,} B "
              f"{s['bytes_per_row']:>7.1f} B/row  {s['per']}: {s['bytes_per_unit']:.1f} B")  # fmt: skip
    print()
    for g in goals:
        print(f"{'MET' if g['met'] else 'NOT MET':>8}  {g['goal']}: {g['value']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=10_000_000)
    parser.add_argument("--compare-units", type=int, default=1_000_000, help="a second size; 0: none")
    parser.add_argument("--small", type=int, default=50, help="small experiments beside the big one")
    parser.add_argument("--small-units", type=int, default=2000)
    parser.add_argument("--days", type=float, default=14.0, help="the span of the first exposures")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--store", type=Path, help="a chDB directory to keep (set-up is reused)")
    parser.add_argument("--memory-gb", type=float, default=16.0, help="max_memory_usage per query")
    parser.add_argument("--check", action="store_true", help="run only the bulk-vs-sink equivalence check")
    parser.add_argument("--check-units", type=int, default=20_000)
    parser.add_argument("--no-check", action="store_true", help="skip the equivalence check")
    parser.add_argument("--paths", help="a comma-separated subset of the paths (default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_report") as tmp:
        run(args, args.store or Path(tmp) / "ch")


def run(args: argparse.Namespace, store: Path) -> None:
    memory = str(int(args.memory_gb * 2**30))

    def connect_to(database: str) -> Any:
        client = connect(f"chdb://{store}", database=database)
        client.set_client_setting("max_memory_usage", memory)
        return client

    check: list[str] | None = None
    if not args.no_check:
        start = time.perf_counter()
        check = check_equivalence(connect_to, units=args.check_units)
        print(f"equivalence check at {args.check_units:,} units: {'equal' if not check else 'DIFFERENT'} "
              f"({time.perf_counter() - start:.0f} s)", *check, sep="\n", file=sys.stderr)  # fmt: skip
        if args.check:
            sys.exit(1 if check else 0)
    sizes = sorted({args.units, *([args.compare_units] if args.compare_units else [])})
    setup_start = time.perf_counter()
    clients = {units: TimedClient(prepare(connect_to, units, args)) for units in sizes}
    setup_s = time.perf_counter() - setup_start
    only = None if not args.paths else {p.strip() for p in args.paths.split(",")}
    rows = summary(measure(clients, args.rounds, with_small=args.small > 0, only=only))
    storage_rows = [s for units, client in clients.items() for s in storage(client, units, METRICS)]
    goals = verdicts(rows)
    if args.json:
        print(json.dumps({
            "date": datetime.now(UTC).date().isoformat(), "machine": platform.platform(), "arguments": vars(args),
            "setup_s": setup_s, "check_units": None if check is None else args.check_units,
            "check_problems": check, "results": rows, "storage": storage_rows, "goals": goals,
        }, default=str, indent=1))  # fmt: skip
    else:
        print_table(rows, storage_rows, goals)


if __name__ == "__main__":
    main()
