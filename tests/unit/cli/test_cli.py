"""The CLI explains itself and turns errors into one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from abstream.cli import app
from abstream.settings import Settings


def test_help_lists_the_command_groups() -> None:
    result = CliRunner().invoke(app, ["--help"])

    assert result.exit_code == 0
    for group in ("local", "topics", "ABSTREAM_KAFKA_BOOTSTRAP"):
        assert group in result.output


def test_an_unreachable_broker_is_one_clear_line() -> None:
    env = {"ABSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1", "PATH": "/usr/bin:/bin"}

    result = subprocess.run(
        [sys.executable, "-m", "abstream", "topics", "create"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "no Kafka broker answers at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_default_to_the_embedded_store_under_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("ABSTREAM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ABSTREAM_CLICKHOUSE_URL", raising=False)

    settings = Settings()

    assert settings.clickhouse_url == f"chdb://{tmp_path}/clickhouse"
    assert settings.topic_prefix == "abstream."


def test_settings_reject_a_bad_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABSTREAM_LOCAL_KAFKA_HEAP", "lots")

    with pytest.raises(ValueError, match="local_kafka_heap"):
        Settings()
