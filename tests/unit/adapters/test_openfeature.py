"""The OpenFeature adapter as a real SDK hook, over the SDK's in-memory provider."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from abstream.errors import ConfigError
from producers.adapters.openfeature import OpenFeatureExposures
from tests.unit.adapters.conftest import RecordingSink

METADATA: dict[str, bool | int | float | str] = {
    "experiment": "checkout_v2",
    "revision": 3,
    "hash_seed": "ck",
    "bucket_index": 17,
    "scheme": "sha256-weights",
}


def _by_targeting_key(flag: InMemoryFlag, ctx: EvaluationContext) -> FlagResolutionDetails[Any]:
    variant = "B" if (ctx.targeting_key or "").endswith(("1", "3", "5", "7", "9")) else "A"
    return FlagResolutionDetails(
        flag.variants[variant], reason=Reason.SPLIT, variant=variant, flag_metadata=flag.flag_metadata
    )


def _no_variant(flag: InMemoryFlag, ctx: EvaluationContext) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(flag.variants["A"], reason=Reason.DEFAULT)


FLAGS = {
    "checkout": InMemoryFlag("A", {"A": "old", "B": "new"}, METADATA, context_evaluator=_by_targeting_key),
    "banner": InMemoryFlag("on", {"on": True, "off": False}),
    "unlogged": InMemoryFlag("A", {"A": 1}, context_evaluator=_no_variant),
}


@pytest.fixture
def client_for() -> Iterator[Callable[[OpenFeatureExposures], OpenFeatureClient]]:
    """A client of a fresh domain with the in-memory provider and the hook (no global hooks touched)."""

    def make(hook: OpenFeatureExposures) -> OpenFeatureClient:
        domain = f"test-{uuid.uuid4().hex[:8]}"
        api.set_provider(InMemoryProvider(FLAGS), domain)
        client = api.get_client(domain)
        client.add_hooks([hook])
        return client

    yield make
    api.clear_providers()


def test_evaluations_with_a_variant_are_exposures(client_for, sink: RecordingSink) -> None:
    hook = OpenFeatureExposures(sink, context_attributes=["platform"])
    client = client_for(hook)
    ctx = EvaluationContext(targeting_key="user-7", attributes={"platform": "ios", "email": "x@y.z"})
    assert client.get_string_value("checkout", "default", ctx) == "new"
    assert client.get_boolean_value("banner", False, ctx) is True
    checkout, banner = sink.exposures
    assert (checkout["experiment"], checkout["revision"], checkout["variant"]) == ("checkout_v2", 3, "B")
    assert (checkout["unit_id"], checkout["unit_type"], checkout["scheme"]) == ("user-7", "user_id", "sha256-weights")
    assert (checkout["hash_seed"], checkout["bucket_index"]) == ("ck", 17)
    assert checkout["params"] == {"flag_key": "checkout", "value": "new"}
    assert checkout["context"] == {"platform": "ios", "reason": "SPLIT"}
    assert (banner["experiment"], banner["variant"], banner["scheme"], banner["revision"]) == (
        "banner",
        "on",
        "external",
        1,
    )
    assert banner["params"]["value"] == "true"


def test_evaluations_without_a_variant_are_not_logged(client_for, sink: RecordingSink) -> None:
    hook = OpenFeatureExposures(sink)
    client = client_for(hook)
    assert client.get_integer_value("unlogged", 0, EvaluationContext(targeting_key="u")) == 1
    assert client.get_string_value("missing-flag", "d", EvaluationContext(targeting_key="u")) == "d"
    assert sink.exposures == [] and hook.stats.skipped == 1


def test_revisions_given_to_the_hook_win_over_metadata(client_for, sink: RecordingSink) -> None:
    client_for(OpenFeatureExposures(sink, revisions={"checkout_v2": 4})).get_string_value(
        "checkout", "d", EvaluationContext(targeting_key="u2")
    )
    assert sink.exposures[0]["revision"] == 4 and sink.exposures[0]["variant"] == "A"


def test_a_failure_never_changes_the_flag_value(client_for) -> None:
    failing = OpenFeatureExposures(RecordingSink(fail_with=RuntimeError("boom")))
    assert client_for(failing).get_string_value("checkout", "d", EvaluationContext(targeting_key="u1")) == "new"
    no_unit = OpenFeatureExposures(RecordingSink())
    assert client_for(no_unit).get_string_value("checkout", "d", EvaluationContext()) == "old"
    assert failing.stats.failed == 1 and no_unit.stats.failed == 1


def test_bad_options_fail_at_construction(sink: RecordingSink) -> None:
    with pytest.raises(ConfigError, match="default_revision"):
        OpenFeatureExposures(sink, default_revision=True)
