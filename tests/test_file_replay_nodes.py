"""File source nodes in real graphs: each source process replays a file into recording sinks,
and what arrived (pixels, transforms, timing, loops) is checked against the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from igtflow.stream.readers.plus_writer import write_seq_nrrd
from tests.helpers import frame_files as ff
from tests.helpers.graph_runs import GraphRun, read_jsonl
from tests.nodes.sinks import pixels_sha1


def sink(node_id: str, source: str, out: Path) -> str:
    return f"""
  - id: {node_id}
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: {{from: {source}, policy: queue, depth: 64}}}}
    params: {{out: "{out}"}}
"""


def wait_records(run: GraphRun, path: Path, count: int, what: str) -> list[dict]:
    return run.wait(lambda: (r := read_jsonl(path)) and len(r) >= count and r, 20, what)


def test_plus_sequence_replays_images_and_every_transform_on_file_time(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    content = ff.tracked_content(count=8)
    path = write_seq_nrrd(
        tmp_path / "sweep.seq.nrrd",
        content["frames"],
        (0.25, 0.5),
        content["timestamps"],  # 20 frames/s
        content["transforms"],
        image_status=content["image_ok"],
    )
    images, poses, status = (
        tmp_path / "images.jsonl",
        tmp_path / "poses.jsonl",
        tmp_path / "s.jsonl",
    )
    run = start_graph(
        f"""
name: plus-replay
nodes:
  - id: seq
    uses: plus-sequence
    params: {{path: "{path}"}}
{sink("images", "seq/image", images)}
{sink("poses", "seq/transforms", poses)}
{sink("done", "seq/status", status)}
"""
    )
    wait_records(run, status, 1, "the end-of-file status")
    done = read_jsonl(status)[0]
    assert done["code"] == "end-of-file" and "sweep.seq.nrrd" in done["text"]
    # Each sink is its own process: the last frames may land just after the status does.
    got_images = wait_records(run, images, 7, "the 7 valid images")
    got_poses = wait_records(run, poses, 16, "two poses for each of 8 frames")

    ok = content["image_ok"]
    assert [r["meta"]["frame_index"] for r in got_images] == [i for i in range(8) if ok[i]]
    for record in got_images:
        index = record["meta"]["frame_index"]
        assert record["sha1"] == pixels_sha1(content["frames"][index])
        assert record["spacing"] == pytest.approx([0.25, 0.5])
        assert record["meta"]["file_timestamp_s"] == pytest.approx(content["timestamps"][index])
    # Two poses per frame, also for the frame whose image is INVALID.
    assert len(got_poses) == 16
    for record in got_poses:
        index = record["meta"]["frame_index"]
        matrices, valid = content["transforms"][record["name"]]
        assert np.array_equal(record["matrix"], matrices[index])
        assert record["valid"] == bool(valid[index])
    stamps = {r["meta"]["frame_index"]: r["stamp_ns"] for r in got_poses}
    assert all(stamps[r["meta"]["frame_index"]] == r["stamp_ns"] for r in got_images)
    # Frames 50 ms apart in the file: 7 intervals take ~0.35 s on the wall clock.
    span_s = (max(stamps.values()) - min(stamps.values())) / 1e9
    assert 0.25 < span_s < 1.5, f"8 frames at 20/s replayed over {span_s:.2f} s"


def test_plus_sequence_at_a_fixed_rate_loops_over_the_file(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    content = ff.tracked_content(count=4)
    path = ff.write_mha(tmp_path / "loop.seq.mha", content, compressed=True)
    poses = tmp_path / "poses.jsonl"
    run = start_graph(
        f"""
name: plus-loop
nodes:
  - id: seq
    uses: plus-sequence
    params: {{path: "{path}", rate_hz: 40, loop: true}}
{sink("poses", "seq/transforms", poses)}
"""
    )
    records = wait_records(run, poses, 2 * 4 * 3, "three passes over the file")
    probe = [r for r in records if r["name"] == "ProbeToTracker"]
    assert [r["meta"]["frame_index"] for r in probe[:12]] == [0, 1, 2, 3] * 3
    assert [r["meta"]["loop"] for r in probe[:12]] == [0] * 4 + [1] * 4 + [2] * 4
    span_s = (probe[11]["stamp_ns"] - probe[0]["stamp_ns"]) / 1e9
    assert 0.2 < span_s < 1.5, f"11 frame periods at 40/s took {span_s:.2f} s"


def test_dicom_node_replays_cine_and_never_sends_who_the_patient_is(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    pixels = ff.xa_frames()
    path = ff.write_xa_cine(tmp_path / "run.dcm", pixels, [0, 40, 40, 40, 40])
    images = tmp_path / "images.jsonl"
    run = start_graph(
        f"""
name: dicom-replay
nodes:
  - id: cine
    uses: dicom
    params: {{path: "{path}"}}
{sink("images", "cine/image", images)}
"""
    )
    records = wait_records(run, images, 5, "every frame of the cine")
    assert [r["sha1"] for r in records] == [pixels_sha1(p) for p in pixels]
    assert all(r["modality"] == "XA" and r["dtype"] == "uint16" for r in records)
    assert records[0]["meta"]["timing_source"] == "FrameTimeVector"
    assert records[0]["meta"]["sid_mm"] == 1100
    text = json.dumps(records)
    for secret in ("Doe", "Jane", ff.PATIENT_ID, "19700101", "Elsewhere"):
        assert secret not in text


def test_video_node_loops_rgb_frames(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    path = ff.write_video(tmp_path / "clip.avi", ff.video_frames(), fps=50)
    images = tmp_path / "images.jsonl"
    run = start_graph(
        f"""
name: video-replay
nodes:
  - id: clip
    uses: video
    params: {{path: "{path}", loop: true, spacing: [0.1, 0.2]}}
{sink("images", "clip/image", images)}
"""
    )
    records = wait_records(run, images, 12, "two passes over the clip")
    assert [r["meta"]["frame_index"] for r in records[:12]] == [0, 1, 2, 3, 4] * 2 + [0, 1]
    assert all(r["shape"] == [48, 64, 3] and r["dtype"] == "uint8" for r in records)
    assert records[0]["spacing"] == pytest.approx([0.1, 0.2])
    span_s = (records[11]["stamp_ns"] - records[0]["stamp_ns"]) / 1e9
    assert 0.12 < span_s < 1.5, f"11 frame periods at 50/s took {span_s:.2f} s"


def test_broken_file_fails_the_node_with_the_reason(tmp_path: Path) -> None:
    from igtflow.launch.graph_reader import parse_graph
    from igtflow.launch.supervisor import Supervisor

    path = tmp_path / "cut.seq.mha"
    ff.write_mha(path, ff.tracked_content())
    path.write_bytes(path.read_bytes()[:-100])
    text = f"""
name: broken
nodes:
  - id: seq
    uses: plus-sequence
    params: {{path: "{path}"}}
    restart: never
"""
    lines: list[str] = []
    supervisor = Supervisor(parse_graph(text, str(tmp_path / "g.yaml")), tmp_path, lines.append)
    try:
        supervisor.start()
    except Exception as exc:  # the supervisor may refuse to run a graph whose node failed setup
        lines.append(str(exc))
    finally:
        supervisor.stop()
    log = "\n".join(lines)
    assert "cut.seq.mha" in log and "truncated" in log, log
