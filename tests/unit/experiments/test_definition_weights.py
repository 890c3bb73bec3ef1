"""One source of weights: an SDK scheme's variants take the split of scheme_params, or must agree with it.

The SRM test checks the variants' weights; the SDK assigns by scheme_params. The derived split is checked
against the real SDKs assigning 20,000 units (growthbook 4.x, planout 0.6), within five sigma.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from fractions import Fraction
from typing import Any

import pytest

# Imported first on purpose: it makes planout 0.6 importable on Python >= 3.10.
import producers.adapters.planout  # noqa: F401  # isort: skip
from growthbook import Experiment, GrowthBook
from planout.assignment import Assignment as PlanOutAssignment
from planout.ops import random as ops

from abstream.errors import DefinitionError
from schemas._definition_weights import integer_weights
from schemas.definitions import Definition
from schemas.hashing import traffic_split
from tests.unit.adapters.test_eppo import FLAG
from tests.unit.experiments.base import definition

GB = {"key": "checkout", "variations": ["A", "B"], "weights": [0.9, 0.1]}
AB = [{"name": "A"}, {"name": "B"}]
SAMPLE = 20_000


def _problems(**changes: Any) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as info:
        definition(**changes)
    return info.value.problems


def test_contradicting_weights_are_a_precise_error_naming_both_splits() -> None:
    """The issue's case: 0.9/0.1 in scheme_params, 50/50 in the variants, validated ok before."""
    [(where, message)] = _problems(scheme="growthbook", scheme_params=GB)

    assert where == "<definition>: variants"
    assert message == (
        "weights A 50, B 50 split A 50%, B 50%, but scheme_params.weights [0.9, 0.1] splits A 90%, B 10%: "
        "the growthbook SDK assigns by scheme_params and the SRM test checks the variants' weights; leave the "
        "weights out (they are then derived from scheme_params) or make them the same shares"
    )


def test_left_out_weights_are_the_sdk_split_and_survive_the_record() -> None:
    built = definition(scheme="growthbook", scheme_params=GB, variants=AB)

    assert built.weights == {"A": 9, "B": 1}
    assert [(v.name, v.weight) for v in built.to_record().variants] == [("A", 9), ("B", 1)]
    assert Definition.from_record(built.to_record()) == built
    assert built.scheme_params["weights"] == [0.9, 0.1]  # kept as the SDK writes them


@pytest.mark.parametrize(
    ("scheme", "params", "variants", "weights"),
    [
        ("growthbook", {**GB, "weights": [0.4, 0.6]}, [{"name": "A", "weight": 2}, {"name": "B", "weight": 3}], None),
        ("growthbook", {**GB, "weights": None}, AB, {"A": 1, "B": 1}),
        ("planout", {"op": "WeightedChoice", "weights": [1 / 3, 1 / 3, 1 / 3]}, None, {"A": 1, "B": 1, "C": 1}),
        ("planout", {"op": "WeightedChoice", "weights": [0.2, 0.5, 0.3]}, None, {"A": 2, "B": 5, "C": 3}),
        ("planout", {"op": "UniformChoice"}, None, {"A": 1, "B": 1, "C": 1}),
    ],
)
def test_sdk_weights_are_accepted_as_the_sdk_writes_them(
    scheme: str, params: dict[str, Any], variants: list[dict[str, Any]] | None, weights: dict[str, int] | None
) -> None:
    if scheme == "planout":
        params = {"param": "v", "choices": ["A", "B", "C"], "experiment_salt": "x", **params}
        variants = [{"name": n} for n in "ABC"]
    built = definition(
        scheme=scheme, scheme_params={k: v for k, v in params.items() if v is not None}, variants=variants
    )

    assert weights is None or built.weights == weights


def test_a_bernoulli_trial_and_eppo_allocations_give_their_own_split() -> None:
    bernoulli = {"param": "v", "op": "BernoulliTrial", "p": 0.25, "experiment_salt": "x"}
    eppo = {"scheme": "eppo", "scheme_params": FLAG, "fallback_variant": "control"}
    eppo_variants = [{"name": "control"}, {"name": "treatment"}]

    assert definition(scheme="planout", scheme_params=bernoulli, variants=[{"name": "0"}, {"name": "1"}],
                      fallback_variant="0").weights == {"0": 3, "1": 1}  # fmt: skip
    assert definition(key="checkout-experiment", variants=eppo_variants, **eppo).weights == {
        "control": 1, "treatment": 1,
    }  # fmt: skip
    internal = definition(key="checkout-internal", variants=eppo_variants, **eppo)
    assert internal.weights == {"control": 0, "treatment": 1}  # everyone in that allocation gets treatment
    even = [{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}]
    [(_, message)] = _problems(key="checkout-internal", variants=even, **eppo)
    assert "but the splits of allocation 'internal' splits control 0%, treatment 100%" in message


def test_weights_growthbook_ignores_are_named_as_ignored() -> None:
    [(_, message)] = _problems(
        scheme="growthbook",
        scheme_params={**GB, "weights": [0.5, 0.3]},
        variants=[{"name": "A", "weight": 5}, {"name": "B", "weight": 3}],
    )

    assert "but equal weights (GrowthBook ignores scheme_params.weights [0.5, 0.3]: they must be one" in message


def test_integer_weights_are_exact_for_small_fractions_and_parts_per_million_otherwise() -> None:
    assert integer_weights({"A": Fraction(1, 3), "B": Fraction(2, 3)}) == {"A": 1, "B": 2}
    assert integer_weights({"A": Fraction(0.1), "B": Fraction(0.9)}) == {"A": 1, "B": 9}
    share = Fraction(0.123456789)
    assert integer_weights({"A": share, "B": 1 - share}) == {"A": 123457, "B": 876543}


def _within_five_sigma(counts: Counter[str], shares: dict[str, Fraction]) -> None:
    n = sum(counts.values())
    for name, share in shares.items():
        p = float(share)
        assert abs(counts[name] - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1, (name, counts, shares)


def test_the_derived_growthbook_split_is_what_the_sdk_does() -> None:
    rng = random.Random(3)
    for index in range(5):
        raw = [rng.uniform(0.05, 1) for _ in range(rng.randrange(2, 5))]
        weights = rng.choice([[w / sum(raw) for w in raw], [w / 2 for w in raw], None])  # GrowthBook ignores /2
        names = [f"v{i}" for i in range(len(raw))]
        config = {"key": f"e{index}", "variations": names, "coverage": rng.uniform(0.3, 1)}
        config |= {} if weights is None else {"weights": weights}
        built = definition(scheme="growthbook", scheme_params=config, variants=[{"name": n} for n in names],
                           fallback_variant="v0")  # fmt: skip
        counts: Counter[str] = Counter()
        for i in range(SAMPLE):
            result = GrowthBook(attributes={"id": f"u{index}-{i}"}).run(Experiment(**config))  # type: ignore[arg-type]
            if result.inExperiment:
                counts[names[result.variationId]] += 1
        total = sum(built.weights.values())
        _within_five_sigma(counts, {k: Fraction(w, total) for k, w in built.weights.items()})


def test_the_derived_planout_split_is_what_the_sdk_does() -> None:
    rng = random.Random(4)
    for index in range(4):
        n = rng.randrange(2, 5)
        weights = [rng.uniform(0.05, 1) for _ in range(n)]
        names = [f"v{i}" for i in range(n)]
        params = {"param": "p", "op": "WeightedChoice", "choices": names, "weights": weights, "experiment_salt": "s"}
        split = traffic_split("planout", params, "k")
        assert split is not None
        counts: Counter[str] = Counter()
        for i in range(SAMPLE):
            assignment = PlanOutAssignment("s")
            assignment.p = ops.WeightedChoice(choices=names, weights=weights, unit=f"u{index}-{i}")
            counts[assignment.p] += 1
        _within_five_sigma(counts, dict(split.shares))
