"""A valid definition to vary in tests, and a helper to write definition files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from schemas.definitions import Definition, parse_definition

BASE: dict[str, Any] = {
    "key": "checkout",
    "revision": 1,
    "title": "Checkout",
    "unit_type": "user_id",
    "scheme": "sha256-weights",
    "scheme_params": {"salt": "checkout"},
    "variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}],
    "fallback_variant": "A",
    "state": "active",
    "attribution_window": "7d",
}


def definition(**changes: Any) -> Definition:
    """BASE with ``changes`` (a ``None`` value removes the field), validated."""
    data = {**BASE, **changes}
    return parse_definition({k: v for k, v in data.items() if v is not None})


def write(directory: Path, name: str, data: dict[str, Any] | str) -> Path:
    path = directory / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path
