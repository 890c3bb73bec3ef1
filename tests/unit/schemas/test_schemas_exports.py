"""Every schemas module lists its public names in ``__all__``, and every listed name exists."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = ["catalog", "cli", "evolution", "fingerprint", "models", "registry", "serde"]


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_exactly_the_public_definitions(name: str) -> None:
    module = importlib.import_module(f"schemas.{name}")
    defined = {
        member
        for member, value in vars(module).items()
        if not member.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }
    assert defined <= set(module.__all__)
    assert all(hasattr(module, member) for member in module.__all__)
