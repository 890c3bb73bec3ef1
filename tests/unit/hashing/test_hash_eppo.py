"""Eppo against eppo-server-sdk 4.x (Rust core) via its public client, configured offline from UFC JSON."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime

import eppo_client
import pytest
from eppo_client import AssignmentLogger, ClientConfig, Configuration

from abstream.errors import SchemeParamsError
from schemas.hashing import EppoFlag, assign, eppo_assign, eppo_flag, eppo_shard

N_FLAGS = 250
SUBJECTS_PER_FLAG = 40
DEFAULT = "__sdk_default__"
RULE = {"conditions": [{"attribute": "tier", "operator": "ONE_OF", "value": ["gold"]}]}


class _NoLogger(AssignmentLogger):
    def log_assignment(self, event: dict) -> None:
        pass

    def log_bandit_action(self, event: dict) -> None:
        pass


def _ufc(flag: dict) -> bytes:
    ufc = {"createdAt": "2024-04-17T19:40:53.716Z", "format": "SERVER", "environment": {"name": "Test"}}
    return json.dumps({**ufc, "flags": {flag["key"]: flag}}).encode()


@pytest.fixture(scope="module")
def client() -> Iterator[eppo_client.EppoClient]:
    config = ClientConfig(
        api_key="offline-test",
        assignment_logger=_NoLogger(),
        initial_configuration=None,
        poll_interval_seconds=None,
    )
    sdk = eppo_client.init(config)
    yield sdk
    sdk.shutdown()


def _shard(rng: random.Random, total: int, salts: list[str]) -> dict:
    ranges = []
    for _ in range(rng.randrange(1, 3)):
        start = rng.randrange(0, total + 1)
        ranges.append({"start": start, "end": rng.randrange(start, total + 1)})
    if rng.random() < 0.2:
        ranges = [{"start": 0, "end": total}]  # "insignificant": the SDK skips it, it always matches
    return {"salt": rng.choice(salts), "ranges": ranges}


def _allocation(rng: random.Random, i: int, total: int, variation_keys: list[str]) -> dict:
    salts = [f"traffic-{i}", f"split-{i}", "shared"]
    splits = [
        {
            "variationKey": rng.choice(variation_keys),
            "shards": [_shard(rng, total, salts) for _ in range(rng.randrange(0, 3))],
        }
        for _ in range(rng.randrange(1, 4))
    ]
    allocation: dict = {"key": f"alloc-{i}", "splits": splits, "doLog": rng.random() < 0.5}
    if rng.random() < 0.2:
        allocation["rules"] = [RULE]
    if rng.random() < 0.2:
        allocation["startAt"] = rng.choice(["2000-01-01T00:00:00Z", "2999-01-01T00:00:00.000Z"])
    if rng.random() < 0.2:
        allocation["endAt"] = rng.choice(["2001-06-01T12:00:00Z", "2999-12-31T23:59:59.999Z"])
    return allocation


def _random_flag(rng: random.Random, index: int) -> dict:
    total = rng.choice([10_000, 10_000, 10_000, 100, 7])
    keys = [f"var-{j}" for j in range(rng.randrange(1, 5))]
    variations: dict = {k: {"key": k, "value": k} for k in keys}
    if rng.random() < 0.1:  # the SDK serves the default for a split on a variation it cannot use
        variations["bad-value"] = {"key": "bad-value", "value": 3}
        keys += ["bad-value", "missing-variation"]
    return {
        "key": f"flag-{index}",
        "enabled": rng.random() < 0.9,
        "variationType": "STRING",
        "variations": variations,
        "allocations": [_allocation(rng, i, total, keys) for i in range(rng.randrange(1, 5))],
        "totalShards": total,
    }


def _check_shard_values(flag: EppoFlag, details: dict, subject: str) -> int:
    """Compare the SDK's reported shard values with ours; returns how many were compared."""
    compared = 0
    for evaluated, allocation in zip(details.get("allocations", []), flag.allocations, strict=False):
        for reported, split in zip(evaluated.get("evaluatedSplits", []), allocation.splits, strict=False):
            significant = [s for s in split.shards if (0, flag.total_shards) not in s.ranges]
            for shard_report, shard in zip(reported["shards"], significant, strict=False):
                assert shard_report["shardValue"] == eppo_shard(shard.salt, subject, flag.total_shards)
                compared += 1
    return compared


def test_assignments_match_the_sdk_over_random_flags(client, make_units) -> None:
    rng = random.Random(31)
    subjects = make_units(N_FLAGS * SUBJECTS_PER_FLAG, seed=31, non_ascii=True)
    outcomes: set[bool] = set()
    shards_compared = 0
    for index in range(N_FLAGS):
        raw = _random_flag(rng, index)
        client.set_configuration(Configuration(flags_configuration=_ufc(raw)))
        flag = eppo_flag(raw)
        rule_allocations = {a["key"] for a in raw["allocations"] if a.get("rules")}
        for subject in subjects[index * SUBJECTS_PER_FLAG : (index + 1) * SUBJECTS_PER_FLAG]:
            gold = rng.random() < 0.5
            expected = client.get_string_assignment(
                raw["key"], subject, {"tier": "gold" if gold else "silver"}, DEFAULT
            )
            now = datetime.now(UTC)
            got = eppo_assign(flag, subject, at=now, targeted=rule_allocations if gold else ())
            assert (got.variant or DEFAULT) == expected, (raw, subject)
            outcomes.add(got.in_experiment)
        if raw["enabled"]:
            details = client.get_string_assignment_details(raw["key"], subjects[index], {}, DEFAULT)
            shards_compared += _check_shard_values(flag, details.evaluation_details, subjects[index])
    assert outcomes == {True, False}
    assert shards_compared > 100


def test_shard_is_md5_prefix_big_endian(make_units) -> None:
    for subject in make_units(2000, seed=32, non_ascii=True):
        digest = hashlib.md5(f"salt-x-{subject}".encode()).hexdigest()
        assert eppo_shard("salt-x", subject, 10_000) == int(digest[:8], 16) % 10_000


def test_time_windows_need_an_aware_timestamp_and_include_the_end() -> None:
    flag = {
        "key": "f",
        "enabled": True,
        "variationType": "STRING",
        "totalShards": 10_000,
        "variations": {"on": {"key": "on", "value": "on"}},
        "allocations": [
            {
                "key": "a",
                "startAt": "2024-01-01T00:00:00Z",
                "endAt": "2024-02-01T00:00:00Z",
                "splits": [{"variationKey": "on", "shards": []}],
            }
        ],
    }
    with pytest.raises(SchemeParamsError):
        assign("eppo", flag, "u")
    assert assign("eppo", flag, "u", at=datetime(2024, 2, 1, tzinfo=UTC)).variant == "on"
    assert assign("eppo", flag, "u", at=datetime(2024, 1, 1, tzinfo=UTC)).variant == "on"
    assert assign("eppo", flag, "u", at=datetime(2024, 2, 1, 0, 0, 1, tzinfo=UTC)).variant is None


@pytest.mark.parametrize(
    "change",
    [
        {"variationType": "TEXT"},
        {"totalShards": 0},
        {"allocations": [{"key": "a", "splits": [], "startAt": "yesterday"}]},
        {
            "allocations": [
                {
                    "key": "a",
                    "splits": [{"variationKey": "on", "shards": [{"salt": "s", "ranges": [{"start": 5, "end": 2}]}]}],
                }
            ]
        },
        {"unknownField": 1},
    ],
)
def test_bad_flags_fail_loudly(change: dict) -> None:
    flag = {"key": "f", "enabled": True, "variationType": "STRING", "totalShards": 10_000}
    flag |= {"variations": {"on": {"key": "on", "value": "on"}}, "allocations": []}
    with pytest.raises(SchemeParamsError):
        eppo_flag({**flag, **change})
