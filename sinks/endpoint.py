"""Where a running sink can be asked: ``<data dir>/sink.json`` with its pid and API address.

chDB lets one process open a store, and the running sink is that process; so it serves reads over
a loopback HTTP API, and writes this file for ``abstream report`` to find it. Standard library only:
the report side must not need aiohttp.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from abstream.errors import ReportError

__all__ = ["SinkEndpoint", "get_json", "read_endpoint", "remove_endpoint", "write_endpoint"]


@dataclass(frozen=True, slots=True)
class SinkEndpoint:
    """A running sink: its pid, the API's host and port, and the store it owns."""

    pid: int
    host: str
    port: int
    clickhouse_url: str
    database: str

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def write_endpoint(path: Path, endpoint: SinkEndpoint) -> None:
    """Write atomically (temp file + rename), so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(endpoint), indent=2))
    tmp.replace(path)


def read_endpoint(path: Path) -> SinkEndpoint | None:
    """The recorded sink, or None if there is no (readable) file."""
    try:
        return SinkEndpoint(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def remove_endpoint(path: Path, pid: int) -> None:
    """Remove the file if it still names ``pid`` (a newer sink may have replaced it)."""
    endpoint = read_endpoint(path)
    if endpoint is not None and endpoint.pid == pid:
        path.unlink(missing_ok=True)


def get_json(endpoint: SinkEndpoint, path: str, params: dict[str, str], *, timeout: float = 60.0) -> Any:
    """GET ``path`` from the sink's API; ReportError with the server's message on failure."""
    url = f"{endpoint.base_url}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http to loopback, built above
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise ReportError(_server_message(exc)) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ReportError(f"the sink (pid {endpoint.pid}) does not answer at {endpoint.base_url}: {exc}") from None


def _server_message(exc: urllib.error.HTTPError) -> str:
    with exc:
        try:
            return str(json.load(exc)["error"])
        except (ValueError, KeyError, TypeError):
            return f"the sink's API answered HTTP {exc.code}"
