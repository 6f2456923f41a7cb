"""``igtflow report``: a recording becomes one HTML page that opens offline, says what it could not
find, and says when the file was damaged."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from igtflow.launch.cli import app
from igtflow.launch.procedure_report import build_report
from igtflow.launch.procedure_report.snapshots import CANDIDATES, MAX_PNG_BYTES, KeyFrames
from igtflow.stream.messages import Image, Points, Status, Transform
from igtflow.stream.recording import RecordingWriter
from tests.helpers.cli import REPO

SECTIONS = ("latency", "registration", "confidence", "targets", "alarms", "key-frames", "versions")
SUMMARY_KEYS = {
    "output", "recording", "damaged", "problems", "start_utc", "duration_s", "messages",
    "latency_ms", "registration", "confidence", "target_shift_mm", "alarms", "key_frames",
    "versions",
}  # fmt: skip

LIVE_GRAPH = """
name: report-test
nodes:
  - id: probe
    uses: phantom-us
    params: {{rate_hz: 20, seed: 3, width: 128, height: 128}}
  - id: seg
    uses: segment
    inputs: {{image: probe/image}}
    params: {{model: us-seg, device: cpu}}
  - id: overlay
    uses: overlay
    inputs: {{image: probe/image, labels: seg/labels, confidence: seg/confidence,
              targets: probe/truth_targets}}
    params: {{show: false}}
  - id: rec
    uses: record
    inputs: {{"*": {{from: "*", policy: queue, depth: 256}}}}
    params: {{path: "{path}"}}
"""


@pytest.fixture(scope="module")
def live_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seconds of a real graph: phantom probe, segmentation, overlay, recorder."""
    folder = tmp_path_factory.mktemp("live")
    recording = folder / "live.mcap"
    graph = folder / "graph.yaml"
    graph.write_text(LIVE_GRAPH.format(path=recording))
    command = ["run", str(graph), "--duration", "2", "--log-dir", str(folder / "logs")]
    run = subprocess.run(
        [sys.executable, "-m", "igtflow", *command],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return recording


def report(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["report", *args])
    return result.exit_code, result.stdout


def images(html: str) -> list[bytes]:
    return [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def section(html: str, slug: str) -> str:
    found = re.search(rf'<section id="{slug}">(.*?)</section>', html, re.S)
    assert found, f"no {slug} section"
    return found.group(1)


def test_live_recording_report_has_every_section_offline(live_recording: Path) -> None:
    out = live_recording.with_name("live.html")
    code, stdout = report(str(live_recording), "-o", str(out), "--json")
    assert code == 0, stdout
    summary = json.loads(stdout)
    assert set(summary) == SUMMARY_KEYS
    html = out.read_text()

    for slug in SECTIONS:
        section(html, slug)
    pictures = images(html)
    for png in pictures:
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED) is not None
    # nothing is fetched: no external script, stylesheet, font or picture
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert "<script" not in html and "@import" not in html and "url(" not in html

    assert "seg/labels" in summary["latency_ms"] and "probe/image" not in summary["latency_ms"]
    assert summary["latency_ms"]["seg/labels"]["p50"] > 0
    assert "<img" in section(html, "latency") and "<img" in section(html, "confidence")
    assert summary["confidence"]["seg"]["frames"] > 5
    assert "not recorded" in section(html, "registration") and summary["registration"] is None
    # the overlay's own frames, as on screen, small enough for a page
    assert summary["key_frames"] and all(f["drawn"] == "overlay" for f in summary["key_frames"])
    assert all(f["png_bytes"] <= MAX_PNG_BYTES for f in summary["key_frames"])
    assert section(html, "key-frames").count("<img") == len(summary["key_frames"])
    models = summary["versions"]["models"]
    assert re.fullmatch(r"[0-9a-f]{64}", models["seg"]["sha256"])
    assert models["seg"]["sha256"] in section(html, "versions")
    assert summary["versions"]["graph_sha256"] and not summary["damaged"]
    assert summary["alarms"]["restarts"] == 0


def test_damaged_recording_is_reported_as_far_as_it_reads_exit_3(
    live_recording: Path, tmp_path: Path
) -> None:
    data = live_recording.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    code, stdout = report(str(cut), "-o", str(tmp_path / "cut.html"), "--json")
    assert code == 3
    summary = json.loads(stdout)
    assert summary["damaged"] and summary["problems"] and summary["messages"] > 10
    html = (tmp_path / "cut.html").read_text()
    assert "The recording is damaged" in html and "<img" in section(html, "latency")


def test_a_file_that_is_no_recording_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    text = tmp_path / "notes.mcap"
    text.write_text("not a recording\n")
    code, _ = report(str(text), "-o", str(tmp_path / "notes.html"))
    assert code == 2 and not (tmp_path / "notes.html").exists()


def test_missing_streams_say_not_recorded(tmp_path: Path) -> None:
    """The sample recording holds the phantom probe alone: no network, no alarm, no registration;
    its key frames are the raw images with the truth labels' contours."""
    result = build_report(REPO / "recordings" / "phantom-us.mcap")
    for slug in ("registration", "confidence", "alarms"):
        assert "not recorded" in section(result.html, slug), slug
    assert result.summary["confidence"] is None and result.summary["registration"] is None
    frames = result.summary["key_frames"]
    assert len(frames) == 4 and {f["drawn"] for f in frames} == {"probe/truth_labels"}
    assert "probe/truth_targets: lesion" in result.summary["target_shift_mm"]


REGISTRATION_GRAPH = """
name: reg
nodes:
  - {id: probe, uses: phantom-us}
  - {id: reg, uses: register-us, inputs: {labels: probe/image}}
"""


def _write_registration_run(path: Path) -> None:
    """A registration that loses the model for two frames, a node restart, a recorder restart
    and a stale overlay."""
    start = 1_800_000_000_000_000_000
    with RecordingWriter(path, REGISTRATION_GRAPH, {"node_id": "rec"}) as writer:
        for i in range(10):
            stamp = start + i * 50_000_000
            trace = [["probe", stamp, stamp], ["reg", stamp + 1_000_000, stamp + 9_000_000]]
            valid = i not in (4, 5)
            writer.write(
                Transform(topic="reg/transform", seq=i, stamp_ns=stamp, trace=trace,
                          from_frame="Model", to_frame="Reference", valid=valid,
                          error_mm=1.0 + 0.1 * i if valid else 0.0)
            )  # fmt: skip
            points = np.array([[0.0, 0.0, 0.2 * i]], np.float32)
            writer.write(
                Points(topic="reg/targets", seq=i, stamp_ns=stamp, trace=trace, points=points,
                       labels=["lesion"])
            )  # fmt: skip
            image = Image(topic="probe/image", seq=i, stamp_ns=stamp, trace=trace[:1],
                          data=np.full((32, 32), 40 * (i % 5), np.uint8))  # fmt: skip
            writer.write(image)
        gap = {"node": "reg", "topic": "reg/transform", "start_ns": start, "end_ns": start + 1}
        writer.add_metadata("igtflow.gap.1", {"node": "rec", "topic": "probe/image", "frames": 3})
        for seq, code in enumerate(("restart-gap", "stale-overlay")):
            writer.write(Status(topic="reg/status", seq=seq, stamp_ns=start + 100_000_000,
                                level="warn", code=code, text=code, meta={"gap": gap}))  # fmt: skip


def test_registration_error_and_alarms_are_drawn(tmp_path: Path) -> None:
    path = tmp_path / "reg.mcap"
    _write_registration_run(path)
    result = build_report(path)
    registration = result.summary["registration"]["reg/transform"]
    assert registration["invalid"] == 2 and registration["error_mm"]["max"] == pytest.approx(1.9)
    assert "<img" in section(result.html, "registration")
    assert result.summary["alarms"] == {
        "stale": 1, "low confidence": 0, "restarts": 2, "invalid registration": 1, "other": 0
    }  # fmt: skip
    alarms = section(result.html, "alarms")
    assert "2 invalid registration(s) in a row" in alarms and "probe/image lost 3" in alarms
    assert result.summary["target_shift_mm"]["reg/targets: lesion"]["max"] == pytest.approx(1.8)
    assert result.summary["latency_ms"] == {
        "reg/transform": {"p50": 9.0, "p99": 9.0, "max": 9.0},
        "reg/targets": {"p50": 9.0, "p99": 9.0, "max": 9.0},
    }
    assert "not recorded" in section(result.html, "confidence")


def test_report_goes_beside_the_recording_and_never_over_a_file(tmp_path: Path) -> None:
    recording = tmp_path / "case.mcap"
    recording.write_bytes((REPO / "recordings" / "phantom-us.mcap").read_bytes())
    assert report(str(recording))[0] == 0
    written = (tmp_path / "case.html").read_bytes()
    assert report(str(recording))[0] == 2  # an existing report needs --force
    assert report(str(recording), "-o", str(recording), "--force")[0] == 2
    assert (tmp_path / "case.html").read_bytes() == written
    assert recording.read_bytes() == (REPO / "recordings" / "phantom-us.mcap").read_bytes()


def test_key_frames_stay_few_spread_and_matched_to_their_labels() -> None:
    """A long recording keeps a bounded, evenly thinned set of candidates; a label map is drawn
    on its own frame whether it was recorded before or after it."""
    frames = KeyFrames()
    for i in range(1000):
        stamp = i * 1_000_000
        labels = Image(stamp_ns=stamp, modality="LABELS", data=np.full((8, 8), 1, np.uint8))
        image = Image(stamp_ns=stamp, data=np.full((8, 8), i % 256, np.uint8))
        for message in (labels, image) if i % 2 else (image, labels):
            frames.offer("seg/labels" if message is labels else "probe/image", message)
    kept = sorted(frames.images.frames)
    assert len(kept) <= CANDIDATES and kept[0] == 0 and kept[-1] >= 900 * 1_000_000
    assert set(frames.labels) == set(kept)  # every kept frame found its labels
    picked = frames.pick(4)
    assert len(picked) == 4 and picked[0].stamp_ns == 0 and picked[-1].stamp_ns == kept[-1]
    assert all(p.what == "seg/labels" for p in picked)
