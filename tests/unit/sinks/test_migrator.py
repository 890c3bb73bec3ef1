"""The migration runner: file naming, order, statement splitting, checksums; a fake client records the SQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from abstream.errors import MigrationError
from sinks.migrator import Migration, load_migrations, load_views, migrate, split_statements


class FakeClickHouse:
    """Keeps ``schema_migrations`` rows in memory and records every other statement."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.statements: list[str] = []
        self.recorded: list[list[Any]] = []
        self.fail_on = fail_on

    def command(self, sql: str) -> None:
        if "schema_migrations" in sql:
            return
        if self.fail_on and self.fail_on in sql:
            raise RuntimeError(f"Code: 62. Syntax error near {self.fail_on}")
        self.statements.append(sql)

    def query(self, _sql: str) -> Any:
        rows = [(v, n, c) for v, n, c in self.recorded]
        return type("Result", (), {"result_rows": rows})()

    def insert(self, table: str, rows: list[list[Any]], column_names: list[str]) -> None:
        assert table == "schema_migrations" and column_names == ["version", "name", "checksum"]
        self.recorded += rows


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_migrations_load_in_version_order_and_other_files_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, {"0010_later.sql": "SELECT 10", "0002_second.sql": "SELECT 2", "README.md": "x", "__init__.py": ""})

    assert [(m.version, m.name) for m in load_migrations(tmp_path)] == [(2, "second"), (10, "later")]


@pytest.mark.parametrize("name", ["2_short.sql", "0003-dash.sql", "0003_Upper.sql"])
def test_a_misnamed_migration_is_an_error_naming_it(tmp_path: Path, name: str) -> None:
    write(tmp_path, {name: "SELECT 1"})

    with pytest.raises(MigrationError, match=name.replace(".", r"\.")) as caught:
        load_migrations(tmp_path)
    assert caught.value.migration == name


def test_two_migrations_with_one_version_are_an_error(tmp_path: Path) -> None:
    write(tmp_path, {"0001_a.sql": "SELECT 1", "0001_b.sql": "SELECT 2"})

    with pytest.raises(MigrationError, match="share version 1"):
        load_migrations(tmp_path)


def test_statements_split_on_semicolons_outside_strings_and_comments() -> None:
    sql = """
        -- a comment; with a semicolon
        CREATE TABLE t (s String DEFAULT 'a;b', q String COMMENT 'it\\'s; fine') ENGINE = Memory;
        /* block; comment */
        SELECT "weird;name", `back;tick` FROM t;

        -- trailing comment only
    """

    assert split_statements(sql) == [
        "CREATE TABLE t (s String DEFAULT 'a;b', q String COMMENT 'it\\'s; fine') ENGINE = Memory",
        'SELECT "weird;name", `back;tick` FROM t',
    ]


def test_pending_migrations_apply_in_order_and_rerunning_is_a_no_op() -> None:
    client = FakeClickHouse()
    migrations = [Migration(1, "one", "CREATE TABLE a;\nCREATE TABLE b;"), Migration(2, "two", "CREATE VIEW c")]

    first = migrate(client, migrations, views={})
    second = migrate(client, migrations, views={})

    assert [m.version for m in first] == [1, 2] and second == []
    assert client.statements == ["CREATE TABLE a", "CREATE TABLE b", "CREATE VIEW c"]
    assert [row[:2] for row in client.recorded] == [[1, "one"], [2, "two"]]


def test_every_migrate_reapplies_the_views_after_the_migrations() -> None:
    client = FakeClickHouse()
    migrations = [Migration(1, "one", "CREATE TABLE a")]
    views = {"v": "-- a view\nCREATE OR REPLACE VIEW v AS SELECT 1", "w": "CREATE OR REPLACE VIEW w AS SELECT 2"}

    migrate(client, migrations, views=views)
    migrate(client, migrations, views=views)

    assert client.statements == ["CREATE TABLE a", *(["CREATE OR REPLACE VIEW v AS SELECT 1",
                                                      "CREATE OR REPLACE VIEW w AS SELECT 2"] * 2)]  # fmt: skip


def test_a_view_file_with_anything_but_views_is_refused_by_name() -> None:
    with pytest.raises(MigrationError, match=r"sinks/views/bad.sql: a view file holds CREATE OR REPLACE VIEW"):
        migrate(FakeClickHouse(), [], views={"bad": "CREATE TABLE t (a Int8) ENGINE = Memory"})


def test_the_packaged_views_are_one_file_per_view_named_after_it() -> None:
    views = load_views()

    assert {"experiment_report", "experiment_timeline", "metric_moments", "variant_minutes"} <= set(views)
    for name, sql in views.items():
        statements = split_statements(sql)
        assert [s.split()[4] for s in statements] == [name], name  # CREATE OR REPLACE VIEW <name> AS


def test_an_edited_applied_migration_is_refused_by_name() -> None:
    client = FakeClickHouse()
    migrate(client, [Migration(1, "one", "CREATE TABLE a")], views={})

    with pytest.raises(MigrationError, match=r"0001_one\.sql was edited after it was applied") as caught:
        migrate(
            client, [Migration(1, "one", "CREATE TABLE a -- tweak"), Migration(2, "two", "CREATE TABLE b")], views={}
        )
    assert caught.value.migration == "0001_one.sql"
    assert client.statements == ["CREATE TABLE a"]  # nothing after the check ran


def test_a_deleted_applied_migration_is_refused() -> None:
    client = FakeClickHouse()
    migrate(client, [Migration(1, "one", "CREATE TABLE a")], views={})

    with pytest.raises(MigrationError, match=r"0001_one\.sql is recorded as applied but no longer exists"):
        migrate(client, [Migration(2, "two", "CREATE TABLE b")], views={})


def test_a_failing_statement_names_the_migration_and_is_not_recorded() -> None:
    client = FakeClickHouse(fail_on="broken")
    migrations = [Migration(1, "ok", "CREATE TABLE a"), Migration(2, "bad", "CREATE TABLE b;\nCREATE broken")]

    with pytest.raises(MigrationError, match=r"0002_bad\.sql, statement 2 failed"):
        migrate(client, migrations, views={})
    assert [row[0] for row in client.recorded] == [1]


# Copies into a ReplacingMergeTree keyed by the record's identity: run twice, FINAL reads the same rows.
# Inserts a second run cannot double: into a replacing table, or under a fixed deduplication token.
RERUNNABLE_INSERTS = (
    "INSERT INTO unit_conversions", "INSERT INTO exposure_units", "INSERT INTO metric_units",
    "INSERT INTO multi_exposure_stats", "INSERT INTO multi_metric_stats", "INSERT INTO unattributed_stats",
    "INSERT INTO unattributed_states",
)  # fmt: skip


def test_the_packaged_migrations_are_well_formed() -> None:
    migrations = load_migrations()

    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(split_statements(m.sql) for m in migrations)
    # every statement can run again after an interruption
    assert all(
        "IF NOT EXISTS" in s or "OR REPLACE" in s or "IF EXISTS" in s or s.startswith(RERUNNABLE_INSERTS)
        for m in migrations
        for s in split_statements(m.sql)
    )
