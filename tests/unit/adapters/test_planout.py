"""The PlanOut adapter on the real planout package: what reaches the sink, and when."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from planout.ops.random import UniformChoice, WeightedChoice

from abstream.errors import ConfigError
from producers.adapters.planout import KafkaLoggedExperiment, KafkaLogging, planout_exposure
from schemas.hashing import assign
from tests.unit.adapters.conftest import RecordingSink

CHOICES, WEIGHTS = ["button", "link", "control"], [0.25, 0.25, 0.5]


def _experiment(sink: RecordingSink, **attributes: Any) -> Any:
    """A fresh experiment class (the sink is per class) like Sentry's SampleEventExperiment."""

    class SampleEvent(KafkaLoggedExperiment):
        unit_input = "userid"
        variant_param = "variant"
        revision = 3

        def assign(self, params: Any, userid: Any, **_: Any) -> None:
            params.variant = WeightedChoice(choices=CHOICES, weights=WEIGHTS, unit=userid)
            params.colour = UniformChoice(choices=["red", "blue"], unit=userid)

    for name, value in attributes.items():
        setattr(SampleEvent, name, value)
    SampleEvent.use_sink(sink)
    return SampleEvent


def test_get_logs_one_exposure_with_the_hash_inputs(sink: RecordingSink) -> None:
    exp = _experiment(sink)(userid=42, country="FR")
    variant = exp.get("variant")
    assert exp.get("colour") in ("red", "blue") and exp.get("variant") == variant

    [record] = sink.exposures
    assert record["experiment"] == "SampleEvent" and record["revision"] == 3 and record["variant"] == variant
    assert (record["unit_id"], record["unit_type"], record["scheme"]) == ("42", "userid", "planout")
    assert record["hash_seed"] == "SampleEvent"
    assert record["params"] == {"variant": variant, "colour": exp.get("colour")}
    assert len(record["context"]["planout_checksum"]) == 8 and not record["forced"]
    assert type(exp).exposure_stats().logged == 1


def test_the_logged_variant_is_what_the_checker_recomputes(sink: RecordingSink) -> None:
    cls = _experiment(sink)
    for userid in range(300):
        cls(userid=userid).get("variant")
    params = {"param": "variant", "op": "WeightedChoice", "choices": CHOICES, "weights": WEIGHTS}
    for record in sink.exposures:
        expected = assign("planout", {**params, "experiment_salt": record["hash_seed"]}, record["unit_id"])
        assert record["variant"] == expected.variant
    assert {r["variant"] for r in sink.exposures} == set(CHOICES)


def test_a_salt_and_a_name_set_in_setup_are_logged(sink: RecordingSink) -> None:
    cls = _experiment(sink)
    cls.setup = lambda self: setattr(self, "salt", "sample-salt-v2")
    record_variant = cls(userid="u-7").get("variant")
    [record] = sink.exposures
    assert record["hash_seed"] == "sample-salt-v2"
    params = {"param": "variant", "op": "WeightedChoice", "choices": CHOICES, "weights": WEIGHTS}
    assert assign("planout", {**params, "experiment_salt": "sample-salt-v2"}, "u-7").variant == record_variant


def test_without_auto_exposure_only_an_explicit_log_exposure_logs(sink: RecordingSink) -> None:
    """Sentry computed every assignment up front and logged when the page showed the experiment."""
    exp = _experiment(sink, auto_exposure_log=False)(userid=5)
    variant = exp.get("variant")
    assert sink.exposures == []
    exp.log_exposure({"page": "install"})
    [record] = sink.exposures
    assert record["variant"] == variant and record["context"]["page"] == "install"


def test_overrides_are_logged_as_forced(sink: RecordingSink) -> None:
    exp = _experiment(sink)(userid=5)
    exp.set_overrides({"variant": "link"})
    assert exp.get("variant") == "link"
    assert sink.exposures[0]["forced"] is True


def test_other_planout_events_become_events(sink: RecordingSink) -> None:
    exp = _experiment(sink, context_inputs=("country",))(userid=9, country="FR")
    exp.get("variant")
    exp.log_event("cta_click", {"position": 2})
    assert sink.exposures[0]["context"]["input.country"] == "FR"
    [event] = sink.events
    assert (event["name"], event["unit_id"], event["unit_type"]) == ("cta_click", "9", "userid")
    assert event["properties"] == {"position": "2", "experiment": "SampleEvent"}


def test_a_failing_sink_never_reaches_the_app(sink: RecordingSink) -> None:
    failing = RecordingSink(fail_with=RuntimeError("kafka client bug"))
    cls = _experiment(failing)
    assert cls(userid=1).get("variant") in CHOICES
    assert cls.exposure_stats().failed == 1 and cls.exposure_stats().logged == 0


def test_an_ambiguous_variant_is_counted_not_raised(sink: RecordingSink) -> None:
    cls = _experiment(sink, variant_param=None)
    assert cls(userid=1).get("variant") in CHOICES
    assert sink.exposures == [] and cls.exposure_stats().failed == 1


def test_wiring_mistakes_fail_at_construction(sink: RecordingSink) -> None:
    class Unwired(KafkaLogging):
        pass

    with pytest.raises(ConfigError, match="use_sink"):
        Unwired(userid=1)
    with pytest.raises(ConfigError, match="unit_input 'userid' is not among the inputs"):
        _experiment(sink)(user=1)
    with pytest.raises(ConfigError, match="revision must be an int"):
        _experiment(sink, revision=-1)(userid=1)
    with pytest.raises(ConfigError, match="log_exposure"):
        KafkaLoggedExperiment.use_sink(object())  # type: ignore[arg-type]


def test_the_mapping_names_the_missing_variant_param() -> None:
    blob = {"name": "e", "salt": "e", "inputs": {"u": 1}, "params": {"a": 1, "b": 2}}
    with pytest.raises(ValueError, match="no param 'variant'"):
        planout_exposure(blob, unit_id="1", unit_type="u", variant_param="variant", revision=1)
    fields = planout_exposure(blob, unit_id="1", unit_type="u", variant_param="b", revision=1)
    assert fields["variant"] == "2" and fields["params"] == {"a": "1", "b": "2"}


def test_importing_the_adapter_leaves_collections_as_it_was() -> None:
    code = "import collections, producers.adapters.planout; print(hasattr(collections, 'MutableMapping'))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[3]
    )
    assert out.stdout.strip() == "False"
