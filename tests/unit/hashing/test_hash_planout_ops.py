"""PlanOut random operators against planout 0.6 itself, op by op, evaluated in a real ``Assignment``."""

from __future__ import annotations

import random
import string
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from planout.assignment import Assignment as PlanOutAssignment
from planout.experiment import Experiment
from planout.ops import random as ops

from abstream.errors import InvalidRecordError
from schemas.hashing import (
    planout_assign,
    planout_bernoulli_trial,
    planout_hash,
    planout_param,
    planout_random_float,
    planout_random_integer,
    planout_salt,
    planout_sample,
    planout_uniform_choice,
    planout_weighted_choice,
)

N_CONFIGS = 500
UNITS_PER_CONFIG = 10


def run_op(op: type, experiment_salt: str, param: str, **args: object) -> object:
    """The oracle: assign ``param`` with a real planout op, as an experiment's ``assign`` would."""
    assignment = PlanOutAssignment(experiment_salt)
    setattr(assignment, param, op(**args))
    return assignment[param]


def _salting(rng: random.Random) -> tuple[str, str, dict[str, str]]:
    """An experiment salt, a param name and the op's optional salt overrides."""
    experiment_salt = rng.choice(["exp", "my-exp", "ns.exp", "e" + str(rng.randrange(1000)), ""])
    param = rng.choice(["color", "button_text", "p", "variant"])
    overrides = rng.choice(
        [{}, {}, {"salt": "s" + str(rng.randrange(50))}, {"full_salt": "fs.x" + str(rng.randrange(9))}]
    )
    return experiment_salt, param, overrides


def _units(rng: random.Random, ascii_units: list[str]) -> object:
    """A single unit (str or int) or a list of units, as planout's ``unit=`` accepts."""
    shape = rng.randrange(4)
    if shape == 0:
        return rng.choice(ascii_units)
    if shape == 1:
        return rng.randrange(10**9)
    return [*[rng.choice(ascii_units), rng.randrange(100)][: shape - 1], rng.choice(ascii_units)]


def _cases(make_units, seed: int):
    rng = random.Random(seed)
    ascii_units = make_units(200, seed=seed)
    for _ in range(N_CONFIGS):
        experiment_salt, param, overrides = _salting(rng)
        salt = planout_salt(experiment_salt, param, **overrides)
        for _ in range(UNITS_PER_CONFIG):
            yield rng, experiment_salt, param, overrides, salt, _units(rng, ascii_units)


def test_uniform_choice(make_units) -> None:
    for rng, exp_salt, param, overrides, salt, units in _cases(make_units, 1):
        choices = rng.sample(["a", "b", "c", "d", "e", 1, 2, 3], rng.randrange(1, 8))
        expected = run_op(ops.UniformChoice, exp_salt, param, choices=choices, unit=units, **overrides)
        assert planout_uniform_choice(choices, units, salt) == expected


def _weights(rng: random.Random, n: int) -> list[int] | list[float]:
    kind = rng.randrange(4)
    if kind == 0:
        return [rng.random() for _ in range(n)]
    if kind == 1:
        return [rng.choice([0, 1, 2, 3, 10]) for _ in range(n - 1)] + [1]
    if kind == 2:
        return [rng.choice([0.1, 0.2, 0.3, 0.7, 1 / 3]) for _ in range(n)]
    return [rng.uniform(0, 1e-9) for _ in range(n - 1)] + [rng.uniform(1e6, 1e9)]


def test_weighted_choice_float_cumulation(make_units) -> None:
    for rng, exp_salt, param, overrides, salt, units in _cases(make_units, 2):
        n = rng.randrange(1, 6)
        choices, weights = [f"v{i}" for i in range(n)], _weights(rng, n)
        expected = run_op(
            ops.WeightedChoice, exp_salt, param, choices=choices, weights=weights, unit=units, **overrides
        )
        assert planout_weighted_choice(choices, weights, units, salt)[0] == expected


def test_bernoulli_trial(make_units) -> None:
    for rng, exp_salt, param, overrides, salt, units in _cases(make_units, 3):
        p = rng.choice([0, 1, 0.5, rng.random(), 0.0001])
        expected = run_op(ops.BernoulliTrial, exp_salt, param, p=p, unit=units, **overrides)
        assert planout_bernoulli_trial(p, units, salt) == expected


def test_random_integer_and_float(make_units) -> None:
    for rng, exp_salt, param, overrides, salt, units in _cases(make_units, 4):
        low = rng.randrange(-100, 100)
        high = low + rng.choice([0, 1, 9, 99, 10**6])
        expected = run_op(ops.RandomInteger, exp_salt, param, min=low, max=high, unit=units, **overrides)
        assert planout_random_integer(low, high, units, salt) == expected
        lo_f, hi_f = rng.uniform(-5, 5), rng.choice([low, rng.uniform(5, 1e6)])
        expected_f = run_op(ops.RandomFloat, exp_salt, param, min=lo_f, max=hi_f, unit=units, **overrides)
        assert planout_random_float(lo_f, hi_f, units, salt) == expected_f


@pytest.mark.parametrize("op,fast", [(ops.Sample, False), (ops.FastSample, True)])
def test_sample_and_fast_sample_including_the_list_unit_mutation(make_units, op: type, fast: bool) -> None:
    for i, (rng, exp_salt, param, overrides, salt, units) in enumerate(_cases(make_units, 5)):
        if i % 3:  # a third of the cases keep the run time down; shuffles are long
            continue
        choices = list(range(rng.randrange(0, 40)))
        draws = {} if rng.random() < 0.3 else {"draws": rng.randrange(0, len(choices) + 1)}
        oracle_units = list(units) if isinstance(units, list) else units  # planout mutates a list unit
        expected = run_op(op, exp_salt, param, choices=choices, unit=oracle_units, **draws, **overrides)
        assert planout_sample(choices, units, salt, draws=draws.get("draws"), fast=fast) == expected


@given(unit=st.text(alphabet=string.printable, max_size=40), salt=st.text(alphabet=string.printable, max_size=20))
@settings(max_examples=300, database=None, deadline=None)
def test_hash_of_arbitrary_ascii_text(unit: str, salt: str) -> None:
    expected = run_op(ops.RandomInteger, salt, "x", min=0, max=2**62, unit=unit)
    assert planout_hash(unit, planout_salt(salt, "x")) == expected


@pytest.mark.parametrize("unit", ["é", "用户42", "😀", ["ok", "ß"]])
def test_non_ascii_units_raise_like_planout(unit: object) -> None:
    with pytest.raises(UnicodeEncodeError):
        run_op(ops.UniformChoice, "exp", "p", choices=["a", "b"], unit=unit)
    with pytest.raises(InvalidRecordError) as info:
        planout_uniform_choice(["a", "b"], unit, "exp.p")  # type: ignore[arg-type]
    assert info.value.field == "unit_id"


class _NoLogExperiment(Experiment):
    """A real planout Experiment (so its name/salt rules apply) that logs nowhere."""

    definition: ClassVar[dict[str, Any]] = {}

    def setup(self) -> None:
        self.name = self.definition["name"]

    def configure_logger(self) -> None:
        pass

    def log(self, data: object) -> None:
        pass

    def previously_logged(self) -> bool:
        return True

    def assign(self, params, userid):
        d = self.definition
        op_args = {k: d[k] for k in ("choices", "weights") if k in d}
        setattr(params, d["param"], getattr(ops, d["op"])(unit=userid, **op_args))


def test_experiment_name_is_the_salt_with_whitespace_dashed(make_units) -> None:
    definition: dict[str, Any] = {"param": "color", "op": "WeightedChoice"}
    definition |= {"choices": ["red", "blue", "green"], "weights": [0.5, 0.25, 0.25]}
    _NoLogExperiment.definition = {"name": "Button  color\ttest", **definition}
    ours = planout_param({"experiment_name": "Button  color\ttest", **definition})
    assert ours.salt == "Button-color-test.color"
    for unit in make_units(1000, seed=6):
        expected = _NoLogExperiment(userid=unit).get("color")
        assert planout_assign(unit, ours).variant == expected
