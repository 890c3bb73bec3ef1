"""verify() on what the real SDKs log through our adapters: the SDK is the oracle for every verdict and note.

1,500 units per scheme under random SDK-native configurations (planout 0.6, growthbook 4.x); 10% of the
logged variants are corrupted, and some clients run a stale salt or seed (the SDK really hashed with it).
Exactly the wrong exposures must be flagged, each expecting the variant the SDK itself gives under the
definition, with a seed note exactly when the logged seed differs from the definition's (a note that
is not true sends an engineer after the wrong bug); the right ones pass, unflagged.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any

# Imported first on purpose: it makes planout 0.6 importable on Python >= 3.10.
from producers.adapters.planout import KafkaLoggedExperiment  # isort: skip
from growthbook import Experiment, GrowthBook
from planout.ops import random as ops

from producers.adapters.growthbook import GrowthBookExposures
from schemas.models import ExperimentDefinition
from schemas.verification import verify
from tests.unit.adapters.conftest import RecordingSink
from tests.unit.experiments.base import definition

UNITS, CONFIGS, CORRUPTED = 1_500, 30, 0.10
PLANOUT_NOTE = "it was hashed with experiment salt"
GROWTHBOOK_NOTE = "it was hashed with seed"


@dataclass
class Logged:
    """One exposure as the adapter logged it, the variant the SDK gives its unit under the definition."""

    record: dict[str, Any]
    truth: str | None
    stale: bool  # the client hashed with another seed than the definition's, and that seed enters the hash
    definition: ExperimentDefinition
    names: list[str]
    corrupted: bool = False


def _unit(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return str(rng.randrange(1, 10**9))
    if kind == 1:
        return f"{rng.getrandbits(64):016x}"
    if kind == 2:
        return "".join(rng.choices(string.ascii_letters + string.digits + "-_.@", k=rng.randrange(1, 20)))
    return f"user-{rng.randrange(100_000)}"


def _record(scheme: str, params: dict[str, Any], names: list[str], unit_type: str) -> ExperimentDefinition:
    variants = [{"name": n} for n in names]  # the weights are the SDK's, from scheme_params
    built = definition(
        scheme=scheme, scheme_params=params, variants=variants, fallback_variant=names[0], unit_type=unit_type
    )
    return built.to_record()


def _corrupt(rng: random.Random, logged: list[Logged]) -> None:
    for item in rng.sample(logged, round(len(logged) * CORRUPTED)):
        item.record["variant"] = rng.choice([n for n in item.names if n != item.record["variant"]])
        item.corrupted = True


def _assert_true_verdicts(logged: list[Logged], seed_note: str, bucket_note: str | None = None) -> None:
    stale_and_wrong = 0
    for item in logged:
        flag = verify(item.record, item.definition)
        if item.record["variant"] == item.truth:
            assert flag is None, (item.record, flag)
            continue
        assert flag is not None and flag.reason == "variant_mismatch", (item.record, flag)
        assert flag.expected_variant == item.truth, (item.record, flag)
        assert (seed_note in flag.detail) == item.stale, (item.record, flag.detail)
        if bucket_note is not None:
            assert (bucket_note in flag.detail) == item.stale, (item.record, flag.detail)
        stale_and_wrong += item.stale and not item.corrupted
    assert len(logged) >= UNITS * 0.8 and sum(i.corrupted for i in logged) >= UNITS * CORRUPTED * 0.8
    assert stale_and_wrong > 20  # stale clients log wrong variants the SDK really gave them


# -- PlanOut -------------------------------------------------------------------------------------------


def _planout_op(rng: random.Random) -> tuple[dict[str, Any], list[str]]:
    """A random op as the SDK takes it (its keyword arguments) and the variant names it can give."""
    kind = rng.randrange(4)
    if kind == 0:
        n = rng.randrange(2, 5)
        weights = rng.choice([[rng.uniform(0.05, 1) for _ in range(n)], [rng.randrange(1, 5) for _ in range(n)]])
        choices = [f"v{i}" for i in range(n)]
        return {"op": "WeightedChoice", "choices": choices, "weights": weights}, choices
    if kind == 1:
        choices = rng.sample(["red", "blue", "green", 7, 8], rng.randrange(2, 5))
        return {"op": "UniformChoice", "choices": choices}, [str(c) for c in choices]
    if kind == 2:
        return {"op": "BernoulliTrial", "p": rng.choice([0.5, rng.uniform(0.1, 0.9)])}, ["0", "1"]
    low = rng.randrange(-5, 5)
    high = low + rng.randrange(1, 4)
    return {"op": "RandomInteger", "min": low, "max": high}, [str(i) for i in range(low, high + 1)]


def _planout_class(name: str, salt: str | None, op: dict[str, Any], overrides: dict[str, str]) -> type:
    """A real PlanOut experiment logging through our adapter (a second param makes variant_param matter)."""
    args = {k: v for k, v in op.items() if k != "op"}

    class Sdk(KafkaLoggedExperiment):
        unit_input = "userid"
        variant_param = "variant"

        def setup(self) -> None:
            self.name = name
            if salt is not None:
                self.salt = salt

        def assign(self, params: Any, userid: Any) -> None:
            params.variant = getattr(ops, op["op"])(unit=userid, **args, **overrides)
            params.colour = ops.UniformChoice(choices=["a", "b"], unit=userid)

    Sdk.use_sink(RecordingSink())
    return Sdk


def _planout_exposures(rng: random.Random, index: int) -> list[Logged]:
    op, names = _planout_op(rng)
    name = rng.choice([f"exp{index}", f"Button test {index}", f"ns.exp {index}\t2"])
    salt = rng.choice([None, None, f"salt-{index}"])
    overrides = rng.choice([{}, {}, {"salt": f"p{index}"}, {"full_salt": f"full.{index}"}])
    stale = rng.random() < 0.3  # the clients still run the experiment salt of an older revision
    params: dict[str, Any] = {"param": "variant", **op, **overrides}
    params |= {"experiment_name": name} if salt is None else {"experiment_salt": salt}
    record = _record("planout", params, names, unit_type="userid")
    oracle, client = _planout_class(name, salt, op, overrides), _planout_class(name, f"old-{index}", op, overrides)
    if not stale:
        client = oracle
    sink: RecordingSink = client._delivery().sink
    logged = []
    for _ in range(UNITS // CONFIGS):
        unit: str | int = _unit(rng)
        unit = int(unit) if unit.isdigit() and rng.random() < 0.5 else unit  # PlanOut hashes str(unit)
        client(userid=unit).get("variant")
        truth = str(oracle(userid=unit).get("variant"))
        logged.append(Logged(sink.exposures[-1], truth, stale and "full_salt" not in overrides, record, names))
    return logged


def test_planout_exposures_are_flagged_exactly_when_wrong_each_with_a_true_note() -> None:
    rng = random.Random(14)
    logged = [item for index in range(CONFIGS) for item in _planout_exposures(rng, index)]
    _corrupt(rng, logged)
    _assert_true_verdicts(logged, PLANOUT_NOTE)


def test_a_right_planout_salt_is_never_called_wrong() -> None:
    """The issue's case: every right exposure's logged salt is the experiment salt, never the param's."""
    rng = random.Random(15)
    logged = [item for index in range(CONFIGS) for item in _planout_exposures(rng, index) if not item.stale]
    for item in logged:
        item.record["variant"] = next(n for n in item.names if n != item.truth)
        flag = verify(item.record, item.definition)
        assert flag is not None and "it was hashed with" not in flag.detail, flag


# -- GrowthBook ----------------------------------------------------------------------------------------


def _growthbook_config(rng: random.Random, index: int) -> tuple[dict[str, Any], list[str]]:
    n = rng.randrange(2, 5)
    raw = [rng.uniform(0.05, 1) for _ in range(n)]
    config: dict[str, Any] = {"key": f"exp-{index}", "weights": [w / sum(raw) for w in raw]}
    config |= rng.choice([{}, {"coverage": rng.uniform(0.5, 1)}])
    config |= rng.choice([{}, {"seed": f"seed-{index}"}])
    config |= rng.choice([{}, {"hashVersion": 2}])
    return config, [f"Variation {i}" for i in range(n)]


def _growthbook_run(config: dict[str, Any], names: list[str], unit: str, callback: Any = None) -> str | None:
    meta = [{"key": str(i), "name": name} for i, name in enumerate(names)]
    experiment = Experiment(variations=list(range(len(names))), meta=meta, **config)  # type: ignore[arg-type]
    result = GrowthBook(attributes={"id": unit}, on_experiment_viewed=callback).run(experiment)
    return names[result.variationId] if result.inExperiment else None


def _growthbook_exposures(rng: random.Random, index: int) -> list[Logged]:
    config, names = _growthbook_config(rng, index)
    stale = rng.random() < 0.3  # the clients still hash with an older seed
    client_config = {**config, "seed": f"old-{index}"} if stale else config
    record = _record("growthbook", {**config, "variations": names}, names, unit_type="user_id")
    sink = RecordingSink()
    callback = GrowthBookExposures(sink)
    logged = []
    for _ in range(UNITS // CONFIGS):
        unit = _unit(rng)
        if _growthbook_run(client_config, names, unit, callback) is None:
            continue  # outside the coverage: nothing logged
        truth = _growthbook_run(config, names, unit)
        logged.append(Logged(sink.exposures[-1], truth, stale, record, names))
    return logged


def test_growthbook_exposures_are_flagged_exactly_when_wrong_each_with_a_true_note() -> None:
    rng = random.Random(16)
    logged = [item for index in range(CONFIGS) for item in _growthbook_exposures(rng, index)]
    _corrupt(rng, logged)
    _assert_true_verdicts(logged, GROWTHBOOK_NOTE, bucket_note="it logged bucket_position")
