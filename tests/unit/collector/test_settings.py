"""Collector settings: explicit about auth, strict about unknown options, one clear line on the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from producers.collector.settings import CollectorSettings


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ABSTREAM_COLLECTOR_TOKENS", '["k1", "k2"]')
    monkeypatch.setenv("ABSTREAM_COLLECTOR_ALLOWED_ORIGINS", '["https://shop.example"]')
    monkeypatch.setenv("ABSTREAM_COLLECTOR_PORT", "9000")
    s = CollectorSettings()
    assert [t.get_secret_value() for t in s.tokens] == ["k1", "k2"] and "k1" not in repr(s)
    assert s.port == 9000 and s.allowed_origins == ("https://shop.example",)
    assert s.spool_path(tmp_path) == tmp_path / "collector" / "spool"
    assert CollectorSettings(spool_dir=tmp_path / "x").spool_path(tmp_path) == tmp_path / "x"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "none configured"),
        ({"tokens": ["k"], "allow_anonymous": True}, "only with no tokens"),
        ({"tokens": [""]}, "empty token"),
        ({"tokens": ["k"], "rate_limit": 5}, "Extra inputs are not permitted"),
        ({"tokens": ["k"], "port": 70000}, "less than or equal to 65535"),
    ],
)
def test_unclear_or_unknown_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CollectorSettings(**kwargs)


def test_anonymous_mode_must_be_asked_for() -> None:
    assert CollectorSettings(allow_anonymous=True).tokens == ()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ABSTREAM_COLLECTOR_TOKENS": '["k"]', "ABSTREAM_COLLECTOR_MAX_BODY_BYTES": "0"},
            "max_body_bytes: Input should",
        ),
        ({}, "settings: tokens: none configured; set ABSTREAM_COLLECTOR_TOKENS"),
    ],
)
def test_the_command_reports_bad_settings_in_one_line(env: dict[str, str], message: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "abstream", "collector", "--port", "0"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[3],
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: collector settings (ABSTREAM_COLLECTOR_*): {message}" in " ".join(result.stderr.split())
