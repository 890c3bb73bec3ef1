"""Reading definition YAML strictly, and turning pydantic's errors into sentences a user can act on.

PyYAML keeps the last of two equal keys without a word: a second ``state:`` further down a file would
silently win. The loader here refuses duplicates, naming both lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from abstream.errors import DefinitionError
from schemas._definition_rules import Problem, Problems

__all__ = ["describe_errors", "read_yaml", "yaml_files"]

_EXAMPLES = {
    "key": "key: checkout_v2",
    "revision": "revision: 1",
    "title": "title: New checkout",
    "unit_type": "unit_type: user_id",
    "scheme": "scheme: sha256-weights",
    "variants": "variants: [{name: A, weight: 50}, {name: B, weight: 50}]",
    "fallback_variant": "fallback_variant: A",
    "state": "state: active",
    "attribution_window": "attribution_window: 7d",
}


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing duplicate mapping keys."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[object, int] = {}
    for key_node, _ in node.value:
        key, line = loader.construct_object(key_node, deep=True), key_node.start_mark.line + 1
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {first})", key_node.start_mark
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_yaml(path: Path) -> object:
    """The parsed file; DefinitionError with the line and column when it is not valid YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError([(str(path), f"cannot be read: {exc}")]) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise DefinitionError([(where, f"not valid YAML: {exc.problem or exc.context}")]) from None
    except yaml.YAMLError as exc:
        raise DefinitionError([(str(path), f"not valid YAML: {exc}")]) from None


def yaml_files(paths: Path | Iterable[Path], what: str) -> list[Path]:
    """The files ``paths`` name: files as given, directories as their ``*.yaml``/``*.yml`` files, sorted.

    ``what`` names the files in the error for a directory without any (``definition``, ``metric``).
    """
    files: list[Path] = []
    for path in [paths] if isinstance(paths, Path) else list(paths):
        if path.is_dir():
            listed = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            if not listed:
                raise DefinitionError([(str(path), f"holds no *.yaml {what} files")])
            files += listed
        elif path.is_file():
            files.append(path)
        else:
            raise DefinitionError([(str(path), "no such file or directory")])
    return files


def describe_errors(
    exc: ValidationError, fields: Mapping[str, Sequence[str]], examples: Mapping[str, str] = _EXAMPLES
) -> list[Problem]:
    """One ``(field path, message)`` per problem; ``fields`` lists the known fields per nesting level.

    ``examples`` gives a top-level field's example for the message saying it is missing.
    """
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, Problems):
            problems += cause.problems
        else:
            problems.append((_path(error["loc"]), _message(error, fields, examples)))
    return problems


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _message(error: ErrorDetails, fields: Mapping[str, Sequence[str]], examples: Mapping[str, str]) -> str:
    kind, got, loc = error["type"], error.get("input"), error["loc"]
    if kind == "missing":
        example = examples.get(str(loc[-1]))
        return "is required; add it" + (f" (e.g. {example})" if example and len(loc) == 1 else "")
    if kind == "extra_forbidden":
        known = fields.get(str(loc[0]) if len(loc) > 1 else "", ())
        return f"is not a known field; the fields are: {', '.join(known)}"
    if kind in ("value_error", "assertion_error"):
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "literal_error":
        return f"{got!r} is not allowed; use {error.get('ctx', {}).get('expected')}"
    if kind == "timezone_aware":
        return f"{got} has no timezone; write e.g. 2025-01-01T00:00:00Z or 2025-01-01T02:00:00+02:00"
    message = error["msg"].removeprefix("Input ")
    return f"{message[0].lower()}{message[1:]}, got {got!r} ({type(got).__name__})"
