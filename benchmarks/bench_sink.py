"""Throughput of the sink (records per second, Kafka to chDB) against its two halves, measured in one run.

- ``sink``: ``SinkWorker`` end to end: consume, decode, ledger, insert with token (materialized views
  included), commit;
- ``consume + decode``: a bare confluent-kafka consumer reading the same topic and decoding each record;
- ``insert``: clickhouse-connect inserting the same rows, pre-built, in batches of the same size.

Rounds are interleaved (a new consumer group and a fresh database each), so noise hits all three alike.
Usage:

    .venv/bin/python benchmarks/bench_sink.py [--records 100000] [--rounds 3] [--batch 5000]

Starts its own 1-broker Kafka and chDB store in a temp dir unless ABSTREAM_KAFKA_BOOTSTRAP is set.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench_logger import broker
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from deploy.topics import TopicSpec, create_topics
from schemas.models import FirstExposure
from schemas.serde import AvroSerde
from sinks.clickhouse import connect
from sinks.migrator import migrate
from sinks.service import build_worker
from sinks.tables import TABLES


def exposure(i: int) -> dict[str, Any]:
    return FirstExposure(
        event_id=uuid.uuid4(), experiment="bench", revision=1, variant="AB"[i % 2], unit_type="user_id",
        unit_id=f"u{i}", scheme="sha256-weights", client_ts=1_767_225_600_000 + i, context={"platform": "web"},
    ).to_avro()  # fmt: skip


def produce(bootstrap: str, prefix: str, records: int) -> list[dict[str, Any]]:
    exposures = [exposure(i) for i in range(records)]
    serde, producer = AvroSerde("FirstExposure"), Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for record in exposures:
        producer.produce(f"{prefix}first-exposures", key=record["unit_id"].encode(), value=serde.encode(record))
        producer.poll(0)
    producer.flush(60)
    return exposures


def run_sink(bootstrap: str, prefix: str, client: Any, batch: int) -> float:
    worker = build_worker(
        bootstrap=bootstrap, topic_prefix=prefix, group=f"b-{uuid.uuid4()}", client=client, max_rows=batch, interval=0.5
    )
    start = time.perf_counter()
    worker.run(stop_when_idle=True)
    return time.perf_counter() - start


def run_consume(bootstrap: str, prefix: str, records: int) -> float:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"b-{uuid.uuid4()}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([f"{prefix}first-exposures"])
    serde, seen, start = AvroSerde("FirstExposure"), 0, time.perf_counter()
    while seen < records:
        for message in consumer.consume(5000, 0.5):
            if message.error() is None:
                serde.decode(message.value())
                seen += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    return elapsed


def run_insert(client: Any, exposures: list[dict[str, Any]], batch: int) -> float:
    spec = TABLES["first_exposures"]
    rows = [spec.row(record, 0, offset) for offset, record in enumerate(exposures)]
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        client.insert(spec.table, rows[i : i + batch], column_names=spec.insert_columns, settings={"async_insert": 0})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as bootstrap:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        create_topics(AdminClient({"bootstrap.servers": bootstrap}), TopicSpec.load().resolve(prefix=prefix, brokers=1))
        exposures = produce(bootstrap, prefix, args.records)
        url, times = f"chdb://{tmp}/ch", {"sink": [], "consume + decode": [], "insert": []}
        for n in range(args.rounds):
            sink_db, insert_db = connect(url, database=f"sink{n}"), connect(url, database=f"insert{n}")
            migrate(sink_db), migrate(insert_db)
            times["sink"].append(run_sink(bootstrap, prefix, sink_db, args.batch))
            times["consume + decode"].append(run_consume(bootstrap, prefix, args.records))
            times["insert"].append(run_insert(insert_db, exposures, args.batch))
    for name, seconds in times.items():
        print(f"{name:>18}: {args.records / statistics.median(seconds):>10,.0f} records/s (median of {args.rounds})")


if __name__ == "__main__":
    main()
