"""``igtflow demo`` (what ``make demo`` runs) works end to end and leaves its pictures behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2

from igtflow.ports import free_port
from igtflow.stream.recording_scan import ScanReport, scan


def test_demo_runs_the_synthetic_case_end_to_end(tmp_path: Path) -> None:
    options = ["--duration", "4", "--json", "--log-dir", str(tmp_path), "--port", str(free_port())]
    run = subprocess.run(
        [sys.executable, "-m", "igtflow", "demo", *options],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    rows = {row["node"]: row for row in result["nodes"]}
    assert all(row["restarts"] == 0 for row in rows.values()), rows
    assert rows["overlay"]["sent"] > 10 and rows["slicer"]["received"] > 10

    report = ScanReport(str(tmp_path / "demo.mcap"))
    topics = {raw.topic for raw in scan(tmp_path / "demo.mcap", report=report)}
    assert report.complete
    assert {"probe/image", "overlay/overlay", "model/model"} <= topics

    video = cv2.VideoCapture(result["written"]["overlay_video"])
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) > 10
    snapshot = cv2.imread(result["written"]["overlay_snapshots"][-1])
    assert snapshot is not None and snapshot.std() > 10
    assert result["written"]["scene_snapshots"], "the 3D scene wrote no picture"
