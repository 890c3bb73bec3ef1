"""PlanOut namespaces against planout 0.6's ``SimpleNamespace``: segments, allocations, assignments."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from planout.experiment import Experiment
from planout.namespace import SimpleNamespace
from planout.ops import random as ops

from abstream.errors import SchemeParamsError
from schemas.hashing import assign, assigner, planout_namespace_allocation, planout_namespace_segment

COLORS = ["red", "blue", "green"]


def _experiment_class(exp_name: str) -> type[Experiment]:
    """A real planout experiment whose values say which experiment produced them; logs nowhere."""

    class NoLog(Experiment):
        def configure_logger(self) -> None:
            pass

        def log(self, data: object) -> None:
            pass

        def previously_logged(self) -> bool:
            return True

        def assign(self, params, userid, **_):
            params.color = ops.WeightedChoice(
                choices=[f"{exp_name}:{c}" for c in COLORS], weights=[2, 1, 1], unit=userid
            )

    return NoLog


def namespace_class(
    name: str, num_segments: int, experiments: Sequence[tuple[str, int]], primary_unit: object = "userid"
) -> type[SimpleNamespace]:
    """The oracle: a planout SimpleNamespace adding ``experiments`` in order."""

    class Namespace(SimpleNamespace):
        def setup(self) -> None:
            self.name, self.primary_unit, self.num_segments = name, primary_unit, num_segments

        def setup_experiments(self) -> None:
            for exp_name, count in experiments:
                self.add_experiment(exp_name, _experiment_class(exp_name), count)

    return Namespace


def _owned(ns: SimpleNamespace) -> dict[str, frozenset[int]]:
    owned: dict[str, set[int]] = {}
    for segment, exp_name in ns.segment_allocations.items():
        owned.setdefault(exp_name, set()).add(segment)
    return {k: frozenset(v) for k, v in owned.items()}


def _random_plan(rng: random.Random, num_segments: int) -> list[tuple[str, int]]:
    names = [f"exp{i}" for i in range(rng.randrange(1, 6))]
    plan = [(n, rng.randrange(0, max(1, num_segments // 2))) for n in names]
    if rng.random() < 0.3:  # PlanOut refuses these quietly: too many segments, a reused name
        plan.append(("too_big", num_segments + 1))
        plan.append((names[0], 1))
    return plan


@pytest.mark.parametrize("fast", [False, True])
def test_segment_allocation_matches_add_experiment_order(fast: bool, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(11 + fast)
    for i in range(40):
        num_segments = rng.choice([1, 2, 10, 100, 1000] if i else [10_000])
        plan, name = _random_plan(rng, num_segments), f"ns{i}"
        inputs = {"userid": "u", **({"use_fast_sample": True} if fast else {})}
        oracle = namespace_class(name, num_segments, plan)(**inputs)
        ours = planout_namespace_allocation(name, num_segments, plan, fast_sample=fast)
        assert {k: v for k, v in ours.items() if v} == _owned(oracle)
    capsys.readouterr()  # planout prints its refusals


@pytest.mark.parametrize("primary_unit", ["userid", ["userid"], ["userid", "page"]])
def test_segment_of_units_including_the_tuple_quirk(make_units, primary_unit: object) -> None:
    units = make_units(3000, seed=12)
    for num_segments in (1, 7, 100, 10_000):
        ns = namespace_class("seg-ns", num_segments, [], primary_unit)(userid="x", page=1)
        for i, unit in enumerate(units):
            ns.inputs = {"userid": unit, "page": i % 5}
            ours = [unit, i % 5] if primary_unit == ["userid", "page"] else unit
            assert planout_namespace_segment("seg-ns", num_segments, ours) == ns.get_segment()


def _params(plan: list[tuple[str, int]], experiment: str, **namespace: object) -> dict[str, object]:
    ns = {"name": "checkout-ns", "num_segments": 100, "experiment": experiment, **namespace}
    if "segments" not in ns:
        ns["experiments"] = [list(entry) for entry in plan]
    choices = [f"{experiment}:{c}" for c in COLORS]
    return {
        "param": "color",
        "op": "WeightedChoice",
        "choices": choices,
        "weights": [2, 1, 1],
        "namespace": ns,
    }


def test_namespace_assignment_end_to_end(make_units) -> None:
    plan = [("exp_a", 30), ("exp_b", 50), ("exp_c", 10)]
    oracle_class = namespace_class("checkout-ns", 100, plan)
    checks = {name: assigner("planout", _params(plan, name)) for name, _ in plan}
    seen = set()
    for unit in make_units(1500, seed=13):
        expected = oracle_class(userid=unit).get("color")
        got = {name: check(unit).variant for name, check in checks.items()}
        in_exps = {name: v for name, v in got.items() if v is not None}
        assert len(in_exps) <= 1
        assert next(iter(in_exps.values()), None) == expected
        seen.add(next(iter(in_exps), None))
    assert seen == {"exp_a", "exp_b", "exp_c", None}


def test_explicit_segments_give_the_same_answers(make_units) -> None:
    plan = [("exp_a", 30), ("exp_b", 50)]
    owned = planout_namespace_allocation("checkout-ns", 100, plan)
    by_plan = assigner("planout", _params(plan, "exp_b"))
    by_segments = assigner("planout", _params(plan, "exp_b", segments=sorted(owned["exp_b"])))
    for unit in make_units(500, seed=14):
        a, b = by_plan(unit), by_segments(unit)
        assert a == b
        assert a.inputs["salt"] == "checkout-ns.exp_b.color"


@pytest.mark.parametrize(
    "change",
    [
        {"experiment_salt": "mine"},
        {"namespace": {"name": "n", "num_segments": 10, "experiment": "e"}},
        {"namespace": {"name": "n", "num_segments": 10, "experiment": "e", "segments": [10]}},
        {"namespace": {"name": "n", "num_segments": 10, "experiment": "e", "experiments": [["other", 2]]}},
        {"namespace": {"name": "n", "num_segments": 0, "experiment": "e", "segments": []}},
        {
            "namespace": {
                "name": "n",
                "num_segments": 10,
                "experiment": "e",
                "segments": [1],
                "fast_sample": True,
            }
        },
        {"namespace": {"name": "n", "num_segments": 10, "experiment": "e", "segments": [1], "typo": 1}},
    ],
)
def test_bad_namespace_params_fail_loudly(change: dict[str, object]) -> None:
    params = {**_params([("e", 5)], "e"), **change}
    with pytest.raises(SchemeParamsError):
        assign("planout", params, "u")
