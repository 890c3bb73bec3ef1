"""The fault suite's short version (``benchmarks/faults.py --short``): kills, replays and malformed records.

The script runs the real pipeline (jobs and sink as processes, on this session's broker; two runs at a time,
each on its own topics) and compares the report and the aggregates with a reference computed from what the
clients logged: nothing lost, nothing counted twice, no number moved, every malformed record dead-lettered.
About 2 minutes. The 3-broker and broker-outage scenarios start brokers of their own: they run with
``faults.py --short`` and the full suite, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).parents[2]


@pytest.mark.timeout(540)
def test_the_short_fault_suite_loses_nothing_counts_nothing_twice_and_dead_letters_every_bad_record(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    command = [
        sys.executable, str(ROOT / "benchmarks" / "faults.py"), "--short", "--scenarios", "kills", "replays",
        "malformed", "--lanes", "2", "--bootstrap", kafka_bootstrap, "--workdir", str(tmp_path), "--json",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the script stops the jobs, sinks and brokers it started on SIGTERM
        stdout, stderr = proc.communicate(timeout=120)
    assert stdout, stderr[-4000:]
    results = {r["scenario"]: r for r in json.loads(stdout)}
    assert set(results) == {"kills 1/2", "kills 2/2", "replays", "malformed"}
    failed = [
        f"{r['scenario']}: lost {r['lost']}, double {r['double']}, moved {r['moved']}, "
        f"dead letters {r['dead_letters']} of {r['malformed']}, not dead-lettered {r['not_dead_lettered']}; "
        f"{r['notes'] + r['examples']}"
        for r in results.values()
        if not r["ok"]
    ]
    assert not failed, "\n".join(failed)
    assert results["malformed"]["malformed"] == 500
    assert sum(results["malformed"]["dead_letters"].values()) == 500
    assert proc.returncode == 0, stderr[-4000:]
