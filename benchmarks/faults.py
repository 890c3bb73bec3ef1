"""The fault suite: the real pipeline under faults, compared with a reference computed from what the clients logged.

Scenarios (each on fresh topics, groups, data dirs and store; on the broker given or one started here):

1. ``kills``: trials of a run during which the jobs worker and/or the sink are ``kill -9``ed at random
   moments and started again;
2. ``cluster``: a 3-broker cluster (RF 3, min.insync 2, the loggers' acks=all) with one broker ``kill -9``ed
   mid-run and started again;
3. ``replays``: after a clean run, a jobs replay and then a sink replay (their groups reset to earliest);
4. ``malformed``: bad records interleaved with the valid ones (random bytes, truncations, unknown
   fingerprints, wrong record types, out-of-contract values, 900 KB values, null and wrong keys);
5. ``outage``: the broker stopped while the apps log (the loggers spool, then replay).

The clients log in real time: each record carries the wall-clock time at which it is logged (the demo's two
hours played in ``span_s`` seconds, see ``_faults_traffic``), so a fault delays records by as much event time
as wall time, as in production.

Each prints records lost, records counted twice, numbers that moved (report and aggregate numbers that
differ from the reference, and for replays from before the replay) and dead letters by reason: all must be 0
except the dead letters, which must equal the malformed records sent; the exit status is 1 otherwise.

    .venv/bin/python benchmarks/faults.py --lanes 3       # the full run (10 trials, 20k visitors, 5,000 bad records)
    .venv/bin/python benchmarks/faults.py --short --lanes 2 --scenarios kills replays malformed   # what CI runs
    .venv/bin/python benchmarks/faults.py --short --scenarios kills replays --seed 3 --json
"""

from __future__ import annotations

import sys
from pathlib import Path

# The checkout this file is in, before any other install of abstream (an editable one may point elsewhere).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import functools
import json
import logging
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from _faults_pipeline import LATENESS_MS, PARTITIONS, Pipeline, experiments_dir, read_store
from _faults_reference import Figures, compare, expected, flatten, moved
from _faults_traffic import Clients, Malformed, Traffic, traffic

from abstream.settings import default_cache_dir
from deploy.kafka_dist import KafkaDist
from deploy.local_kafka import LocalKafka
from producers.assigner import Assigner

SCENARIOS = ("kills", "cluster", "replays", "malformed", "outage")


@dataclass(frozen=True)
class Options:
    visitors: int
    trials: int
    bad: int
    outage_s: float
    span_s: float  # seconds of wall time the clients log the visitors in (their records carry that time)
    seed: int
    timeout_s: float = 600.0


FULL = Options(visitors=20_000, trials=10, bad=5_000, outage_s=60.0, span_s=150.0, seed=1)
SHORT = Options(visitors=400, trials=2, bad=500, outage_s=15.0, span_s=20.0, seed=1)


@dataclass
class Result:
    scenario: str
    lost: int = 0
    double: int = 0
    moved: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)  # by reason
    malformed: int = 0  # malformed records sent
    not_dead_lettered: dict[str, int] = field(default_factory=dict)  # malformed records by kind
    examples: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""  # the scenario did not finish (a lane's process that gave no result)

    @property
    def ok(self) -> bool:
        letters = sum(self.dead_letters.values())
        wrong = self.lost or self.double or self.moved or letters != self.malformed or self.not_dead_lettered
        return not (wrong or self.error)

    def take(self, figures: Figures) -> None:
        self.lost, self.double, self.moved = figures.lost, figures.double, figures.moved
        self.examples = figures.examples

    def line(self) -> str:
        letters = sum(self.dead_letters.values())
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.dead_letters.items())) or "none"
        text = (
            f"{self.scenario:<18} lost {self.lost}  double {self.double}  moved {self.moved}  "
            f"dead letters {letters} of {self.malformed} malformed ({reasons})  [{self.seconds:.0f} s]"
            f"  {'ok' if self.ok else 'FAILED'}"
        )
        details = self.notes + ([f"not dead-lettered: {self.not_dead_lettered}"] if self.not_dead_lettered else [])
        details += [self.error] if self.error else []
        return "\n".join([text, *(f"    {d}" for d in details + self.examples[:8])])


class Suite:
    """Runs scenarios against a broker (given, or a local one started on first use)."""

    def __init__(self, options: Options, workdir: Path, bootstrap: str | None, *, trial: int | None = None) -> None:
        self.options, self.workdir, self.bootstrap = options, workdir, bootstrap
        self.trial = trial  # only this kill trial (1-based), as a lane runs it
        self.assigner = Assigner.from_dir(experiments_dir())
        self.clusters: list[LocalKafka] = []
        self.lines = sys.stdout  # one line per scenario as it ends (stderr when stdout carries the JSON)

    def say(self, text: str) -> None:
        print(text, file=self.lines, flush=True)

    def finish(self, result: Result, started: float) -> list[Result]:
        result.seconds = time.monotonic() - started
        self.say(result.line())
        return [result]

    def close(self) -> None:
        for cluster in self.clusters:
            cluster.down()

    def cluster(self, brokers: int) -> LocalKafka:
        dist = KafkaDist(default_cache_dir())
        directory = self.workdir / f"kafka-{len(self.clusters)}"
        cluster = LocalKafka(directory, dist=dist, brokers=brokers, base_port=0, heap="384m")
        self.clusters.append(cluster)
        cluster.up()
        return cluster

    def shared_bootstrap(self) -> str:
        if self.bootstrap is None:
            state = self.cluster(1).load_state()
            assert state is not None
            self.bootstrap = state.bootstrap
        return self.bootstrap

    # -- one run ---------------------------------------------------------------------------------
    @contextmanager
    def run(self, pipe: Pipeline, seed: int) -> Iterator[tuple[Traffic, Clients]]:
        clients = Clients(pipe.bootstrap, pipe.prefix, pipe.directory / "spool")
        try:
            yield traffic(self.assigner, self.options.visitors, seed, self.options.span_s), clients
        finally:
            clients.close()
            pipe.stop()

    def log_all(
        self,
        pipe: Pipeline,
        flow: Traffic,
        clients: Clients,
        *,
        between: Callable[[int, int], None] | None = None,
        faults: Callable[[], None] | None = None,
    ) -> None:
        """Both phases through the loggers, with ``faults`` running meanwhile in a thread; then settled."""
        pipe.start()
        thread = threading.Thread(target=faults or (lambda: None), name="faults", daemon=True)
        thread.start()
        clients.send(flow.on_time, between=between)
        self._flush(clients)
        pipe.mark("logged")
        thread.join()
        pipe.mark("faults over")
        pipe.wait_jobs(self.options.timeout_s)
        pipe.mark("jobs caught up")
        clients.send(flow.late, late=True)
        self._flush(clients)
        pipe.settle(self.options.timeout_s)

    def _flush(self, clients: Clients) -> None:
        if not clients.flush(self.options.timeout_s):
            raise RuntimeError(f"the loggers could not deliver within {self.options.timeout_s:.0f} s")

    def judge(
        self, result: Result, pipe: Pipeline, clients: Clients, malformed: Malformed | None = None
    ) -> dict[Any, Any]:
        """Fill in the figures of a settled run; returns the store's flattened numbers."""
        logged = {"exposures": clients.logged.exposures, "events": clients.logged.events}
        (pipe.directory / "logged.json").write_text(json.dumps(logged))  # what the reference was computed from
        want = expected(clients.logged, self.assigner, lateness_ms=LATENESS_MS, partitions=PARTITIONS)
        got = flatten(pipe.snapshot())
        result.take(compare(want, got))
        if pending := want.get(("pending",)):
            result.notes.append(f"events still buffered (the watermark has not passed them): {pending}")
        letters = pipe.dead_letters()
        result.dead_letters = dict(Counter(letter["error_kind"] for letter in letters))
        if malformed is not None:
            result.malformed = sum(malformed.sent.values())
            caught = {(r["source_topic"], r["source_partition"], r["source_offset"]) for r in letters}
            missed = Counter(kind for where, kind in malformed.placed.items() if where not in caught)
            result.not_dead_lettered = dict(missed)
            by_source = Counter(r["source_topic"].removeprefix(pipe.prefix) for r in letters)
            result.notes.append(f"dead letters by source topic: {dict(by_source)}")
            result.notes.append(f"malformed sent by kind: {dict(malformed.sent)}")
        pipe.mark("judged")
        result.notes.append("timeline: " + ", ".join(f"{what} {at:.0f} s" for what, at in pipe.timeline))
        if pipe.restarts:
            result.notes.append(f"services found dead and restarted: {pipe.restarts}")
        return got

    # -- scenarios -------------------------------------------------------------------------------
    def kills(self) -> list[Result]:
        results = []
        for trial in range(self.options.trials) if self.trial is None else [self.trial - 1]:
            rng = random.Random(self.options.seed * 1000 + trial)
            result = Result(f"kills {trial + 1}/{self.options.trials}")
            started = time.monotonic()
            pipe = Pipeline(self.shared_bootstrap(), self.workdir)
            with self.run(pipe, self.options.seed + trial) as (flow, clients):
                span = flow.span_s
                # Each kill a random while after the previous restart: a worker that had time to take work.
                gaps = [rng.uniform(1.0, max(3.0, span / 2)) for _ in range(rng.randint(1, 3))]
                plan = [(gap, rng.choice(("jobs", "sink", "both"))) for gap in gaps]
                done: list[str] = []
                self.log_all(pipe, flow, clients, faults=functools.partial(_kill_plan, pipe, plan, rng, done))
                result.notes.append(f"kill -9 while the clients log for {span:.0f} s: " + ", ".join(done))
                self.judge(result, pipe, clients)
            result.seconds = time.monotonic() - started
            results.append(result)
            self.say(result.line())
        return results

    def cluster3(self) -> list[Result]:
        result, started = Result("cluster"), time.monotonic()
        cluster = self.cluster(3)
        state = cluster.load_state()
        assert state is not None
        pipe = Pipeline(state.bootstrap, self.workdir, brokers=3)
        with self.run(pipe, self.options.seed + 100) as (flow, clients):
            span = flow.span_s
            victim = random.Random(self.options.seed).choice(state.nodes)

            def faults() -> None:
                time.sleep(0.4 * span)
                cluster.stop_node(victim, kill=True)
                time.sleep(max(5.0, 0.3 * span))
                cluster.up()

            result.notes.append(f"kill -9 broker {victim.node_id} at {0.4 * span:.1f} s, restarted after")
            self.log_all(pipe, flow, clients, faults=faults)
            self.judge(result, pipe, clients)
        return self.finish(result, started)

    def replays(self) -> list[Result]:
        result, started = Result("replays"), time.monotonic()
        pipe = Pipeline(self.shared_bootstrap(), self.workdir)
        with self.run(pipe, self.options.seed + 200) as (flow, clients):
            self.log_all(pipe, flow, clients)
            before = self.judge(result, pipe, clients)
            pipe.replay_jobs(self.options.timeout_s)
            after_jobs = flatten(pipe.snapshot())
            pipe.replay_sink(self.options.timeout_s)
            after_sink = flatten(pipe.snapshot())
        by_jobs, by_sink = moved(before, after_jobs), moved(after_jobs, after_sink)
        result.notes.append(
            f"off the reference before the replays: {result.moved}; "
            f"moved by the jobs replay: {by_jobs.moved}; by the sink replay: {by_sink.moved}"
        )
        want = expected(clients.logged, self.assigner, lateness_ms=LATENESS_MS, partitions=PARTITIONS)
        for figures in (compare(want, after_jobs), compare(want, after_sink)):
            result.lost, result.double = max(result.lost, figures.lost), max(result.double, figures.double)
        result.moved += by_jobs.moved + by_sink.moved
        result.examples += by_jobs.examples[:4] + by_sink.examples[:4]
        return self.finish(result, started)

    def malformed(self) -> list[Result]:
        result, started = Result("malformed"), time.monotonic()
        pipe = Pipeline(self.shared_bootstrap(), self.workdir)
        bad = Malformed(pipe.bootstrap, pipe.prefix, self.options.seed)
        with self.run(pipe, self.options.seed + 300) as (flow, clients):
            total, count = self.options.bad, len(flow.on_time)

            def between(i: int, at: int) -> None:  # spread evenly over the valid records, at their times
                for n in range(total * i // count, total * (i + 1) // count):
                    bad.send_one(n, at)

            self.log_all(pipe, flow, clients, between=between)
            if not bad.flush(60):
                raise RuntimeError(f"malformed records not delivered: {bad.failed[:3]}")
            self.judge(result, pipe, clients, bad)
        return self.finish(result, started)

    def outage(self) -> list[Result]:
        result, started = Result("outage"), time.monotonic()
        cluster = self.cluster(1)
        state = cluster.load_state()
        assert state is not None
        pipe = Pipeline(state.bootstrap, self.workdir)
        with self.run(pipe, self.options.seed + 400) as (flow, clients):
            down = self.options.outage_s
            span = flow.span_s
            lead = 0.25 * span

            def faults() -> None:
                time.sleep(lead)
                cluster.stop_node(state.nodes[0])
                time.sleep(down)
                cluster.up()

            result.notes.append(f"broker stopped at {lead:.1f} s for {down:.0f} s while the apps log ({span:.0f} s)")
            self.log_all(pipe, flow, clients, faults=faults)
            result.notes.append(f"records the loggers spooled: {clients.spooled()}")
            self.judge(result, pipe, clients)
        return self.finish(result, started)


def _kill_plan(pipe: Pipeline, plan: list[tuple[float, str]], rng: random.Random, done: list[str]) -> None:
    """Kill -9 and restart as planned: (seconds after the previous restart, what); ``done`` says when."""
    started = time.monotonic()
    for gap, what in plan:
        time.sleep(gap)
        names = ("jobs", "sink") if what == "both" else (what,)
        for name in names:
            pipe.kill(name)
        done.append(f"{what} at {time.monotonic() - started:.1f} s")
        time.sleep(rng.uniform(0.2, 3.0))
        pipe.start(*names)


def _in_lanes(suite: Suite, scenarios: list[str], lanes: int) -> list[Result]:
    """The scenarios, each kill trial apart, run by up to ``lanes`` processes of this script at once.

    The suite mostly waits (for loggers pacing, groups joining, consumers catching up), so a few runs share
    the machine well. Those on the shared broker get it from here; cluster and outage start their own.
    """
    options = suite.options
    base = [sys.executable, str(Path(__file__).resolve()), "--json", "--seed", str(options.seed),
            "--visitors", str(options.visitors), "--trials", str(options.trials), "--bad", str(options.bad),
            "--outage-s", str(options.outage_s), "--span-s", str(options.span_s),
            "--timeout-s", str(options.timeout_s)]  # fmt: skip
    units: list[tuple[str, list[str]]] = []  # the longest first
    for name in ("cluster", "outage", "kills", "replays", "malformed"):
        if name not in scenarios:
            continue
        if name == "kills":
            units += [(f"kills {k}/{options.trials}", ["--trial", str(k)]) for k in range(1, options.trials + 1)]
        else:
            units.append((name, []))
    shared = any(name in scenarios for name in ("kills", "replays", "malformed"))
    bootstrap = ["--bootstrap", suite.shared_bootstrap()] if shared else []
    pending = list(enumerate(units))
    running: dict[int, tuple[subprocess.Popen[bytes], TextIO, str, Path]] = {}
    done: dict[int, list[Result]] = {}
    try:
        while pending or running:
            while pending and len(running) < lanes:
                n, (label, extra) = pending.pop(0)
                scenario = label.split()[0]
                directory = suite.workdir / f"lane-{n}"
                directory.mkdir(parents=True, exist_ok=True)
                out = (directory / "results.json").open("w")
                command = [*base, *(bootstrap if scenario in ("kills", "replays", "malformed") else [])]
                command += ["--scenarios", scenario, *extra, "--workdir", str(directory)]
                running[n] = (subprocess.Popen(command, stdout=out, stderr=suite.lines), out, label, directory)
            time.sleep(0.5)
            for n, (proc, written, label, directory) in list(running.items()):
                if proc.poll() is None:
                    continue
                written.close()
                del running[n]
                try:
                    done[n] = [Result(**{k: v for k, v in r.items() if k != "ok"}) for r in json.loads(
                        (directory / "results.json").read_text())]  # fmt: skip
                except ValueError:
                    done[n] = [Result(label, error=f"its process exited {proc.returncode}; logs in {directory}")]
    finally:
        for proc, _, _, _ in running.values():  # stopped: each lane stops what it started
            proc.terminate()
        for proc, written, _, _ in running.values():
            proc.wait(120)
            written.close()
    return [r for n in sorted(done) for r in done[n]]


def _options(args: argparse.Namespace) -> Options:
    base = SHORT if args.short else FULL
    changes = {k: v for k, v in vars(args).items() if k in Options.__dataclass_fields__ and v is not None}
    return Options(**{**asdict(base), **changes})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the CI version: 2 trials, 500 bad records")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--seed", type=int)
    parser.add_argument("--visitors", type=int)
    parser.add_argument("--trials", type=int)
    parser.add_argument("--bad", type=int, help="malformed records of the malformed scenario")
    parser.add_argument("--outage-s", dest="outage_s", type=float)
    parser.add_argument("--span-s", dest="span_s", type=float, help="seconds of wall time the clients log in")
    parser.add_argument("--timeout-s", dest="timeout_s", type=float, help="the longest wait for a catch-up")
    parser.add_argument("--bootstrap", help="an existing broker for scenarios 1, 3, 4 (2 and 5 start their own)")
    parser.add_argument("--workdir", type=Path, help="data dirs and logs (default: a temp dir, removed when all pass)")
    parser.add_argument("--json", action="store_true", help="the results as JSON on stdout (the lines go to stderr)")
    parser.add_argument("--lanes", type=int, default=1, help="scenarios (and kill trials) run by N processes at once")
    parser.add_argument("--trial", type=int, help=argparse.SUPPRESS)  # a lane's: only this kill trial (1-based)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["snapshot"]:  # internal: read a stopped sink's store (chDB: one process per path)
        print(json.dumps(read_store(argv[1], argv[2]), default=str))
        return 0
    # Stopped (a CI timeout): leave through the finally blocks, which stop the processes and brokers started here.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    # librdkafka's own lines (a refused connection every few ms while a broker is down); the loggers' say enough.
    logging.getLogger("abstream.producers.librdkafka").setLevel(logging.CRITICAL)
    args = _parser().parse_args(argv)
    options = _options(args)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="abstream-faults-"))
    suite = Suite(options, workdir, args.bootstrap, trial=args.trial)
    runs = {"kills": suite.kills, "cluster": suite.cluster3, "replays": suite.replays,
            "malformed": suite.malformed, "outage": suite.outage}  # fmt: skip
    if args.json:
        suite.lines = sys.stderr
    suite.say(f"fault suite: {options}; logs in {workdir}")
    results: list[Result] = []
    try:
        if args.lanes > 1:
            results = _in_lanes(suite, args.scenarios, args.lanes)
        else:
            for name in SCENARIOS:
                if name in args.scenarios:
                    results += runs[name]()
    finally:
        suite.close()
    ok = all(r.ok for r in results)
    if args.json:
        print(json.dumps([{**asdict(r), "ok": r.ok} for r in results], indent=2))
    if ok and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
