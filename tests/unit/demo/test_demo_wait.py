"""The demo reports only once everything its truth predicts has reached ClickHouse."""

from __future__ import annotations

from collections import Counter
from typing import Any

from abstream.demo.run import _arrived, _expected
from abstream.demo.simulate import Truth


def _truth() -> Truth:
    return Truth(
        units=Counter({("moon_mars", "moon"): 6, ("moon_mars", "mars"): 4}),
        converters=Counter({("moon_mars", "moon"): 1, ("moon_mars", "mars"): 2}),
        faulty_exposures=Counter({"moon_mars": 2}),
    )


def _report(mismatches: int, mars_conversions: int = 2) -> dict[str, Any]:
    variants = {"moon": {"units": 6, "converting_units": 1}, "mars": {"units": 4, "converting_units": mars_conversions}}
    return {"experiments": {"moon_mars": {"mismatches": mismatches, "variants": variants}}}


def test_units_and_conversions_without_the_flags_are_not_yet_done() -> None:
    # Flags travel on their own topic: the first exposures and conversions can be in before them.
    assert _arrived(_report(mismatches=1)) < _expected(_truth())


def test_done_once_units_conversions_and_flags_add_up() -> None:
    assert _arrived(_report(mismatches=2)) == _expected(_truth()) == 15


def test_a_missing_conversion_is_not_made_up_by_flags() -> None:
    assert _arrived(_report(mismatches=2, mars_conversions=1)) < _expected(_truth())
