"""What the browser view's status table and plots show: per-node latency from each frame's trace,
drops from sequence gaps, a one-minute window (pure bookkeeping, no processes)."""

from __future__ import annotations

import numpy as np
import pytest

from igtflow.render.nodes.web_view import display_bgr, host_problem, resolve_token
from igtflow.render.web_stats import LiveStats
from igtflow.stream.messages import Image
from igtflow.stream.node import PermanentError

S = 1_000_000_000
MS = 1_000_000


def test_each_node_on_the_path_gets_its_latency_since_capture_and_rate() -> None:
    stats = LiveStats()
    for n in range(20):
        capture = n * S // 10
        trace = [
            ["probe", capture, capture + 2 * MS],
            ["overlay", capture + 5 * MS, capture + 9 * MS],
        ]
        stats.frame("overlay", n, capture, trace, capture + 12 * MS)
    table = {row["node"]: row for row in stats.snapshot(2 * S)["table"]}
    assert table["probe"]["p50_ms"] == 2.0 and table["overlay"]["p99_ms"] == 9.0
    assert table["probe"]["rate_hz"] == 10.0  # 20 frames in the last 2 s
    assert stats.snapshot(2 * S)["latency"][-1][1] == 12.0


def test_sequence_gaps_are_counted_as_drops_per_input() -> None:
    stats = LiveStats()
    for seq in (0, 1, 4, 5, 9):
        stats.frame("overlay", seq, 0, [], 0)
    assert stats.snapshot(0)["drops"] == {"overlay": 5}


def test_samples_older_than_the_window_leave_the_plots_and_the_table() -> None:
    stats = LiveStats(window_s=60)
    stats.frame("overlay", 0, 0, [["probe", 0, MS]], 0)
    stats.confidence_value(0.9, 0)
    stats.frame("overlay", 1, 61 * S, [["probe", 61 * S, 61 * S + 3 * MS]], 61 * S)
    snapshot = stats.snapshot(61 * S)
    assert len(snapshot["latency"]) == 1 and snapshot["confidence"] == []
    assert snapshot["table"][0]["p50_ms"] == 3.0


def test_a_status_fills_its_nodes_row() -> None:
    stats = LiveStats()
    stats.status("seg", "warn", "low-confidence", "confidence 0.31 < 0.5")
    [row] = stats.snapshot(0)["table"]
    assert (row["node"], row["level"], row["text"]) == ("seg", "warn", "confidence 0.31 < 0.5")
    assert row["p50_ms"] is None


def test_frames_of_any_depth_become_8_bit_bgr_for_the_jpeg_encoder() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 200  # red
    assert display_bgr(Image(data=rgb))[0, 0].tolist() == [0, 0, 200]
    wide = np.array([[0, 1000], [2000, 4000]], np.uint16)
    assert display_bgr(Image(data=wide)).tolist() == [[0, 63], [127, 255]]
    labels = np.array([[0, 1], [2, 4]], np.uint8)
    assert display_bgr(Image(data=labels, modality="LABELS")).max() > 200


def test_only_loopback_goes_without_a_token() -> None:
    assert host_problem("127.0.0.1", "") == "" and host_problem("0.0.0.0", "secret") == ""
    assert "needs a token" in host_problem("192.168.1.20", "")


def test_a_token_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_TOKEN", "from-env")
    assert resolve_token("env:WEB_TOKEN") == "from-env" and resolve_token("plain") == "plain"
    monkeypatch.delenv("WEB_TOKEN")
    with pytest.raises(PermanentError, match="export WEB_TOKEN="):
        resolve_token("env:WEB_TOKEN")
