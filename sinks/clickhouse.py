"""The one way abstream reaches ClickHouse: a clickhouse-connect client built from a URL.

- ``chdb://PATH`` opens the ClickHouse engine in this process (chDB). Only one process may open a
  path, and a process may open only one path; we hold an owner lock next to the store so a second
  process gets an error naming the owner instead of chDB's opaque one.
- ``http://`` / ``https://`` reach a ClickHouse server; any number of processes may connect.

    client = connect("chdb:///var/lib/abstream/clickhouse", database="abstream")
    client.query("SELECT count() FROM first_exposures").result_rows
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from abstream.errors import ClickHouseError, ClickHouseLockedError, ConfigError

__all__ = ["connect", "is_embedded"]

_lock = threading.Lock()
_owned: dict[str, int] = {}  # chDB path -> lock file descriptor, held for the life of the process


def is_embedded(url: str) -> bool:
    return url.startswith("chdb://")


def _import_clickhouse_connect() -> Any:
    try:
        import clickhouse_connect
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("ClickHouse support needs the sink extra: pip install 'abstream[sink]'") from exc
    return clickhouse_connect


def _claim_chdb_path(path: Path) -> None:
    """Take the store's owner lock (once per process); fail clearly if another process has it."""
    key = str(path.resolve())
    with _lock:
        if key in _owned:
            return
        if _owned:
            other = next(iter(_owned))
            raise ClickHouseError(
                f"this process already opened the embedded ClickHouse at {other}; "
                f"chDB allows one path per process, so {key} cannot be opened too"
            )
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.parent / f".{path.name}.owner", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ClickHouseLockedError(
                f"the embedded ClickHouse at {key} is open in another process (pid {owner}). chDB allows one "
                "process per store: query through that process (the running pipeline's report/dashboard), "
                "stop it, or point ABSTREAM_CLICKHOUSE_URL at a ClickHouse server.",
                path=key,
                pid=int(owner) if owner.isdigit() else None,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _owned[key] = fd


def connect(url: str, *, database: str | None = None, create_database: bool = True) -> Any:
    """A clickhouse-connect client for ``url``, bound to ``database`` (created if missing)."""
    scheme = urlsplit(url).scheme
    if scheme not in ("chdb", "http", "https"):
        raise ConfigError(f"ClickHouse URL {url!r}: expected chdb://PATH, http://HOST:PORT or https://HOST:PORT")
    cc = _import_clickhouse_connect()
    if scheme == "chdb":
        path = url.removeprefix("chdb://")
        if not path or path == "memory":
            raise ConfigError(
                f"ClickHouse URL {url!r}: give the store's directory, e.g. chdb:///var/lib/abstream/clickhouse"
            )
        _claim_chdb_path(Path(path))
    try:
        client = cc.get_client(dsn=url)
        if database:
            if create_database:
                client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            client = cc.get_client(dsn=url, database=database)
    except Exception as exc:
        raise ClickHouseError(f"cannot reach ClickHouse at {url}: {exc}") from exc
    return client
