"""The main job: ``abstream demo`` at a small N, its estimates checked against the simulated truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).parents[2]


def _abstream(env: dict[str, str], *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abstream", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_the_demo_finds_the_true_effect_and_every_faulty_exposure(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ABSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "ABSTREAM_DATA_DIR": str(tmp_path),
        "COLUMNS": "200",
    }
    try:
        result = _abstream(env, "demo", "--visitors", "600", "--seed", "3", "--faulty-client-rate", "0.05", "--json")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        report = json.loads(result.stdout)
        text = _abstream(env, "report", "moon_mars")
    finally:
        stopped = _abstream(env, "demo", "stop", timeout=120)

    truth = report["truth"]
    for key in ("moon_mars", "white_gold_btn"):
        got, want = report["experiments"][key], truth[key]
        assert {v: got["variants"][v]["units"] for v in want["variants"]} == {
            v: w["units"] for v, w in want["variants"].items()
        }
        for count in ("converting_units", "conversions"):  # units with any event, and the events
            assert {v: got["variants"][v][count] for v in want["variants"]} == {
                v: w[count] for v, w in want["variants"].items()
            }
        metrics = {m["key"]: m for m in got["metrics"]}
        assert list(metrics) == list(want["metrics"])  # every metric the experiment names, primary first
        for key, values in want["metrics"].items():  # the estimates are exact on the sample
            assert {v: metrics[key]["variants"][v]["value"] for v in values} == pytest.approx(values, rel=1e-9)
        assert not any(m["guardrail_failed"] for m in metrics.values())  # bounces do not depend on the variant
        assert got["mismatches"] == want["faulty_exposures"] > 0
        assert got["multi_variant_units"] == 0
        assert got["srm_p"] > 0.001  # the hash splits 50/50
    reserve = report["experiments"]["moon_mars"]["metrics"][0]
    assert reserve["key"] == "reserve_click" and reserve["role"] == "primary"
    moon, mars = (reserve["variants"][v] for v in ("Moon", "Mars"))
    assert moon["ci_low"] <= 0.10 <= moon["ci_high"] and mars["ci_low"] <= 0.20 <= mars["ci_high"]
    table = [
        [mars["nonzero_units"], mars["units"] - mars["nonzero_units"]],
        [moon["nonzero_units"], moon["units"] - moon["nonzero_units"]],
    ]
    assert stats.chi2_contingency(table)[1] < 0.05  # Mars really converts better, and the data shows it
    assert mars["lift"]["p_value"] < 0.05 and mars["lift"]["relative"] > 0
    assert text.returncode == 0 and "Mars:" in text.stdout and "Conv=" in text.stdout
    assert "reserve_click [primary]" in text.stdout and "revenue_per_order [secondary]" in text.stdout
    assert report["dashboard"].startswith("http://127.0.0.1:")
    assert "stopped: jobs, sink" in stopped.stdout


def test_the_demo_runs_again_on_the_same_data_dir(kafka_bootstrap: str, tmp_path: Path) -> None:
    """A second ``make demo`` is a new app on new topics: it must not trip over the first one's job state."""
    env = {**os.environ, "ABSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap, "ABSTREAM_DATA_DIR": str(tmp_path)}
    reports = []
    for seed in ("1", "2"):
        try:
            result = _abstream(env, "demo", "--visitors", "100", "--seed", seed, "--json")
        finally:
            _abstream(env, "demo", "stop", timeout=120)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        reports.append(json.loads(result.stdout))

    second = reports[1]
    want = second["truth"]["moon_mars"]["variants"]
    got = second["experiments"]["moon_mars"]["variants"]
    assert {v: got[v]["units"] for v in want} == {v: w["units"] for v, w in want.items()}
