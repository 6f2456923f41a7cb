"""``igtflow demo`` (what ``make demo`` runs) works end to end and leaves its pictures behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2

from igtflow.ports import free_port
from igtflow.stream.recording_scan import ScanReport, scan


def demo(tmp_path: Path, *options: str) -> dict:
    """``igtflow demo OPTIONS --json`` into ``tmp_path`` as a user runs it; its JSON report."""
    run = subprocess.run(
        [sys.executable, "-m", "igtflow", "demo", *options, "--json", "--log-dir", str(tmp_path),
         "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def test_demo_runs_the_synthetic_case_end_to_end(tmp_path: Path) -> None:
    result = demo(tmp_path, "--duration", "4")
    rows = {row["node"]: row for row in result["nodes"]}
    assert all(row["restarts"] == 0 for row in rows.values()), rows
    assert rows["overlay"]["sent"] > 10 and rows["slicer"]["received"] > 10

    recording = tmp_path / "us-guidance.mcap"
    report = ScanReport(str(recording))
    topics = {raw.topic for raw in scan(recording, report=report)}
    assert report.complete
    assert {"probe/image", "seg/labels", "reg/transform", "overlay/overlay"} <= topics
    # the recorder's skip: dense float fields stay out (15 MB/s each), and the file says so
    assert not topics & {"track/field", "probe/truth_flow"}
    assert "track/field" in report.metadata["igtflow"]["skipped_topics"]

    # the summary scores the networks against the phantom's truth, on a held-out seed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == result["summary"]
    assert min(summary["dice"]["seg/labels"].values()) > 0.7, summary["dice"]
    assert "reg/transform" in summary["valid_fraction"]  # registered, validity said
    # targets are scored only where the registration called them valid (a few seconds may
    # not reach a confirmed fit on a busy machine): those scored are near the truth
    for topic, error in summary["target_error_mm"].items():
        assert error["median"] < 10, (topic, error)

    video = cv2.VideoCapture(result["written"]["overlay_video"])
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) > 10
    snapshot = cv2.imread(result["written"]["overlay_snapshots"][-1])
    assert snapshot is not None and snapshot.std() > 10
    assert result["written"]["scene_snapshots"], "the 3D scene wrote no picture"


def test_demo_fluoro_runs_its_graph_and_scores_it(tmp_path: Path) -> None:
    result = demo(tmp_path, "--fluoro", "--duration", "3")
    assert {row["node"] for row in result["nodes"]} >= {"carm", "seg", "overlay", "slicer"}
    assert "seg/labels" in result["summary"]["dice"]
    assert result["written"]["overlay_snapshots"]


def test_demo_without_recording_writes_no_recording(tmp_path: Path) -> None:
    result = demo(tmp_path, "--no-record", "--duration", "2")
    assert result["summary"] is None and result["written"]["recording"] is None
    assert "rec" not in {row["node"] for row in result["nodes"]}
    assert not list(tmp_path.glob("*.mcap"))
