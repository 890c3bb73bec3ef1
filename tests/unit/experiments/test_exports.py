"""Every module of this feature lists its public names in ``__all__``, and every listed name exists."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = [
    "schemas.definitions",
    "schemas.durations",
    "schemas.metric_catalog",
    "schemas.metrics",
    "schemas.definition_changes",
    "schemas.verification",
    "producers.assigner",
    "deploy.definitions_topic",
    "abstream.cli.experiments",
    "abstream.cli.metrics",
    "abstream.cli.assignment",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_exactly_the_public_definitions(name: str) -> None:
    module = importlib.import_module(name)
    defined = {
        member
        for member, value in vars(module).items()
        if not member.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }
    assert defined <= set(module.__all__)
    assert all(hasattr(module, member) for member in module.__all__)
