"""``igtflow bench record`` runs end to end and reports the keys the README's table comes from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers.calibration import assert_calibrated

RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"


def test_bench_record_smoke() -> None:
    options = ["--duration", "1", "--saturated-s", "1", "--json"]
    options += ["--recording", str(RECORDINGS / "phantom-us.mcap")]
    done = subprocess.run(
        [sys.executable, "-m", "igtflow", "bench", "record", *options],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert_calibrated(report["machine"])
    assert {"record_headroom", "record_lost", "replay_speedup"} <= report.keys()
    assert report["record_lost"] <= 2, "the recorder lost frames at its required rate"
    assert report["record_headroom"] > 0.5 and report["replay_speedup"] > 1
    assert report["replay"]["relay_received"] == 36, "the lockstep replay skipped frames"
    for case in report["cases"]:
        assert case["paced"]["closed"] and case["paced"]["recorded"] > 0
