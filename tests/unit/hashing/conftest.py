"""Shared oracles' setup and unit-id generators for the hashing differential tests."""

from __future__ import annotations

import collections
import collections.abc
import random
import string
from collections.abc import Callable

import pytest

# planout 0.6 (its latest release) still does `from collections import MutableMapping`, removed in
# Python 3.10. Restore the alias for the oracle only; nothing in abstream imports planout.
if not hasattr(collections, "MutableMapping"):
    collections.MutableMapping = collections.abc.MutableMapping  # type: ignore[attr-defined]

_NON_ASCII = [
    "é",
    "ß",
    "Ω",
    "中文",
    "用户",
    "ユーザー",
    "😀",
    "👩‍💻",
    "\U0001d518",  # MATHEMATICAL FRAKTUR CAPITAL U: outside the BMP, two UTF-16 code units
    "🇫🇷",
    "\u0000",
    "\uffff",
]

UnitMaker = Callable[..., list[str]]


def _unit(rng: random.Random, non_ascii: bool) -> str:
    kind = rng.randrange(6 if non_ascii else 4)
    if kind == 0:
        return f"{rng.getrandbits(128):032x}"
    if kind == 1:
        return str(rng.randrange(10**12))
    if kind == 2:
        return "".join(rng.choices(string.ascii_letters + string.digits + "-_.@:", k=rng.randrange(1, 24)))
    if kind == 3:
        return f"user-{rng.randrange(100_000)}"
    parts = rng.choices(_NON_ASCII, k=rng.randrange(1, 4))
    return "".join(p + rng.choice(["", "x", "1", " "]) for p in parts)


@pytest.fixture
def make_units() -> UnitMaker:
    """``make_units(n, seed, non_ascii=False)``: reproducible unit ids of several shapes."""

    def make(n: int, seed: int, *, non_ascii: bool = False) -> list[str]:
        rng = random.Random(seed)
        return [_unit(rng, non_ascii) for _ in range(n)]

    return make
