"""Throughput and latency of the stream jobs against a plain confluent-kafka passthrough, in one run.

- ``jobs``: an ``abstream jobs run`` worker (all four jobs: decode, per-unit state in RocksDB with its
  changelog, first exposures, variant switches, assignment re-verification, attribution, outputs);
- ``passthrough``: a plain confluent-kafka consumer → producer copying every record to one topic, the
  least any Kafka job in Python can do, on the same broker and the same input;
- ``faust-passthrough``: the same copy as a Faust agent on the jobs' own app: Faust's floor;
- ``jobs-logic``: no process and no Kafka: the jobs' own per-record work (decode, validate, state,
  the jobs, encode) in a loop over the same input, state in a dict. The ceiling of any implementation
  of these jobs in this Python, whatever framework carries it.

Each round gives every process a fresh set of topics and a subprocess of its own, and measures:

- **throughput**: the process is paused (SIGSTOP) while ``--records`` inputs (exposures, duplicate
  exposures, clicks) are produced, then resumed; records/s from the resume to the last expected output
  arriving: a backlog drained with the machine to itself, as sustained throughput is measured;
- **latency**: inputs paced at ``--rate`` records/s for ``--seconds``; for each exposure that opens a
  first exposure, the time from its produce() to the first-exposure record reaching a consumer (the
  passthroughs: its copy). p50/p99.

Rounds interleave the kinds, so machine noise hits them alike; goals are ratios from the same run. Usage:

    .venv/bin/python benchmarks/bench_jobs.py [--records 100000] [--rate 5000] [--seconds 20] [--rounds 2]

Starts its own 1-broker Kafka on free ports unless ABSTREAM_KAFKA_BOOTSTRAP is set.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from bench_logger import broker
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from deploy.topics import TopicSpec, create_topics
from producers.logger import DEFAULT_PRODUCER_CONFIG
from schemas.hashing import assign
from schemas.serde import AvroSerde, single_object_header
from stream_jobs.app import Preflight, create_app
from stream_jobs.assignment_flags import AssignmentChecker
from stream_jobs.dead_letters import rejection
from stream_jobs.first_exposures import FirstExposureWriter
from stream_jobs.processor import UnitProcessor, dump_state, load_state
from stream_jobs.settings import JobsSettings
from stream_jobs.unit_agent import OUTPUT_RECORDS
from stream_jobs.worker import rules_from

ROOT = Path(__file__).parents[1]
T0 = 1_800_000_000_000
WEIGHTS = {"Moon": 50, "Mars": 50}
SOURCE = {"sdk": "bench", "sdk_version": "1", "app": None, "host": None}
PASSTHROUGH_TOPIC = "passthrough"
KINDS = ("passthrough", "faust-passthrough", "jobs", "jobs-logic")


# -- traffic ------------------------------------------------------------------------------------------
@dataclass
class Traffic:
    """Pre-encoded inputs ``(role, key, value)`` and the outputs the jobs must produce for them."""

    inputs: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    firsts: dict[str, int] = field(default_factory=dict)  # exposure event id -> index in inputs
    conversions: int = 0


def make_traffic(records: int, seed: int, unit_prefix: str) -> Traffic:
    """Units exposed once (20% log the exposure twice), half of them click once within the window."""
    rng, exposures, events = random.Random(seed), AvroSerde("Exposure"), AvroSerde("Event")
    traffic, unit = Traffic(), 0
    while len(traffic.inputs) < records:
        unit_id = f"{unit_prefix}{unit:07d}"
        ts = T0 + unit
        variant = assign("sha256-weights", {"salt": "moon_mars", "weights": WEIGHTS}, unit_id).variant
        first = _exposure(unit_id, str(variant), ts)
        traffic.firsts[first["event_id"]] = len(traffic.inputs)
        traffic.inputs.append(("exposures", unit_id.encode(), exposures.encode(first)))
        if rng.random() < 0.2:
            duplicate = _exposure(unit_id, str(variant), ts + 1_000)
            traffic.inputs.append(("exposures", unit_id.encode(), exposures.encode(duplicate)))
        if rng.random() < 0.5:
            traffic.inputs.append(("events", unit_id.encode(), events.encode(_click(unit_id, ts + 5_000))))
            traffic.conversions += 1
        unit += 1
    return traffic


def _exposure(unit_id: str, variant: str, ts: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "experiment": "moon_mars", "revision": 1, "variant": variant,
        "unit_type": "user_id", "unit_id": unit_id, "scheme": "sha256-weights", "hash_seed": None,
        "hash_version": None, "bucket_position": None, "bucket_index": None, "params": {}, "hash_used": True,
        "sticky_bucket_used": False, "forced": False, "source": SOURCE, "client_ts": ts, "received_ts": None,
        "context": {"platform": "web"}, "sampling_rate": 1.0,
    }  # fmt: skip


def _click(unit_id: str, ts: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "unit_type": "user_id", "unit_id": unit_id, "name": "click", "value": 1.0,
        "ts": ts, "properties": {}, "source": SOURCE,
    }  # fmt: skip


def _definition() -> dict[str, Any]:
    return {
        "key": "moon_mars", "revision": 1, "title": "Moon/Mars", "unit_type": "user_id", "scheme": "sha256-weights",
        "scheme_params": '{"salt": "moon_mars", "weights": {"Moon": 50, "Mars": 50}}',
        "variants": [{"name": n, "weight": w} for n, w in WEIGHTS.items()], "fallback_variant": "Moon",
        "state": "active", "rollout_variant": None, "start_ts": None, "end_ts": None,
        "attribution_window_ms": 3_600_000, "dedupe": "first_ever", "dedupe_window_ms": None, "owner": None,
        "published_ts": T0, "definition_hash": "0" * 64,
    }  # fmt: skip


# -- the two processes under test -----------------------------------------------------------------
def passthrough(bootstrap: str, prefix: str) -> None:
    """Copy exposures and events to one topic until SIGTERM: consume in batches, produce, poll(0)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"{prefix}passthrough", "auto.offset.reset": "earliest"}
    )
    producer = Producer({**DEFAULT_PRODUCER_CONFIG, "bootstrap.servers": bootstrap})
    consumer.subscribe([f"{prefix}exposures", f"{prefix}events"])
    out = f"{prefix}{PASSTHROUGH_TOPIC}"
    while not stop.is_set():
        for message in consumer.consume(500, 0.01):
            if message.error() is None:
                producer.produce(out, message.value(), message.key())
        producer.poll(0)
    producer.flush(30)
    consumer.close()


def faust_passthrough(bootstrap: str, prefix: str, data_dir: str) -> None:
    """The same copy as a Faust agent, on the jobs' app (batches, producer): the framework's own floor."""
    settings = JobsSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix, data_dir=Path(data_dir), app_id=prefix)
    app = create_app(settings, Preflight(partitions=6, brokers=1))
    source = app.topic(f"{prefix}exposures", f"{prefix}events", key_serializer="raw", value_serializer="raw")
    out = f"{prefix}{PASSTHROUGH_TOPIC}"

    @app.agent(source)
    async def copy(stream: Any) -> None:
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            for event in batch:
                await app.producer.send(out, event.message.key, event.message.value, None, None, None)

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.spinner = None
    worker.execute_from_commandline()


def jobs_logic(traffic: Traffic) -> float:
    """Records per second of the jobs' own per-record work alone, state in a dict: no Kafka, no Faust.

    The steps of ``stream_jobs.unit_agent`` for one record, with the real serdes, processor and
    assignment checker; the watermark trails the record's time by the default allowed lateness.
    """
    definition = _definition()

    class Definitions:  # what the checker and the rules read of a DefinitionFollower
        def get(self, key: str, revision: int) -> dict[str, Any] | None:
            return definition if (key, revision) == (definition["key"], definition["revision"]) else None

        def latest(self, key: str) -> dict[str, Any] | None:
            return self.get(key, 1)

        def revisions(self, key: str) -> list[int]:
            return [1] if key == definition["key"] else []

    definitions: Any = Definitions()
    processor = UnitProcessor(
        rules=rules_from(definitions), check_assignment=AssignmentChecker(definitions).check,
        allowed_lateness_ms=60_000, state_grace_ms=86_400_000, now_ms=lambda: T0,
    )  # fmt: skip
    decoders = {"exposures": ("Exposure", AvroSerde("Exposure")), "events": ("Event", AvroSerde("Event"))}
    encoders = {role: AvroSerde(name) for role, name in OUTPUT_RECORDS.items()}
    first_exposures = FirstExposureWriter()
    store: dict[bytes, bytes] = {}
    start = time.perf_counter()
    for offset, (role, key, value) in enumerate(traffic.inputs):
        name, serde = decoders[role]
        record = serde.decode(value, topic=role, partition=0, offset=offset)
        if rejection(name, record, key) is not None:
            raise RuntimeError(f"the benchmark's own input is invalid: {record}")
        state = load_state(store.get(key))
        watermark = record["client_ts" if name == "Exposure" else "ts"] - 60_000
        if name == "Exposure":
            outputs = processor.on_exposure(state, record, offset, watermark, appended_ms=T0)
        else:
            outputs = processor.on_event(state, record, offset, watermark)
        for output in outputs:
            if output.role == "first_exposures":
                first_exposures.encode(output.record, value)
            elif output.role in encoders:  # not SETTLED, which goes to no topic
                encoders[output.role].encode(output.record)
        store[key] = dump_state(state)
    return len(traffic.inputs) / (time.perf_counter() - start)


class System:
    """One process under test on its own topics: start, feed, watch its outputs, stop."""

    def __init__(self, kind: str, bootstrap: str, workdir: Path) -> None:
        self.kind, self.bootstrap = kind, bootstrap
        self.prefix = f"b{uuid.uuid4().hex[:8]}."
        self.workdir = workdir / self.prefix.rstrip(".")
        admin = AdminClient({"bootstrap.servers": bootstrap})
        create_topics(admin, TopicSpec.load().resolve(prefix=self.prefix, brokers=1))
        admin.create_topics([NewTopic(f"{self.prefix}{PASSTHROUGH_TOPIC}", 6, 1)])[
            f"{self.prefix}{PASSTHROUGH_TOPIC}"
        ].result()
        self.producer = Producer({**DEFAULT_PRODUCER_CONFIG, "bootstrap.servers": bootstrap})
        self.producer.produce(
            f"{self.prefix}experiment-definitions", AvroSerde("ExperimentDefinition").encode(_definition()), b"mm:1"
        )
        self.producer.flush(30)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def outputs(self) -> list[str]:
        if self.kind != "jobs":
            return [f"{self.prefix}{PASSTHROUGH_TOPIC}"]
        return [f"{self.prefix}first-exposures", f"{self.prefix}attributed-conversions"]

    def start(self) -> None:
        self.workdir.mkdir(parents=True)
        log = (self.workdir / "process.log").open("wb")
        if self.kind == "passthrough":
            command = [sys.executable, __file__, "--passthrough", self.bootstrap, self.prefix]
        elif self.kind == "faust-passthrough":
            command = [sys.executable, __file__, "--faust-passthrough", self.bootstrap, self.prefix, str(self.workdir)]
        else:
            command = [sys.executable, "-m", "abstream", "jobs", "run", "--loglevel", "warning"]
        env = {
            **os.environ, "ABSTREAM_KAFKA_BOOTSTRAP": self.bootstrap, "ABSTREAM_TOPIC_PREFIX": self.prefix,
            "ABSTREAM_DATA_DIR": str(self.workdir), "ABSTREAM_APP_ID": f"bench-{self.prefix.rstrip('.')}",
        }  # fmt: skip
        self.process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self) -> str:
        return (self.workdir / "process.log").read_text(errors="replace")[-3000:]


@contextmanager
def watching(system: System) -> Iterator[OutputWatch]:
    watch = OutputWatch(system)
    watch.start()
    try:
        yield watch
    finally:
        watch.stop.set()
        watch.join()


class OutputWatch(threading.Thread):
    """A consumer thread on the outputs: when each record arrived (wall clock), and how many."""

    def __init__(self, system: System) -> None:
        super().__init__(daemon=True)
        self.system, self.stop = system, threading.Event()
        self.arrivals: list[tuple[float, bytes]] = []
        self.assigned = threading.Event()
        self.consumer = Consumer(
            {
                "bootstrap.servers": system.bootstrap,
                "group.id": f"watch-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",  # the topics are new: every output
                "fetch.wait.max.ms": 5,
                "enable.auto.commit": False,
            }
        )

    def run(self) -> None:
        self.consumer.subscribe(self.system.outputs, on_assign=lambda *_: self.assigned.set())
        while not self.stop.is_set():
            messages = self.consumer.consume(1000, 0.002)
            now = time.time()
            self.arrivals += [(now, m.value()) for m in messages if m.error() is None]
        self.consumer.close()

    def wait_for(self, count: int, timeout: float) -> float:
        """The arrival time of the ``count``-th output; raises when the process falls over or times out."""
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count:
            process = self.system.process
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{self.system.kind} exited:\n{self.system.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.system.kind}: {len(self.arrivals)} of {count} outputs after {timeout} s:\n"
                    + self.system.log_tail()
                )
            time.sleep(0.01)
        return self.arrivals[count - 1][0]


# -- measurements ---------------------------------------------------------------------------------------
def _expected_outputs(system: System, traffic: Traffic) -> int:
    return len(traffic.inputs) if system.kind != "jobs" else len(traffic.firsts) + traffic.conversions


def warm_up(system: System, watch: OutputWatch) -> None:
    """Wait until the process is up and assigned: one exposure in, its output out."""
    if not watch.assigned.wait(60):
        raise RuntimeError("the output watcher was never assigned its partitions")
    traffic = make_traffic(1, seed=0, unit_prefix=f"warm-{uuid.uuid4().hex[:6]}-")
    _produce(system, traffic.inputs)
    watch.wait_for(1, timeout=180)
    watch.arrivals.clear()


def throughput(system: System, watch: OutputWatch, traffic: Traffic) -> float:
    """Records per second draining a backlog: the process is paused while all inputs are produced."""
    assert system.process is not None
    system.process.send_signal(signal.SIGSTOP)
    try:
        _produce(system, traffic.inputs)
    finally:
        system.process.send_signal(signal.SIGCONT)
    start = time.time()
    end = watch.wait_for(_expected_outputs(system, traffic), timeout=600)
    watch.arrivals.clear()
    return len(traffic.inputs) / (end - start)


def latency(system: System, watch: OutputWatch, traffic: Traffic, rate: int) -> tuple[float, float]:
    """p50/p99 ms from an opening exposure's produce() to its first exposure (or copy) arriving."""
    serde, sent = AvroSerde("Exposure"), {}
    step, start = 0.01, time.perf_counter()
    per_step = max(1, int(rate * step))
    for i in range(0, len(traffic.inputs), per_step):
        delay = start + (i // per_step) * step - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        now = time.time()
        for role, key, value in traffic.inputs[i : i + per_step]:
            system.producer.produce(f"{system.prefix}{role}", value, key)
            if role == "exposures":
                sent[value] = now
        system.producer.poll(0)
    system.producer.flush(30)
    watch.wait_for(_expected_outputs(system, traffic), timeout=120)
    delays = _latencies(system.kind, serde, watch.arrivals, sent, set(traffic.firsts))
    watch.arrivals.clear()
    delays.sort()
    return delays[len(delays) // 2] * 1000, delays[int(len(delays) * 0.99)] * 1000


def _latencies(
    kind: str, serde: AvroSerde, arrivals: list[tuple[float, bytes]], sent: dict[bytes, float], firsts: set[str]
) -> list[float]:
    if kind != "jobs":
        return [t - sent[v] for t, v in arrivals if v in sent and serde.decode(v)["event_id"] in firsts]
    by_id = {serde.decode(v)["event_id"]: t for v, t in sent.items()}
    first_exposure = AvroSerde("FirstExposure")
    header = single_object_header(first_exposure.version)
    return [t - by_id[first_exposure.decode(v)["event_id"]] for t, v in arrivals if v.startswith(header)]


def _produce(system: System, inputs: list[tuple[str, bytes, bytes]]) -> None:
    for role, key, value in inputs:
        while True:
            try:
                system.producer.produce(f"{system.prefix}{role}", value, key)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                system.producer.poll(0.05)
        system.producer.poll(0)
    system.producer.flush(60)


@dataclass
class Figures:
    throughput: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)


def measure(kind: str, bootstrap: str, workdir: Path, bulk: Traffic, paced: Traffic, rate: int) -> tuple[float, ...]:
    """One round of one kind: records/s, then p50 and p99 ms at ``rate`` (none for ``jobs-logic``)."""
    if kind == "jobs-logic":
        return jobs_logic(bulk), float("nan"), float("nan")
    system = System(kind, bootstrap, workdir)
    system.start()
    try:
        with watching(system) as watch:
            warm_up(system, watch)
            records_per_s = throughput(system, watch, bulk)
            return (records_per_s, *latency(system, watch, paced, rate))
    finally:
        system.stop()


def run(records: int, rate: int, seconds: int, rounds: int, kinds: list[str]) -> dict[str, Figures]:
    results = {kind: Figures() for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as bootstrap:
        for kind in kinds:  # a fresh broker runs each client's request paths cold (JIT): one round unmeasured
            measure(
                kind, bootstrap, Path(tmp), make_traffic(records // 5, 99, "w-"), make_traffic(rate, 99, "v-"), rate
            )
        for n in range(rounds):
            for kind, figures in results.items():
                bulk = make_traffic(records, seed=n, unit_prefix=f"t{n}-")
                paced = make_traffic(rate * seconds, seed=n, unit_prefix=f"l{n}-")
                records_per_s, p50, p99 = measure(kind, bootstrap, Path(tmp), bulk, paced, rate)
                figures.throughput.append(records_per_s)
                figures.p50.append(p50)
                figures.p99.append(p99)
                timing = f", latency at {rate}/s p50 {p50:.1f} ms p99 {p99:.1f} ms" if p99 == p99 else ""
                print(f"round {n + 1} {kind:>17}: {records_per_s:>9,.0f} records/s{timing}", flush=True)
    return results


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--passthrough":
        passthrough(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) == 5 and sys.argv[1] == "--faust-passthrough":
        faust_passthrough(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000, help="inputs of the throughput run")
    parser.add_argument("--rate", type=int, default=5_000, help="records/s of the latency run")
    parser.add_argument("--seconds", type=int, default=20, help="length of the latency run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=KINDS, help="measure one of them alone (no ratios)")
    args = parser.parse_args()
    results = run(args.records, args.rate, args.seconds, args.rounds, [args.only] if args.only else list(KINDS))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'':>18}{'records/s':>12}{'p50 ms':>9}{'p99 ms':>9}   (median of {args.rounds} rounds)")
    for kind, f in results.items():
        med = statistics.median
        print(f"{kind:>18}{med(f.throughput):>12,.0f}{med(f.p50):>9.1f}{med(f.p99):>9.1f}")
    if args.only:
        return
    median = {kind: statistics.median(f.throughput) for kind, f in results.items()}
    ratio = median["jobs"] / median["passthrough"]
    p99 = statistics.median(results["jobs"].p99)
    print(f"jobs / passthrough throughput: {ratio:.2f}x")
    print(f"jobs / faust-passthrough throughput: {median['jobs'] / median['faust-passthrough']:.2f}x")
    print(f"jobs-logic (the ceiling, no I/O) / passthrough: {median['jobs-logic'] / median['passthrough']:.2f}x")
    goals = {"throughput >= 0.5x passthrough": ratio >= 0.5, f"p99 <= 100 ms at {args.rate}/s": p99 <= 100}
    print("goals: " + ", ".join(f"{goal} {'met' if ok else 'MISSED'}" for goal, ok in goals.items()))


if __name__ == "__main__":
    main()
