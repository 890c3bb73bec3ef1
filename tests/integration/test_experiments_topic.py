"""Definitions on a real broker: publish and read back every revision, refusals, and assignments verified end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from deploy.definitions_topic import DefinitionStore, definitions_topic, publish_definitions
from deploy.topics import TopicSpec, create_topics
from producers.assigner import Assigner
from producers.logger import ExposureLogger
from schemas.definitions import load_definitions
from schemas.serde import AvroSerde
from schemas.verification import verify
from tests.integration.test_kafka import consume_all
from tests.unit.experiments.base import BASE, definition, write

pytestmark = pytest.mark.integration


@pytest.fixture
def topics(kafka_bootstrap: str, topic_prefix: str) -> str:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    create_topics(admin, TopicSpec.load().resolve(prefix=topic_prefix, brokers=1))
    return definitions_topic(topic_prefix)


def _cli(bootstrap: str, prefix: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ABSTREAM_KAFKA_BOOTSTRAP": bootstrap, "ABSTREAM_TOPIC_PREFIX": prefix}
    return subprocess.run(
        [sys.executable, "-m", "abstream", *args],
        env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_published_revisions_read_back_with_list_and_show(
    kafka_bootstrap: str, topic_prefix: str, topics: str, tmp_path: Path
) -> None:
    write(tmp_path, "checkout.yaml", BASE)
    first = _cli(kafka_bootstrap, topic_prefix, "experiments", "publish", str(tmp_path))
    again = _cli(kafka_bootstrap, topic_prefix, "experiments", "publish", str(tmp_path))
    write(
        tmp_path,
        "checkout.yaml",
        {**BASE, "revision": 2, "variants": [{"name": "A", "weight": 9}, {"name": "B", "weight": 1}]},
    )
    second = _cli(kafka_bootstrap, topic_prefix, "experiments", "publish", str(tmp_path))
    shipped = _cli(kafka_bootstrap, topic_prefix, "experiments", "publish")

    assert first.returncode == 0 and f"published checkout:1 to {topics}" in first.stdout, first.stderr
    assert again.returncode == 0 and "nothing to publish" in again.stdout, again.stderr
    assert second.returncode == 0 and "published checkout:2" in second.stdout, second.stderr
    assert "reassigning: variants.A.weight: 50 → 9 (the split moves)" in second.stdout
    assert (
        shipped.returncode == 0
        and "published moon_mars:1" in shipped.stdout
        and "published white_gold_btn:1" in shipped.stdout
    )

    listed = _cli(kafka_bootstrap, topic_prefix, "experiments", "list")
    assert listed.returncode == 0, listed.stderr
    assert "checkout  r2  active  sha256-weights  A 9 / B 1  (revisions 1, 2)" in listed.stdout
    assert "moon_mars  r1  active  sha256-weights  Moon 50 / Mars 50  (revisions 1)" in listed.stdout
    for revision, weights in ((1, [50, 50]), (2, [9, 1])):
        shown = json.loads(
            _cli(kafka_bootstrap, topic_prefix, "experiments", "show", "checkout", "--revision", str(revision)).stdout
        )
        assert (shown["revision"], [v["weight"] for v in shown["variants"]]) == (revision, weights)
    latest = json.loads(_cli(kafka_bootstrap, topic_prefix, "experiments", "show", "checkout").stdout)
    assert latest["revision"] == 2 and latest["definition_hash"] == load_definitions(tmp_path)["checkout"].digest()

    raw = consume_all(kafka_bootstrap, topics, expected=4)
    assert sorted(m.key() for m in raw) == [b"checkout:1", b"checkout:2", b"moon_mars:1", b"white_gold_btn:1"]
    assert all(m.value()[:2] == b"\xc3\x01" for m in raw)  # Avro single-object encoding


def test_a_reassigning_change_without_a_new_revision_is_refused(
    kafka_bootstrap: str, topic_prefix: str, topics: str, tmp_path: Path
) -> None:
    publish_definitions([definition()], bootstrap_servers=kafka_bootstrap, topic=topics)
    write(tmp_path, "checkout.yaml", {**BASE, "scheme_params": {"salt": "new-salt"}})

    refused = _cli(kafka_bootstrap, topic_prefix, "experiments", "publish", str(tmp_path))
    checked = _cli(kafka_bootstrap, topic_prefix, "experiments", "validate", str(tmp_path), "--published")
    write(tmp_path, "checkout.yaml", {**BASE, "title": "Renamed"})
    cosmetic = _cli(kafka_bootstrap, topic_prefix, "experiments", "publish", str(tmp_path))

    assert refused.returncode == 1
    assert "error: revision must be bumped: scheme_params.salt: 'checkout' → 'new-salt'" in refused.stderr
    assert "nothing published" in refused.stderr
    assert checked.returncode == 1 and "revision must be bumped" in checked.stderr
    assert cosmetic.returncode == 1 and "a published revision never changes: bump the revision" in cosmetic.stderr
    store = DefinitionStore.read(bootstrap_servers=kafka_bootstrap, topic=topics)
    assert list(store.records) == [("checkout", 1)]
    assert store.get("checkout", 1).definition_hash == definition().digest()  # type: ignore[union-attr]


def _exposures(bootstrap: str, topic: str, expected: int) -> list[dict[str, Any]]:
    serde = AvroSerde("Exposure")
    return [serde.decode(m.value()) for m in consume_all(bootstrap, topic, expected, timeout=60)]


def test_assigned_exposures_arrive_and_verify_clean_while_a_wrong_variant_is_flagged(
    kafka_bootstrap: str, topic_prefix: str, topics: str, tmp_path: Path
) -> None:
    revision_3 = definition(revision=3, scheme_params={"salt": "checkout-r3"})
    publish_definitions([revision_3], bootstrap_servers=kafka_bootstrap, topic=topics)
    store = DefinitionStore.read(bootstrap_servers=kafka_bootstrap, topic=topics)
    with ExposureLogger(
        bootstrap_servers=kafka_bootstrap, spool_dir=tmp_path / "spool", topic_prefix=topic_prefix
    ) as logger:
        assigner = Assigner.from_store(store, logger=logger)
        results = {r.event_id: r for r in (assigner.assign("checkout", f"user-{i}") for i in range(200))}
        user_0 = next(iter(results.values()))
        wrong_id = logger.log_exposure(
            experiment="checkout", revision=3, variant="A" if user_0.variant == "B" else "B", unit_id="user-0",
            scheme="sha256-weights", hash_seed="checkout-r3", bucket_index=user_0.bucket,
        )  # fmt: skip
        assert logger.flush(30)

    exposures = _exposures(kafka_bootstrap, f"{topic_prefix}exposures", 201)

    assert len(exposures) == 201
    logged = {e["event_id"]: e for e in exposures}
    for event_id, result in results.items():
        exposure = logged[event_id]
        assert (exposure["revision"], exposure["variant"], exposure["scheme"]) == (3, result.variant, "sha256-weights")
        assert (exposure["hash_seed"], exposure["bucket_index"]) == ("checkout-r3", result.bucket)
        assert verify(exposure, store.get("checkout", 3), known_revisions=[3]) is None
    flag = verify(logged[wrong_id], store.get("checkout", 3), known_revisions=[3])
    assert flag is not None and flag.reason == "variant_mismatch" and flag.expected_variant == user_0.variant

    lines = "\n".join(json.dumps({"schema": "io.abstream.Exposure", "version": 1, "record": e}) for e in exposures)
    verified = _cli(kafka_bootstrap, topic_prefix, "verify", "--published", stdin=lines)
    assert verified.returncode == 0, verified.stderr
    assert [(f["event_id"], f["reason"]) for f in map(json.loads, verified.stdout.splitlines())] == [
        (wrong_id, "variant_mismatch")
    ]
