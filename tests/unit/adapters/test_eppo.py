"""The Eppo adapter as the real (Rust-backed) SDK's ``AssignmentLogger``, configured offline from UFC JSON."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator

import eppo_client
import pytest
from eppo_client import ClientConfig, Configuration

from abstream.errors import ConfigError
from producers.adapters.eppo import EppoExposures, eppo_exposure
from schemas.hashing import assign
from schemas.verification import verify
from tests.unit.adapters.conftest import RecordingSink
from tests.unit.experiments.base import definition

STAFF = {"attribute": "tier", "operator": "ONE_OF", "value": ["staff"]}
FLAG = {
    "key": "checkout",
    "enabled": True,
    "variationType": "STRING",
    "totalShards": 10_000,
    "variations": {k: {"key": k, "value": k} for k in ("control", "treatment")},
    "allocations": [
        {"key": "internal", "rules": [{"conditions": [STAFF]}],
         "splits": [{"variationKey": "treatment", "shards": []}], "doLog": False},
        {"key": "experiment", "doLog": True, "splits": [
            {"variationKey": "control", "extraLogging": {"salt": "split-salt", "holdout": "h-2024"},
             "shards": [{"salt": "traffic-salt", "ranges": [{"start": 0, "end": 8000}]},
                        {"salt": "split-salt", "ranges": [{"start": 0, "end": 5000}]}]},
            {"variationKey": "treatment",
             "shards": [{"salt": "traffic-salt", "ranges": [{"start": 0, "end": 8000}]},
                        {"salt": "split-salt", "ranges": [{"start": 5000, "end": 10_000}]}]},
        ]},
    ],
}  # fmt: skip


def ufc(*flags: dict) -> bytes:
    header = {"createdAt": "2024-04-17T19:40:53.716Z", "format": "SERVER", "environment": {"name": "Test"}}
    return json.dumps({**header, "flags": {f["key"]: f for f in flags}}).encode()


@pytest.fixture
def eppo(sink: RecordingSink) -> Iterator[tuple[eppo_client.EppoClient, EppoExposures]]:
    exposures = EppoExposures(sink, revisions={"checkout-experiment": 2}, context_attributes=["country"])
    config = ClientConfig(
        api_key="offline", assignment_logger=exposures, poll_interval_seconds=None,
        initial_configuration=Configuration(flags_configuration=ufc(FLAG)),
    )  # fmt: skip
    client = eppo_client.init(config)
    yield client, exposures
    client.shutdown()


def _wait_for(sink: RecordingSink, n: int) -> None:
    deadline = time.monotonic() + 5
    while len(sink.exposures) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def test_assignments_are_logged_and_recomputable(eppo, sink: RecordingSink) -> None:
    client, exposures = eppo
    served = {
        f"s{i}": client.get_string_assignment("checkout", f"s{i}", {"country": "FR", "age": 30}, "-")
        for i in range(300)
    }
    logged = [s for s, v in served.items() if v != "-"]
    _wait_for(sink, len(logged))
    assert len(sink.exposures) == len(logged) and 200 < len(logged) < 300  # 80% traffic
    for record in sink.exposures:
        assert record["variant"] == served[record["unit_id"]]
        assert assign("eppo", FLAG, record["unit_id"]).variant == record["variant"]
        assert (record["experiment"], record["revision"], record["scheme"]) == ("checkout-experiment", 2, "eppo")
        assert record["context"] == {"country": "FR"} and record["unit_type"] == "user_id"
        assert record["params"]["flag"] == "checkout" and record["params"]["allocation"] == "experiment"
    assert exposures.stats.logged == len(logged)


def test_extra_logging_carries_the_salt_into_the_hash_inputs(eppo, sink: RecordingSink) -> None:
    client, _ = eppo
    subjects = [f"x{i}" for i in range(60)]
    for s in subjects:
        client.get_string_assignment("checkout", s, {}, "-")
    _wait_for(sink, 1)
    controls = [r for r in sink.exposures if r["variant"] == "control"]
    assert controls and all(r["hash_seed"] == "split-salt" and r["params"]["holdout"] == "h-2024" for r in controls)
    assert all(r["hash_seed"] is None for r in sink.exposures if r["variant"] == "treatment")


def test_allocations_without_logging_are_not_exposures(eppo, sink: RecordingSink) -> None:
    client, _ = eppo
    assert client.get_string_assignment("checkout", "staff-1", {"tier": "staff"}, "-") == "treatment"
    time.sleep(0.2)
    assert sink.exposures == []


def test_the_mapping_reads_eppo_event_fields() -> None:
    event = {
        "featureFlag": "f", "allocation": "a", "experiment": "f-a", "variation": "on",
        "metaData": {"sdkName": "python", "sdkVersion": "4.4.1", "shard": 1234}, "subject": "u-1",
        "subjectAttributes": {"vip": True, "n": 3.0}, "timestamp": "2024-05-01T10:00:00.123456789Z",
    }  # fmt: skip
    fields = eppo_exposure(event, revision=1, unit_type="account_id")
    assert fields["bucket_index"] == 1234 and fields["hash_seed"] is None
    assert fields["context"] == {"vip": "true", "n": "3.0"} and fields["unit_type"] == "account_id"
    assert fields["client_ts"] is not None and fields["client_ts"].microsecond == 123456  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=r"Eppo\.subject"):
        eppo_exposure({**event, "subject": ""}, revision=1, unit_type="u")


def test_exposures_of_a_targeted_allocation_verify_with_the_allocation_they_report(sink: RecordingSink) -> None:
    # Staff are targeted into a logged allocation; our verifier cannot see the rule's attribute, so it
    # must take the allocation the SDK reports, or it would flag the units the next allocation gives control.
    flag = {**FLAG, "allocations": [{**FLAG["allocations"][0], "doLog": True}, FLAG["allocations"][1]]}
    exposures = EppoExposures(sink, revisions={"checkout-internal": 1, "checkout-experiment": 1})
    config = ClientConfig(
        api_key="offline", assignment_logger=exposures, poll_interval_seconds=None,
        initial_configuration=Configuration(flags_configuration=ufc(flag)),
    )  # fmt: skip
    client = eppo_client.init(config)
    try:
        served = {
            f"s{i}": client.get_string_assignment("checkout", f"s{i}", {"tier": "staff"}, "-") for i in range(200)
        }
        served |= {
            f"o{i}": client.get_string_assignment("checkout", f"o{i}", {"tier": "other"}, "-") for i in range(200)
        }
        _wait_for(sink, sum(v != "-" for v in served.values()))
    finally:
        client.shutdown()
    variants = [{"name": "control"}, {"name": "treatment"}]  # each allocation's split, from the flag
    definitions = {
        key: definition(
            key=key, scheme="eppo", scheme_params=flag, variants=variants, fallback_variant="control"
        ).to_record()
        for key in ("checkout-internal", "checkout-experiment")
    }
    by_experiment = Counter(r["experiment"] for r in sink.exposures)
    assert by_experiment["checkout-internal"] == 200 and 100 < by_experiment["checkout-experiment"] < 200

    flags = [verify(r, definitions[r["experiment"]]) for r in sink.exposures]
    assert flags == [None] * len(sink.exposures)
    # The hash is still checked inside the reported allocation, and without it the rule-gated one is skipped.
    staff = next(r for r in sink.exposures if r["experiment"] == "checkout-internal" and r["unit_id"] == "s0")
    wrong = verify({**staff, "variant": "control"}, definitions["checkout-internal"])
    assert wrong is not None and (wrong.reason, wrong.expected_variant) == ("variant_mismatch", "treatment")
    unreported = [r for r in sink.exposures if r["experiment"] == "checkout-internal"]
    unreported_flags = [verify({**r, "params": {}}, definitions["checkout-internal"]) for r in unreported]
    assert sum(f is not None for f in unreported_flags) > 100  # what verification did before


def test_a_failing_sink_never_reaches_the_app() -> None:
    exposures = EppoExposures(RecordingSink(fail_with=RuntimeError("boom")))
    exposures.log_assignment({"featureFlag": "f"})
    exposures.log_assignment({"featureFlag": "f", "allocation": "a", "variation": "v", "subject": "s"})
    assert exposures.stats.failed == 2


def test_bad_options_fail_at_construction(sink: RecordingSink) -> None:
    with pytest.raises(ConfigError, match="unit_type"):
        EppoExposures(sink, unit_type="")
    with pytest.raises(ConfigError, match="log_exposure"):
        EppoExposures(None)  # type: ignore[arg-type]
