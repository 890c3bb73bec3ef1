"""Each SDK adapter with its real SDK, through a real ExposureLogger, onto the real broker.

The records are read back from the topic and decoded; for the hashing SDKs the logged variant must be
what ``schemas.hashing.assign`` recomputes from the logged hash inputs, which is what the verifier does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import eppo_client
import pytest
from confluent_kafka.admin import AdminClient
from eppo_client import ClientConfig, Configuration
from growthbook import GrowthBook
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from deploy.topics import TopicSpec, create_topics
from producers.adapters.eppo import EppoExposures
from producers.adapters.growthbook import GrowthBookExposures
from producers.adapters.openfeature import OpenFeatureExposures
from producers.adapters.planout import KafkaLoggedExperiment
from producers.logger import ExposureLogger, Source
from schemas.hashing import assign
from schemas.serde import AvroSerde
from tests.integration.test_kafka import consume_all

pytestmark = pytest.mark.integration

Read = Callable[[str, int], list[dict[str, Any]]]


@pytest.fixture
def kafka_logger(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[tuple[ExposureLogger, Read]]:
    """A logger on fresh topics, and ``read(kind, n)``: flush, then the n records of that topic, decoded."""
    create_topics(
        AdminClient({"bootstrap.servers": kafka_bootstrap}), TopicSpec.load().resolve(prefix=topic_prefix, brokers=1)
    )
    logger = ExposureLogger(
        bootstrap_servers=kafka_bootstrap, spool_dir=tmp_path / "spool", topic_prefix=topic_prefix,
        source=Source(sdk="adapter-test"),
    )  # fmt: skip

    def read(kind: str, n: int) -> list[dict[str, Any]]:
        assert logger.flush(30)
        serde = AvroSerde("Exposure" if kind == "exposures" else "Event")
        messages = consume_all(kafka_bootstrap, f"{topic_prefix}{kind}", n)
        assert len(messages) == n
        return [serde.decode(m.value()) for m in messages]

    with logger:
        yield logger, read


def test_planout_exposures_and_events_reach_kafka(kafka_logger: tuple[ExposureLogger, Read]) -> None:
    from planout.ops.random import WeightedChoice  # after the adapter: it makes planout importable on 3.11

    logger, read = kafka_logger
    choices, weights = ["button", "link", "control"], [1, 1, 2]

    class SampleEvent(KafkaLoggedExperiment):
        unit_input, variant_param, revision, auto_exposure_log = "userid", "variant", 2, False

        def setup(self) -> None:
            self.salt = "sample-event-2024"

        def assign(self, params: Any, userid: Any) -> None:
            params.variant = WeightedChoice(choices=choices, weights=weights, unit=userid)

    SampleEvent.use_sink(logger)
    shown = {}
    for userid in range(40):
        exp = SampleEvent(userid=userid)
        shown[str(userid)] = exp.get("variant")  # auto exposure is off: nothing logged yet
        exp.log_exposure()
    SampleEvent(userid=0).log_event("cta_click", {"position": "top"})

    records = read("exposures", 40)
    definition = {"param": "variant", "op": "WeightedChoice", "choices": choices, "weights": weights}
    for r in records:
        assert (r["experiment"], r["revision"], r["scheme"], r["unit_type"]) == ("SampleEvent", 2, "planout", "userid")
        assert r["variant"] == shown[r["unit_id"]] == r["params"]["variant"]
        assert (
            assign("planout", {**definition, "experiment_salt": r["hash_seed"]}, r["unit_id"]).variant == r["variant"]
        )
        assert r["hash_seed"] == "sample-event-2024" and "planout_checksum" in r["context"]
    [event] = read("events", 1)
    assert (event["name"], event["unit_id"], event["properties"]["position"]) == ("cta_click", "0", "top")
    assert SampleEvent.exposure_stats().logged == 41


def test_growthbook_exposures_reach_kafka(kafka_logger: tuple[ExposureLogger, Read]) -> None:
    logger, read = kafka_logger
    rule = {"key": "checkout", "variations": ["old", "new"], "weights": [0.3, 0.7], "seed": "ck-2", "hashVersion": 2,
            "meta": [{"key": "0", "name": "Control"}, {"key": "1", "name": "Treatment"}], "phase": "2"}  # fmt: skip
    callback = GrowthBookExposures(logger, context_attributes=["platform"])
    for i in range(40):
        gb = GrowthBook(attributes={"id": f"u-{i}", "platform": "ios"}, on_experiment_viewed=callback,
                        features={"checkout": {"defaultValue": "old", "rules": [rule]}})  # fmt: skip
        gb.get_feature_value("checkout", "old")

    records = read("exposures", 40)
    definition = {"key": "checkout", "variations": ["Control", "Treatment"], "weights": [0.3, 0.7], "seed": "ck-2",
                  "hashVersion": 2}  # fmt: skip
    for r in records:
        expected = assign("growthbook", definition, r["unit_id"])
        assert (r["variant"], r["bucket_position"]) == (expected.variant, expected.bucket)
        assert (r["experiment"], r["revision"], r["scheme"], r["unit_type"]) == ("checkout", 2, "growthbook", "user_id")
        assert (r["hash_seed"], r["hash_version"], r["hash_used"], r["sticky_bucket_used"]) == ("ck-2", 2, True, False)
        assert r["context"] == {"platform": "ios", "hash_attribute": "id", "feature_id": "checkout"}
    assert {r["variant"] for r in records} == {"Control", "Treatment"}


def test_eppo_assignments_reach_kafka(kafka_logger: tuple[ExposureLogger, Read]) -> None:
    logger, read = kafka_logger
    split = [{"salt": "ck-split", "ranges": [{"start": 0, "end": 5000}]}]
    flag = {
        "key": "checkout", "enabled": True, "variationType": "STRING", "totalShards": 10_000,
        "variations": {k: {"key": k, "value": k} for k in ("control", "treatment")},
        "allocations": [{"key": "launch", "doLog": True, "splits": [
            {"variationKey": "control", "shards": split, "extraLogging": {"salt": "ck-split"}},
            {"variationKey": "treatment", "shards": []},
        ]}],
    }  # fmt: skip
    ufc = {"createdAt": "2024-04-17T19:40:53.716Z", "format": "SERVER", "environment": {"name": "Test"},
           "flags": {"checkout": flag}}  # fmt: skip
    exposures = EppoExposures(logger, revisions={"checkout": 5}, unit_type="account_id")
    client = eppo_client.init(ClientConfig(
        api_key="offline", assignment_logger=exposures, poll_interval_seconds=None,
        initial_configuration=Configuration(flags_configuration=json.dumps(ufc).encode()),
    ))  # fmt: skip
    try:
        served = {
            f"acct-{i}": client.get_string_assignment("checkout", f"acct-{i}", {"tier": "gold"}, "-") for i in range(40)
        }
    finally:
        client.shutdown()

    records = read("exposures", 40)
    for r in records:
        assert r["variant"] == served[r["unit_id"]] == assign("eppo", flag, r["unit_id"]).variant
        assert (r["experiment"], r["revision"], r["scheme"], r["unit_type"]) == (
            "checkout-launch",
            5,
            "eppo",
            "account_id",
        )
        assert r["hash_seed"] == ("ck-split" if r["variant"] == "control" else None)
        assert r["context"] == {"tier": "gold"} and r["params"]["allocation"] == "launch"
    assert {r["variant"] for r in records} == {"control", "treatment"}


def test_openfeature_evaluations_with_a_variant_reach_kafka(kafka_logger: tuple[ExposureLogger, Read]) -> None:
    logger, read = kafka_logger
    metadata: dict[str, bool | int | float | str] = {"experiment": "banner_v3", "revision": 3}
    flags = {"banner": InMemoryFlag("on", {"on": True, "off": False}, metadata)}
    domain = f"adapters-{uuid.uuid4().hex[:8]}"
    api.set_provider(InMemoryProvider(flags), domain)
    hook = OpenFeatureExposures(logger, unit_type="device_id")
    client = api.get_client(domain)
    client.add_hooks([hook])
    try:
        for i in range(10):
            assert client.get_boolean_value("banner", False, EvaluationContext(targeting_key=f"d-{i}")) is True
        assert client.get_string_value("absent", "x", EvaluationContext(targeting_key="d-0")) == "x"
    finally:
        api.clear_providers()

    records = read("exposures", 10)
    assert {r["unit_id"] for r in records} == {f"d-{i}" for i in range(10)}
    for r in records:
        assert (r["experiment"], r["revision"], r["variant"], r["scheme"]) == ("banner_v3", 3, "on", "external")
        assert r["unit_type"] == "device_id" and r["params"] == {"flag_key": "banner", "value": "true"}
    assert hook.stats.logged == 10 and hook.stats.failed == 0
