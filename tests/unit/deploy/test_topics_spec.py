"""The topic spec: defaults, ``auto`` values and co-partitioning are checked before any broker is asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from abstream.errors import ConfigError
from deploy.topics import TopicSpec


def test_auto_replication_follows_the_cluster_size() -> None:
    spec = TopicSpec.load()

    single = {t.role: t for t in spec.resolve(prefix="abstream.", brokers=1)}
    triple = {t.role: t for t in spec.resolve(prefix="abstream.", brokers=3)}

    assert single["exposures"].replication_factor == 1
    assert single["exposures"].config["min.insync.replicas"] == "1"
    assert triple["exposures"].replication_factor == 3
    assert triple["exposures"].config["min.insync.replicas"] == "2"
    assert triple["exposures"].name == "abstream.exposures"
    assert triple["experiment_definitions"].config["cleanup.policy"] == "compact"


def test_the_shipped_spec_co_partitions_exposures_and_events() -> None:
    spec = TopicSpec.load()

    assert ["exposures", "events", "first_exposures"] in spec.co_partitioned
    assert spec.partitions_of("exposures") == spec.partitions_of("events")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topics.yaml"
    path.write_text(text)
    return path


def test_co_partitioned_topics_with_different_counts_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "co_partitioned: [[a, b]]\ntopics:\n  a: {partitions: 6}\n  b: {partitions: 3}\n")

    with pytest.raises(ConfigError, match=r"same partition count.*'a': 6, 'b': 3") as info:
        TopicSpec.load(path)
    assert str(path) in str(info.value)


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "topics:\n  a: {partitons: 6}\n")

    with pytest.raises(ConfigError, match="partitons"):
        TopicSpec.load(path)


def test_replication_beyond_the_cluster_is_refused(tmp_path: Path) -> None:
    spec = TopicSpec.load(_write(tmp_path, "topics:\n  a: {replication_factor: 3}\n"))

    with pytest.raises(ConfigError, match="replication_factor 3 exceeds the 1 broker"):
        spec.resolve(prefix="", brokers=1)
