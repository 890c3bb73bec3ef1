"""The uniform entry point and the package's public surface."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

import schemas.hashing as hashing
from abstream.errors import ConfigError, SchemeParamsError
from schemas.hashing import SCHEMES, Assignment, assign, assigner

MODULES = [
    "assignment",
    "dispatch",
    "eppo",
    "eppo_config",
    "growthbook",
    "growthbook_experiment",
    "planout",
    "planout_experiment",
    "planout_namespace",
    "sha256_weights",
    "split",
]


def test_every_public_name_is_exported_once() -> None:
    exported: list[str] = []
    for name in MODULES:
        module = importlib.import_module(f"schemas.hashing.{name}")
        exported += module.__all__
        assert all(hasattr(module, n) for n in module.__all__)
    assert sorted(exported) == sorted(hashing.__all__)
    assert len(set(exported)) == len(exported)


def test_schemes_are_the_four_we_document() -> None:
    assert set(SCHEMES) == {"sha256-weights", "planout", "growthbook", "eppo"}


def test_unknown_scheme_is_a_value_error_naming_the_known_ones() -> None:
    with pytest.raises(SchemeParamsError, match="known: sha256-weights, planout, growthbook, eppo") as info:
        assign("optimizely", {}, "u")
    assert isinstance(info.value, ValueError) and isinstance(info.value, ConfigError)
    assert info.value.scheme == "optimizely"


@pytest.mark.parametrize("scheme", ["sha256-weights", "planout", "growthbook", "eppo"])
def test_params_must_be_a_mapping(scheme: str) -> None:
    with pytest.raises(SchemeParamsError):
        assigner(scheme, ["not", "a", "mapping"])  # type: ignore[arg-type]


def test_unknown_keys_are_named() -> None:
    params = {"param": "p", "op": "UniformChoice", "choices": ["a"], "experiment_salt": "e", "colour": 1}
    with pytest.raises(SchemeParamsError, match="colour") as info:
        assigner("planout", params)
    assert info.value.key == "colour"


def test_assignment_is_immutable_and_explains_itself() -> None:
    a = assign("planout", {"param": "p", "op": "BernoulliTrial", "p": 0.5, "experiment_salt": "e"}, "u1")
    assert a.variant in {"0", "1"} and a.value in {0, 1}
    assert a.inputs["salt"] == "e.p" and 0 <= a.bucket < 1  # type: ignore[operator]
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.variant = "x"  # type: ignore[misc]
    assert isinstance(a, Assignment) and a.reason
