"""``igtflow bench transport``: both sides measured the same way, reported per case, no silent loss.

Timing bounds here are deliberately loose (a shared CI box is not the benchmark machine); the
tight targets are checked by reading the full run's table, not by this suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from igtflow.launch.bench.transport import PATTERN_MOD, Case, Tally, compare, side_stats
from tests.helpers.calibration import assert_calibrated

IGTFLOW = Path(sys.executable).parent / "igtflow"
SIDE_KEYS = {"p50_ms", "p99_ms", "max_ms", "msgs_per_s", "drops"}
MS = 1_000_000


def _frame(tally: Tally, t_ms: float, n: int, hop_ms: float = 1.0) -> None:
    t_recv = int(t_ms * MS)
    tally.add(t_recv, t_recv - int(hop_ms * tally.hops * MS), n, n % PATTERN_MOD)


def test_tally_reports_per_hop_latency_after_the_warmup_only() -> None:
    tally = Tally(hops=3, warmup_s=0.5)
    _frame(tally, 0.0, 0, hop_ms=50.0)  # a slow first frame inside the warm-up
    for i in range(1, 11):
        _frame(tally, 500.0 + 100.0 * (i - 1), i, hop_ms=2.0)
    stats = side_stats(tally.to_json())
    assert stats["received"] == 11
    assert stats["samples"] == 10
    assert stats["max_ms"] == pytest.approx(2.0)
    assert stats["msgs_per_s"] == pytest.approx(10.0)  # 10 frames, 9 intervals of 100 ms


def test_tally_counts_missing_frames_and_frames_changed_under_the_reader() -> None:
    tally = Tally(hops=1, warmup_s=0.0)
    _frame(tally, 0.0, 2)  # frames 0 and 1 never arrived
    _frame(tally, 1.0, 3)
    _frame(tally, 2.0, 7)  # 4, 5, 6 lost
    tally.add(3 * MS, 2 * MS, 8, pixel=(8 + 1) % PATTERN_MOD)  # pixels of another frame
    stats = side_stats(tally.to_json())
    assert stats["drops"] == 5
    assert stats["corrupt"] == 1


def _side(p99_ms: float, msgs_per_s: float = 60.0, drops: int = 0) -> dict[str, Any]:
    return {
        "p50_ms": p99_ms / 2,
        "p99_ms": p99_ms,
        "max_ms": p99_ms * 2,
        "msgs_per_s": msgs_per_s,
        "drops": drops,
        "corrupt": 0,
    }


def test_targets_follow_the_issue_per_payload_and_rate() -> None:
    big = Case("1024x1024 uint16", 1024, 1024, "uint16", hops=1, rate_hz=60.0, seconds=10.0)
    small = Case("256x256 uint8", 256, 256, "uint8", hops=1, rate_hz=30.0, seconds=10.0)
    saturated = Case("1024x1024 uint16", 1024, 1024, "uint16", hops=3, rate_hz=0.0, seconds=5.0)
    assert compare(big, _side(0.8), _side(1.4))["target_met"] is True
    assert compare(big, _side(1.0), _side(1.4))["target_met"] is False  # 0.71× is not ≤ 0.6×
    assert compare(big, _side(0.8, drops=1), _side(1.4))["target_met"] is False
    assert compare(small, _side(0.9), _side(0.5))["target_met"] is False  # 1.8× and +0.4 ms
    assert compare(small, _side(0.65), _side(0.5))["target_met"] is True  # within raw + 0.2 ms
    sat = compare(saturated, _side(5.0, msgs_per_s=1600), _side(900.0, msgs_per_s=1000))
    assert sat["ratio_msgs_per_s"] == pytest.approx(1.6)
    assert sat["target_met"] is True


@pytest.fixture(scope="module")
def quick_report() -> dict[str, Any]:
    done = subprocess.run(
        [str(IGTFLOW), "bench", "transport", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


@pytest.mark.slow
def test_quick_bench_reports_machine_and_both_sides_for_every_case(
    quick_report: dict[str, Any],
) -> None:
    machine = quick_report["machine"]
    assert {"cpu_model", "cores", "python", "pyzmq", "libzmq"} <= machine.keys()
    assert_calibrated(machine)
    cases = quick_report["cases"]
    shapes = {(c["payload_bytes"], c["hops"], c["rate_hz"]) for c in cases}
    assert shapes == {(65536, 1, 60.0), (65536, 1, 0.0), (2097152, 1, 60.0), (2097152, 1, 0.0)}
    for case in cases:
        assert case["igtflow"].keys() >= SIDE_KEYS
        assert case["raw"].keys() >= SIDE_KEYS
        assert case["ratio_p99"] == pytest.approx(
            case["igtflow"]["p99_ms"] / case["raw"]["p99_ms"], rel=0.01, abs=1e-3
        )
        assert case["ratio_msgs_per_s"] > 0
        assert case["target_met"] in (True, False, None)


@pytest.mark.slow
def test_quick_bench_paced_runs_lose_nothing_and_keep_the_rate(
    quick_report: dict[str, Any],
) -> None:
    for case in (c for c in quick_report["cases"] if c["rate_hz"]):
        # Our side only: raw pyzmq is the baseline the bench prints, not a claim of ours (on a
        # loaded machine its paced p99 has reached 1.3 s). Zero drops is the benchmark's claim
        # on a quiet machine; a test shares the CPU with whatever else runs, so it allows a few
        # frames of a sink descheduled for a while, and a p99 far above a hop's (< 1 ms idle).
        stats = case["igtflow"]
        assert stats["drops"] <= 6, (case["payload"], stats["drops"])
        assert stats["p99_ms"] < 100.0, (case["payload"], stats["p99_ms"])
        assert 50.0 < stats["msgs_per_s"] < 70.0, (case["payload"], stats["msgs_per_s"])
        assert case["raw"]["msgs_per_s"] > 0, "the baseline ran"


@pytest.mark.slow
def test_quick_bench_never_shows_a_frame_changed_under_its_reader(
    quick_report: dict[str, Any],
) -> None:
    # Saturated shared-memory runs overwrite slots: that must surface as a drop, never as pixels.
    for case in quick_report["cases"]:
        assert case["igtflow"]["corrupt"] == 0, case["payload"]
        assert case["raw"]["corrupt"] == 0, case["payload"]
    saturated = [c for c in quick_report["cases"] if not c["rate_hz"]]
    assert all(c["igtflow"]["msgs_per_s"] > 60.0 for c in saturated)


@pytest.mark.slow
def test_the_table_says_whether_nodes_rehearsed(quick_report: dict[str, Any]) -> None:
    from igtflow.launch.bench.transport import markdown_table

    assert quick_report["settings"]["rehearsal"] is True
    assert "rehearsal on" in markdown_table(quick_report)
    off = {**quick_report, "settings": {**quick_report["settings"], "rehearsal": False}}
    assert "rehearsal off" in markdown_table(off)
