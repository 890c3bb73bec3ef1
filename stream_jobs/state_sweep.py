"""Bounded state: a periodic sweep over the units table, so units never seen again are dropped too.

Applying a record already prunes that unit's state (buffered events past the allowed lateness,
experiments ended longer ago than the grace period). A unit that is never seen again would keep its
entry forever, so the agent also walks its partitions' entries a slice at a time and applies the same
pruning against each partition's watermark; an entry left empty is deleted (a changelog tombstone).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["sweep"]


def sweep(
    entries: Iterable[tuple[bytes, bytes]],
    *,
    expire: Callable[[dict[str, Any], int | None], None],
    is_empty: Callable[[dict[str, Any]], bool],
    watermark: int | None,
) -> Iterator[tuple[bytes, bytes | None]]:
    """The (key, new value) pairs to write, None meaning delete; unchanged entries are not yielded."""
    if watermark is None:
        return
    for key, raw in entries:
        if key.startswith(b"\x00"):  # the job's own bookkeeping (watermarks)
            continue
        state = json.loads(raw)
        expire(state, watermark)
        if is_empty(state):
            yield key, None
            continue
        new = json.dumps(state, separators=(",", ":")).encode()
        if new != raw:
            yield key, new
