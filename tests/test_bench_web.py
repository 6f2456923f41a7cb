"""``igtflow bench web``: the shipped web-view graph runs, a real headless Chromium paints its
frames with one and with two browsers, and the headline keys come out (a tiny run; the figures
come from the full bench)."""

from __future__ import annotations

import json
import os

import pytest

from igtflow.launch.bench.browser import find_chromium
from tests.helpers.cli import igtflow


@pytest.mark.skipif(find_chromium() is None, reason="Debian's chromium is not installed")
def test_bench_web_reports_capture_to_painted_and_the_source_rate_ratio(tmp_path) -> None:
    shot = tmp_path / "page.png"
    done = igtflow(
        "bench",
        "web",
        "--seconds",
        "2",
        "--browsers",
        "2",
        "--screenshot",
        str(shot),
        "--json",
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    one, many = report["phases"]["one"], report["phases"]["many"]
    seen = json.dumps(report["phases"])
    # 30 fps for 2 s, on a busy machine
    assert one["painted"]["count"] >= 10 and many["browsers"] == 2, seen
    assert many["painted"]["count"] >= 20, seen
    assert 0 < report["web_p50_ms"] <= report["web_p99_ms"] < 10_000, seen
    assert report["web_p99_ms_5_clients"] == many["painted"]["p99_ms"]
    # generous: the source must not collapse with browsers connected (1.0 is the target)
    assert 0.5 < report["source_rate_ratio"] < 1.5, seen
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_bench_web_without_chromium_says_what_to_install(tmp_path) -> None:
    env = {**os.environ, "IGTFLOW_CHROMIUM": str(tmp_path / "missing")}
    done = igtflow("bench", "web", "--seconds", "2", env=env, timeout=60)
    assert done.returncode == 2
    assert "chromium" in done.stderr and "IGTFLOW_CHROMIUM" in done.stderr
