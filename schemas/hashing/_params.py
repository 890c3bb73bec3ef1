"""Typed reads of ``scheme_params`` dicts that fail loudly, naming the scheme and the key.

Experiment definitions are YAML written by people; a typo in a key would otherwise silently fall
back to a default and every exposure would be flagged (or, worse, none would).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from abstream.errors import SchemeParamsError

__all__ = ["Params"]


def _type_name(value: object) -> str:
    return type(value).__name__


@dataclass(frozen=True, slots=True)
class Params:
    """A validated view of one params mapping; ``where`` prefixes keys of nested mappings."""

    scheme: str
    data: Mapping[str, object]
    where: str = ""

    @classmethod
    def of(
        cls,
        scheme: str,
        data: object,
        *,
        required: Collection[str],
        optional: Collection[str] = (),
        where: str = "",
    ) -> Params:
        """Check that ``data`` is a mapping with all ``required`` keys and nothing unknown."""
        if not isinstance(data, Mapping):
            raise SchemeParamsError(
                f"{scheme}: {where or 'params'} must be a mapping, got {_type_name(data)}",
                scheme=scheme,
                key=where.rstrip(".") or None,
            )
        unknown = sorted(set(data) - set(required) - set(optional))
        if unknown:
            allowed = ", ".join(sorted({*required, *optional}))
            raise SchemeParamsError(
                f"{scheme}: unknown key(s) {', '.join(where + k for k in unknown)} (allowed: {allowed})",
                scheme=scheme,
                key=where + unknown[0],
            )
        missing = [k for k in required if k not in data]
        if missing:
            raise SchemeParamsError(
                f"{scheme}: missing required key(s) {', '.join(where + k for k in missing)}",
                scheme=scheme,
                key=where + missing[0],
            )
        return cls(scheme, data, where)

    def error(self, key: str, problem: str) -> SchemeParamsError:
        """An error naming ``key`` (with its nesting prefix) and what is wrong with it."""
        return SchemeParamsError(f"{self.scheme}: {self.where}{key} {problem}", scheme=self.scheme, key=key)

    def has(self, key: str) -> bool:
        """Whether ``key`` is present (and not null)."""
        return self.data.get(key) is not None

    def str_(self, key: str) -> str:
        """A required string."""
        value = self.data.get(key)
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {_type_name(value)}")
        return value

    def opt_str(self, key: str) -> str | None:
        """An optional string (absent or null gives ``None``)."""
        return self.str_(key) if self.has(key) else None

    def int_(self, key: str) -> int:
        """A required integer (booleans are rejected: YAML ``yes`` is not a weight)."""
        value = self.data.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(key, f"must be an integer, got {_type_name(value)}")
        return value

    def number(self, key: str) -> int | float:
        """A required int or float (booleans are rejected)."""
        value = self.data.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(key, f"must be a number, got {_type_name(value)}")
        return value

    def opt_number(self, key: str) -> int | float | None:
        """An optional number (absent or null gives ``None``)."""
        return self.number(key) if self.has(key) else None

    def bool_(self, key: str, default: bool) -> bool:
        """An optional boolean with a default."""
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {_type_name(value)}")
        return value

    def list_(self, key: str) -> Sequence[object]:
        """A required list (a string is not a list of characters here)."""
        value = self.data.get(key)
        if not isinstance(value, list | tuple):
            raise self.error(key, f"must be a list, got {_type_name(value)}")
        return value

    def opt_list(self, key: str) -> Sequence[object] | None:
        """An optional list (absent or null gives ``None``)."""
        return self.list_(key) if self.has(key) else None

    def sub(self, key: str, *, required: Collection[str], optional: Collection[str] = ()) -> Params:
        """A nested mapping, validated like the top level."""
        return Params.of(
            self.scheme, self.data.get(key), required=required, optional=optional, where=f"{self.where}{key}."
        )
