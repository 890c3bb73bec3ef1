"""Versioned ClickHouse migrations: ``sinks/migrations/NNNN_name.sql`` applied in order, recorded once.

ClickHouse has no transactional DDL, so the contract is: every statement is idempotent (``IF NOT
EXISTS``), a migration is recorded in ``schema_migrations`` (version, name, checksum, applied_at) only
after all its statements succeeded, and re-running skips what is recorded. Editing a recorded migration
would silently fork the schema between stores, so a checksum mismatch is an error naming the file.

    applied = migrate(client)          # [] when the schema is up to date

The analyst's views are not migrations: each is defined once, in ``sinks/views/<name>.sql`` (``CREATE OR
REPLACE VIEW``), and every ``migrate`` re-applies all of them after the migrations, so the current
definition of a view is one file, not the last of several migrations that re-created it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from abstream.errors import MigrationError

__all__ = [
    "Migration",
    "applied_migrations",
    "apply_views",
    "load_migrations",
    "load_views",
    "migrate",
    "split_statements",
]

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree ORDER BY version
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: its version (the ``NNNN`` prefix), name and SQL text."""

    version: int
    name: str
    sql: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text: any edit, even whitespace, is a different migration."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(folder: Traversable | Path | None = None) -> list[Migration]:
    """The ``NNNN_name.sql`` files of ``folder`` (default: the packaged ones), by version."""
    root = folder or resources.files("sinks.migrations")
    found: dict[int, Migration] = {}
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE.match(entry.name)
        if match is None:
            raise MigrationError(
                f"{entry.name}: migration files are named NNNN_name.sql (4 digits, lowercase name)",
                migration=entry.name,
            )
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"{entry.name} and {found[version].filename} share version {version}", migration=entry.name
            )
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def split_statements(sql: str) -> list[str]:
    """The statements of a script, split on ``;`` outside quotes and comments; comment-only parts dropped."""
    statements: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(sql):
        end = _skip_token(sql, i)
        if sql[i] == ";":
            statements.append("".join(current))
            current = []
        elif not sql.startswith(("--", "/*"), i):
            current.append(sql[i:end])
        i = end
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def _skip_token(sql: str, i: int) -> int:
    """Index just past the quoted string, comment or single character starting at ``i``."""
    if sql.startswith("--", i):
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end
    if sql.startswith("/*", i):
        end = sql.find("*/", i + 2)
        return len(sql) if end < 0 else end + 2
    quote = sql[i]
    if quote not in "'\"`":
        return i + 1
    j = i + 1
    while j < len(sql) and sql[j] != quote:
        j += 2 if sql[j] == "\\" else 1
    return j + 1


def applied_migrations(client: Any) -> dict[int, tuple[str, str]]:
    """Recorded migrations: version -> (name, checksum)."""
    client.command(_LEDGER)
    rows = client.query("SELECT version, any(name), any(checksum) FROM schema_migrations GROUP BY version").result_rows
    return {int(version): (name, checksum) for version, name, checksum in rows}


def migrate(
    client: Any, migrations: list[Migration] | None = None, *, views: dict[str, str] | None = None
) -> list[Migration]:
    """Apply the pending migrations in order, then the views; the migrations applied now (empty when up to date)."""
    migrations = load_migrations() if migrations is None else migrations
    recorded = applied_migrations(client)
    _check_recorded(recorded, migrations)
    pending = [m for m in migrations if m.version not in recorded]
    for migration in pending:
        _apply(client, migration)
    apply_views(client, views)
    return pending


def load_views(folder: Traversable | Path | None = None) -> dict[str, str]:
    """The view files of ``folder`` (default: the packaged ``sinks/views``): name -> SQL, by name."""
    root = folder or resources.files("sinks.views")
    files = sorted((entry for entry in root.iterdir() if entry.name.endswith(".sql")), key=lambda e: e.name)
    return {entry.name.removesuffix(".sql"): entry.read_text(encoding="utf-8") for entry in files}


def apply_views(client: Any, views: dict[str, str] | None = None) -> None:
    """(Re)create every view; each file's statements must all be ``CREATE OR REPLACE VIEW``."""
    for name, sql in (load_views() if views is None else views).items():
        for statement in split_statements(sql):
            if not statement.upper().startswith("CREATE OR REPLACE VIEW"):
                raise MigrationError(
                    f"sinks/views/{name}.sql: a view file holds CREATE OR REPLACE VIEW statements only "
                    "(tables belong in a migration)",
                    migration=f"{name}.sql",
                )
            try:
                client.command(statement)
            except Exception as exc:
                raise MigrationError(f"view {name}.sql failed: {exc}", migration=f"{name}.sql") from exc


def _check_recorded(recorded: dict[int, tuple[str, str]], migrations: list[Migration]) -> None:
    by_version = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(recorded.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"migration {version:04d}_{name}.sql is recorded as applied but no longer exists; "
                "restore the file (migrations are never deleted)",
                migration=f"{version:04d}_{name}.sql",
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {migration.filename} was edited after it was applied (recorded checksum "
                f"{checksum[:12]}…, file {migration.checksum[:12]}…); restore it and add a new migration instead",
                migration=migration.filename,
            )


def _apply(client: Any, migration: Migration) -> None:
    for number, statement in enumerate(split_statements(migration.sql), start=1):
        try:
            client.command(statement)
        except Exception as exc:
            raise MigrationError(
                f"migration {migration.filename}, statement {number} failed: {exc}", migration=migration.filename
            ) from exc
    client.insert(
        "schema_migrations",
        [[migration.version, migration.name, migration.checksum]],
        column_names=["version", "name", "checksum"],
    )
