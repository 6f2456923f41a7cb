"""``igtflow bench eval-scale``'s figures from the rows of its two passes (no Ray here: the suite
starts Ray once, in ``test_bulk_eval.py``, for the command the bench times)."""

from __future__ import annotations

from igtflow.launch.bench.eval_scale import scale_pass, scale_report
from igtflow.launch.bulk_eval import BulkResult, failed_row
from tests.helpers.calibration import assert_calibrated


def _rows(seconds: list[float]) -> list[dict[str, object]]:
    return [{"recording": f"r{i}.mcap", "ok": True, "seconds": s} for i, s in enumerate(seconds)]


def test_speedup_is_one_workers_replay_time_over_two_workers() -> None:
    one = scale_pass(1, BulkResult(_rows([10.0, 10.0, 12.0, 10.0]), 5.0, 42.0, 1), 0.5)
    two = scale_pass(2, BulkResult(_rows([11.0, 11.0, 11.0, 11.0]), 5.0, 24.0, 2), 0.7)
    report = scale_report([one, two], recordings=4)
    assert report["speedup"] == 1.75
    assert report["speedup_with_start"] == round(47 / 29, 2)
    assert one["per_recording_s"] == {"p50": 10.0, "p99": 11.94, "max": 12.0}
    assert one["load_avg_1m"] == 0.5 and two["wall_s"] == 29.0
    assert_calibrated(report["machine"])


def test_a_failed_recording_is_listed_in_its_pass() -> None:
    rows = [*_rows([10.0]), failed_row("bad.mcap", "not an MCAP recording")]
    figures = scale_pass(2, BulkResult(rows, 5.0, 10.0, 2), None)
    assert figures["failed"] == ["bad.mcap"]
    assert figures["per_recording_s"]["max"] == 10.0
