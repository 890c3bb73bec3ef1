"""The local cluster's pure parts: ids, rendered configs, Java detection."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from abstream.errors import LocalKafkaError
from deploy.kafka_dist import KafkaDist
from deploy.local_kafka import ClusterState, LocalKafka, NodeState, kafka_uuid


def test_cluster_ids_are_kafka_uuids() -> None:
    ids = {kafka_uuid() for _ in range(200)}

    assert len(ids) == 200
    for text in ids:
        assert len(text) == 22 and not text.startswith("-")
        assert len(base64.urlsafe_b64decode(text + "==")) == 16


def test_three_nodes_share_one_static_quorum(tmp_path: Path) -> None:
    cluster = LocalKafka(tmp_path, dist=KafkaDist(tmp_path / "cache"), brokers=3)
    state = ClusterState("abc", [NodeState(i, 9000 + 2 * i, 9001 + 2 * i) for i in (1, 2, 3)])

    configs = [cluster._render_config(state, node).read_text() for node in state.nodes]

    voters = "controller.quorum.voters=1@127.0.0.1:9003,2@127.0.0.1:9005,3@127.0.0.1:9007"
    assert all(voters in c for c in configs)
    assert "node.id=2" in configs[1] and "PLAINTEXT://127.0.0.1:9006" in configs[2]
    assert all("offsets.topic.replication.factor=3" in c and "transaction.state.log.min.isr=2" in c for c in configs)


def test_only_one_or_three_brokers(tmp_path: Path) -> None:
    with pytest.raises(LocalKafkaError, match="1 or 3"):
        LocalKafka(tmp_path, dist=KafkaDist(tmp_path), brokers=2)


def test_the_pinned_kafka_version_is_read_from_the_pom(tmp_path: Path) -> None:
    dist = KafkaDist(tmp_path)

    assert dist.version.startswith("4.")
    assert dist.home.parent == tmp_path / "kafka"


def test_a_missing_maven_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(LocalKafkaError, match=r"mvn.*Maven"):
        KafkaDist(tmp_path).fetch()
