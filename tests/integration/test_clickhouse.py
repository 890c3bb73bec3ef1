"""ClickHouse through the clickhouse-connect client built from the URL (chDB by default)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from sinks.clickhouse import is_embedded

pytestmark = pytest.mark.integration


def test_merge_tree_insert_and_query(clickhouse: Any) -> None:
    clickhouse.command(
        "CREATE TABLE exposures (experiment String, variant String, unit_id String, n UInt32) "
        "ENGINE = MergeTree ORDER BY (experiment, unit_id)"
    )
    rows = [["moon_mars", "Moon" if i % 2 else "Mars", f"u{i}", i] for i in range(100)]
    clickhouse.insert("exposures", rows, column_names=["experiment", "variant", "unit_id", "n"])

    result = clickhouse.query("SELECT variant, count(), sum(n) FROM exposures GROUP BY variant ORDER BY variant")

    assert result.result_rows == [("Mars", 50, sum(range(0, 100, 2))), ("Moon", 50, sum(range(1, 100, 2)))]


def test_a_second_process_on_the_same_chdb_store_gets_a_clear_error(clickhouse_url: str, clickhouse: Any) -> None:
    if not is_embedded(clickhouse_url):
        pytest.skip("only the embedded store is single-process")  # containers backend: a server allows many
    code = f"from sinks.clickhouse import connect; connect({clickhouse_url!r})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    assert result.returncode == 1
    assert "is open in another process" in result.stderr
    assert f"pid {__import__('os').getpid()}" in result.stderr
