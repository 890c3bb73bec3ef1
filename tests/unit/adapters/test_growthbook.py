"""The GrowthBook adapter as the real SDK's ``on_experiment_viewed`` callback."""

from __future__ import annotations

from typing import Any

import pytest
from growthbook import Experiment, GrowthBook, InMemoryStickyBucketService
from growthbook.common_types import Result

from abstream.errors import ConfigError
from producers.adapters.growthbook import GrowthBookExposures, growthbook_exposure, growthbook_variant
from schemas.hashing import assign
from tests.unit.adapters.conftest import RecordingSink

RULE = {
    "key": "checkout-exp",
    "variations": ["old", "new"],
    "weights": [0.4, 0.6],
    "coverage": 0.9,
    "hashAttribute": "id",
    "seed": "checkout-seed",
    "hashVersion": 2,
    "meta": [{"key": "0", "name": "Control"}, {"key": "1", "name": "Treatment"}],
    "phase": "4",
    "name": "Checkout",
}
FEATURES = {"checkout": {"defaultValue": "old", "rules": [RULE]}}


def _growthbook(callback: GrowthBookExposures, user: str, **kwargs: Any) -> GrowthBook:
    attributes = {"id": user, "country": "FR", "email": f"{user}@example.com"}
    return GrowthBook(attributes=attributes, features=FEATURES, on_experiment_viewed=callback, **kwargs)


def test_a_viewed_experiment_is_logged_with_its_hash_inputs(sink: RecordingSink) -> None:
    callback = GrowthBookExposures(sink, context_attributes=["country"])
    values = {f"user-{i}": _growthbook(callback, f"user-{i}").get_feature_value("checkout", "-") for i in range(200)}
    assert 150 < len(sink.exposures) < 200  # coverage 0.9: the users outside it are not exposed
    record = sink.exposures[0]
    assert (record["experiment"], record["revision"], record["scheme"]) == ("checkout-exp", 4, "growthbook")
    assert (record["unit_type"], record["hash_seed"], record["hash_version"]) == ("user_id", "checkout-seed", 2)
    assert 0 <= record["bucket_position"] < 1 and record["hash_used"] and not record["sticky_bucket_used"]
    assert record["context"] == {"country": "FR", "hash_attribute": "id", "feature_id": "checkout"}
    for r in sink.exposures:
        assert r["variant"] == {"old": "Control", "new": "Treatment"}[values[r["unit_id"]]]
    assert callback.stats.logged == len(sink.exposures)


def test_the_logged_variant_is_what_the_checker_recomputes(sink: RecordingSink) -> None:
    callback = GrowthBookExposures(sink)
    for i in range(300):
        _growthbook(callback, f"u{i}").get_feature_value("checkout", "fallback")
    definition = {k: RULE[k] for k in ("key", "weights", "coverage", "seed", "hashVersion")}
    definition["variations"] = ["Control", "Treatment"]  # the names the adapter logs
    for record in sink.exposures:
        expected = assign("growthbook", definition, record["unit_id"])
        assert record["variant"] == expected.variant
        assert record["bucket_position"] == expected.bucket


def test_without_meta_names_the_variant_is_the_variation_id(sink: RecordingSink) -> None:
    callback = GrowthBookExposures(sink, revisions={"plain": 7})
    gb = GrowthBook(attributes={"id": "u-1"}, on_experiment_viewed=callback)
    result = gb.run(Experiment(key="plain", variations=["a", "b", "c"]))
    [record] = sink.exposures
    assert record["variant"] == str(result.variationId) and record["revision"] == 7
    assert record["hash_seed"] == "plain" and record["hash_version"] == 1
    assert record["params"] == {"variationId": str(result.variationId), "key": result.key, "value": result.value}


def test_a_sticky_bucket_is_flagged(sink: RecordingSink) -> None:
    callback = GrowthBookExposures(sink)
    service = InMemoryStickyBucketService()
    first = _growthbook(callback, "sticky-user", sticky_bucket_service=service)
    first.get_feature_value("checkout", "fallback")
    changed = {"checkout": {"defaultValue": "old", "rules": [{**RULE, "weights": [0.0, 1.0], "phase": "5"}]}}
    second = GrowthBook(
        attributes={"id": "sticky-user"}, features=changed, on_experiment_viewed=callback, sticky_bucket_service=service
    )
    second.get_feature_value("checkout", "fallback")
    first_record, second_record = sink.exposures
    assert not first_record["sticky_bucket_used"] and second_record["sticky_bucket_used"]
    assert second_record["variant"] == first_record["variant"] and second_record["revision"] == 5


def test_forced_results_are_flagged_forced_and_not_hashed() -> None:
    experiment = Experiment(key="e", variations=["a", "b"], meta=[{"name": "A"}, {"name": "B"}])
    result = Result(variationId=1, inExperiment=True, value="b", hashUsed=False, hashAttribute="id",
                    hashValue="u", featureId=None)  # fmt: skip
    fields = growthbook_exposure(experiment, result, revision=1, unit_type="user_id")
    assert fields["variant"] == "B" and fields["forced"] is True and fields["hash_used"] is False
    assert growthbook_variant(experiment, Result(0, True, "a", True, "id", "u", None)) == "A"


def test_a_failing_sink_never_reaches_the_app() -> None:
    callback = GrowthBookExposures(RecordingSink(fail_with=RuntimeError("boom")))
    gb = _growthbook(callback, "user-1")
    assert gb.get_feature_value("checkout", "fallback") in ("old", "new")
    assert callback.stats.failed == 1


def test_bad_options_fail_at_construction(sink: RecordingSink) -> None:
    with pytest.raises(ConfigError, match="default_revision"):
        GrowthBookExposures(sink, default_revision=-1)
    with pytest.raises(ConfigError, match=r"revisions\['x'\]"):
        GrowthBookExposures(sink, revisions={"x": "3"})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="unit_types"):
        GrowthBookExposures(sink, unit_types={"id": ""})
