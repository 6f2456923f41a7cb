"""Damaged recordings: a crash, a cut or flipped bytes cost only what they touched.

A recorder killed with -9 never writes the MCAP summary; a copy can be cut short; a disk can flip
bytes. Each case must give back every message before the damage, say what is wrong, and
``recover`` must turn the remains into a closed, indexed file.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader

from igtflow.stream import wire
from igtflow.stream.messages import Image, Transform
from igtflow.stream.recording import (
    RecordingWriter,
    pack_frames,
    read_info,
    read_messages,
    recover,
)
from igtflow.stream.recording_scan import RecordingError, ScanReport, scan
from tests.helpers.graph_runs import GraphRun

GRAPH = "name: unit\nnodes: []\n"


def write_frames(path: Path, count: int, flush_interval_s: float = 60.0) -> list[Image]:
    """``count`` noisy 64×64 frames (so chunks hold few frames), closed properly."""
    rng = np.random.default_rng(3)
    frames = [
        Image(
            topic="probe/image",
            seq=i,
            stamp_ns=1_000 + i,
            data=rng.integers(0, 256, (256, 256), dtype=np.uint8),
        )
        for i in range(count)
    ]
    with RecordingWriter(
        path, GRAPH, {"case": "damage"}, chunk_size=100_000, flush_interval_s=flush_interval_s
    ) as writer:
        for frame in frames:
            writer.write(frame, log_time_ns=frame.stamp_ns)
    return frames


def test_cut_file_gives_every_message_before_the_cut(tmp_path: Path) -> None:
    path = tmp_path / "whole.mcap"
    frames = write_frames(path, 40)
    cut = tmp_path / "cut.mcap"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])

    with pytest.raises(
        RecordingError, match=r"cut\.mcap: .*cut short|cut\.mcap: .*without the MCAP footer"
    ):
        list(read_messages(cut))

    report = ScanReport(str(cut))
    got = [m for _, _, m in read_messages(cut, report=report)]
    assert 15 <= len(got) < 40
    assert [m.seq for m in got] == list(range(len(got)))
    assert all(np.array_equal(a.data, b.data) for a, b in zip(got, frames, strict=False))
    assert not report.complete and report.problems

    fixed = tmp_path / "fixed.mcap"
    recovered = recover(cut, fixed)
    assert recovered.messages == len(got)
    again = [m for _, _, m in read_messages(fixed)]  # strict: a recovered file has no problems
    assert [m.seq for m in again] == [m.seq for m in got]
    with fixed.open("rb") as file:
        assert make_reader(file).get_summary() is not None, "recovered file must be indexed"
    info = read_info(fixed)
    assert info.graph_yaml == GRAPH
    assert info.metadata["case"] == "damage"
    assert info.metadata["recovered_from"] == str(cut)


def test_flipped_bytes_in_one_chunk_flag_only_that_chunk(tmp_path: Path) -> None:
    path = tmp_path / "flipped.mcap"
    frames = write_frames(path, 40)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # zeroes inside a compressed chunk
    path.write_bytes(bytes(data))

    report = ScanReport(str(path))
    got = list(scan(path, report=report))
    assert report.bad_chunks == 1, report.problems
    assert any("CRC" in p or "decompress" in p for p in report.problems)
    suspect = [raw.sequence for raw in got if not raw.verified]
    assert 0 < len(suspect) < 40 and report.unverified == len(suspect)
    assert suspect == list(range(suspect[0], suspect[-1] + 1)), "one chunk: consecutive frames"
    sound = [raw for raw in got if raw.verified]
    assert sound[-1].sequence == 39, "messages after the damage must be kept"
    for raw in sound:
        original = frames[raw.sequence]
        assert raw.data == pack_frames(wire.encode(original))


def test_not_an_mcap_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.mcap"
    path.write_text("hello")
    with pytest.raises(RecordingError, match=r"notes\.mcap: not an MCAP recording"):
        list(read_messages(path))
    with pytest.raises(RecordingError, match="cannot read"):
        list(read_messages(tmp_path / "missing.mcap"))


def test_an_open_recording_is_readable_within_a_second(tmp_path: Path) -> None:
    """What a writer holds in memory reaches the file within the flush interval, even if idle."""
    path = tmp_path / "open.mcap"
    writer = RecordingWriter(path, GRAPH, {}, flush_interval_s=0.3)
    try:
        for seq in range(5):
            writer.write(Transform(topic="tracker/probe", seq=seq, matrix=np.eye(4)))
        time.sleep(1.0)
        report = ScanReport(str(path))
        seen = [m.seq for _, _, m in read_messages(path, report=report)]
        assert seen == [0, 1, 2, 3, 4]
        assert not report.complete
    finally:
        writer.close()


def test_kill_9_of_the_recorder_loses_at_most_the_last_second(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    path = tmp_path / "killed.mcap"
    run = start_graph(f"""
name: kill-recorder
nodes:
  - id: probe
    uses: synthetic-image
    params: {{rate_hz: 30, width: 256, height: 256}}
  - id: rec
    uses: record
    restart: never
    inputs: {{"*": {{from: "*", policy: queue, depth: 256}}}}
    params: {{path: "{path}"}}
""")
    run.wait(lambda: path.exists() and path.stat().st_size > 200_000, 20, "the recording to grow")
    pid = run.nodes["rec"].pid
    killed_ns = time.time_ns()
    os.kill(pid, signal.SIGKILL)
    run.wait(
        lambda: run.nodes["rec"].process is None or run.nodes["rec"].process.poll() is not None,
        10,
        "the recorder to die",
    )
    run.stop()

    report = ScanReport(str(path))
    images = [m for topic, _, m in read_messages(path, report=report) if topic == "probe/image"]
    assert not report.complete, "a killed recorder cannot have closed its file"
    assert images and [m.seq for m in images] == list(range(len(images)))
    lost_s = (killed_ns - images[-1].stamp_ns) / 1e9
    assert lost_s <= 1.0, f"the last recorded frame is {lost_s:.2f} s older than the kill"

    fixed = tmp_path / "fixed.mcap"
    recover(path, fixed)
    assert len([1 for topic, _, _ in read_messages(fixed) if topic == "probe/image"]) == len(images)


def test_damage_to_the_first_chunk_keeps_every_later_message(tmp_path: Path) -> None:
    """The first chunk alone describes the channels; messages still name their own topic."""
    path = tmp_path / "first.mcap"
    write_frames(path, 40)
    data = bytearray(path.read_bytes())
    offset = 8
    while data[offset] != 0x06:  # walk the records to the first chunk
        offset += 9 + int.from_bytes(data[offset + 1 : offset + 9], "little")
    length = int.from_bytes(data[offset + 1 : offset + 9], "little")
    data[offset + 9 + length // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    report = ScanReport(str(path))
    got = [m.seq for _, _, m in read_messages(path, report=report)]
    assert report.bad_chunks == 1
    assert got and got[-1] == 39 and got == sorted(got)
    fixed = tmp_path / "fixed.mcap"
    assert recover(path, fixed).messages == len(got)
    assert read_info(fixed).topics == {"probe/image": "Image"}
