"""``igtflow bench igtl --quick``: the benchmark runs end to end and reports every key."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from tests.helpers.calibration import assert_calibrated


def test_bench_igtl_quick_reports_rates_latencies_and_the_baseline() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from igtflow.launch.cli import main; main()",
            "bench",
            "igtl",
            "--quick",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert_calibrated(report["machine"])
    for key in (
        "transform_hz",
        "transform_p99_ms",
        "image512_hz",
        "image512_p99_ms",
        "image1024_hz",
        "stalled_client_slowdown",
        "baseline_transform_hz",
        "baseline_image512_p99_ms",
        "transform_rate_ratio",
    ):
        assert math.isfinite(report[key]), key
    # Generous (10x) margins: this runs on a busy 2-core box.
    assert report["transform_hz"] > 100
    assert report["image512_hz"] > 6
    assert report["stalled_client_slowdown"] < 3
    assert report["cases"]["transform"]["igtflow"]["received"] > 0
