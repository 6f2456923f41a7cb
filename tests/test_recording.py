"""Recordings: what goes into an MCAP file comes back bit-exact, with the graph that made it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader

from igtflow import __version__
from igtflow.stream import wire
from igtflow.stream.messages import Image
from igtflow.stream.recording import (
    MESSAGE_ENCODING,
    RecordingWriter,
    pack_frames,
    read_info,
    read_messages,
    unpack_frames,
)
from tests.helpers.graph_runs import GraphRun
from tests.helpers.messages import assert_same, sample_messages

GRAPH = "name: unit\nnodes: []\n"


def test_frames_pack_and_unpack_exactly() -> None:
    frames = [b"topic", b"", bytes(range(256)) * 300]
    assert unpack_frames(pack_frames(frames)) == frames
    packed = pack_frames(frames)
    assert packed[:4] == (3).to_bytes(4, "little")
    with pytest.raises(wire.WireError, match="cut"):
        unpack_frames(packed[:-1])
    with pytest.raises(wire.WireError, match="trailing"):
        unpack_frames(packed + b"\0")


def test_every_kind_round_trips_bit_exact(tmp_path: Path) -> None:
    path = tmp_path / "run.mcap"
    messages = sample_messages()
    with RecordingWriter(path, GRAPH, {"operator": "test", "case": 12}) as writer:
        for i, message in enumerate(messages):
            writer.write(message, log_time_ns=10_000 + i)

    read = list(read_messages(path))
    assert [(topic, t) for topic, t, _ in read] == [
        (m.topic, 10_000 + i) for i, m in enumerate(messages)
    ]
    for (_, _, got), want in zip(read, messages, strict=True):
        assert_same(got, want)
    only = list(read_messages(path, topics=["xray/image"]))
    assert [m.seq for _, _, m in only] == [5]

    with path.open("rb") as file:
        reader = make_reader(file)
        summary = reader.get_summary()
        assert summary is not None and len(summary.chunk_indexes) >= 1
        assert {c.topic for c in summary.channels.values()} == {m.topic for m in messages}
        assert {c.message_encoding for c in summary.channels.values()} == {MESSAGE_ENCODING}
        assert {ci.compression for ci in summary.chunk_indexes} == {"zstd"}
        records = {
            channel.topic: record
            for _, channel, record in reader.iter_messages(log_time_order=False)
        }
    assert records["xray/image"].publish_time == 2_000
    assert records["xray/image"].sequence == 5
    # The recorded bytes are the wire frames, every array inline.
    assert unpack_frames(records["xray/image"].data) == [bytes(f) for f in wire.encode(messages[1])]

    info = read_info(path)
    assert info.graph_yaml == GRAPH
    assert info.metadata == {"igtflow_version": __version__, "operator": "test", "case": "12"}
    assert info.topics == {m.topic: m.KIND for m in messages}
    assert info.message_counts == {m.topic: 1 for m in messages}


def test_recording_is_compressed_in_small_chunks(tmp_path: Path) -> None:
    path = tmp_path / "big.mcap"
    frame = np.zeros((512, 512), dtype=np.uint16)  # 512 KiB, compresses well
    with RecordingWriter(path, GRAPH, {}) as writer:
        for seq in range(20):
            writer.write(Image(topic="probe/image", seq=seq, data=frame))
    assert path.stat().st_size < 20 * frame.nbytes / 10
    with path.open("rb") as file:
        summary = make_reader(file).get_summary()
    assert summary is not None and len(summary.chunk_indexes) >= 5, "chunks should be ~1 MiB"


def synthetic_frame(seq: int, height: int, width: int) -> np.ndarray:
    """What ``synthetic-image`` (uint8) renders for its frame number ``seq``."""
    return ((np.add.outer(np.arange(height), np.arange(width)) + seq % 251) % 256).astype(np.uint8)


def test_record_node_keeps_every_frame_of_a_live_graph(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    path = tmp_path / "rec" / "run.mcap"
    text = f"""
name: record-live
nodes:
  - id: probe
    uses: synthetic-image
    params: {{rate_hz: 60, width: 256, height: 256}}
  - id: rec
    uses: record
    inputs: {{"*": {{from: "*", policy: queue, depth: 256}}}}
    params: {{path: "{path}"}}
"""
    run = start_graph(text)
    run.run_for(2.0)
    run.stop()

    images = [m for topic, _, m in read_messages(path) if topic == "probe/image"]
    assert len(images) >= 60, f"only {len(images)} frames recorded in 2 s at 60 Hz"
    assert [m.seq for m in images] == list(range(len(images))), "frames missing or reordered"
    for message in images:
        assert isinstance(message, Image)
        expected = synthetic_frame(message.seq, 256, 256)
        assert np.array_equal(message.data, expected), f"pixels of seq {message.seq} differ"
        assert message.trace[0][0] == "probe"
    info = read_info(path)
    assert info.graph_yaml == text
    assert info.metadata["node_id"] == "rec"


def test_a_slow_consumer_beside_the_recorder_costs_the_recording_nothing(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    path = tmp_path / "beside-slow.mcap"
    run = start_graph(f"""
name: slow-neighbour
nodes:
  - id: probe
    uses: synthetic-image
    params: {{rate_hz: 60, width: 512, height: 512, dtype: uint16}}
  - id: slow
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: probe/image}}
    params: {{out: "{tmp_path / "slow.jsonl"}", sleep_ms: [80]}}
  - id: rec
    uses: record
    inputs: {{"*": {{from: "*", policy: queue, depth: 256}}}}
    params: {{path: "{path}"}}
""")
    run.run_for(2.0)
    run.supervisor.pause(True)
    run.run_for(1.0)
    sent = run.stats("probe")["sent"]
    slow_seen = run.input_stats("slow")["received"]
    run.stop()

    images = [m for topic, _, m in read_messages(path) if topic == "probe/image"]
    assert slow_seen < sent / 2, "the slow consumer should have skipped frames"
    assert [m.seq for m in images] == list(range(sent)), "the recording lost frames"


def test_chunk_compression_is_safe_from_several_threads() -> None:
    """A restarted recorder compresses its new part while a thread rewrites the part left open:
    the compressor mcap's writer uses must survive that (one shared ZstdCompressor segfaults)."""
    import subprocess
    import sys

    script = (
        "import threading, numpy as np, mcap.writer, igtflow.stream.recording\n"
        "data = [np.random.default_rng(i).integers(0, 50, 1 << 20, dtype=np.uint8).tobytes()"
        " for i in range(4)]\n"
        "def work(i):\n"
        "    for _ in range(40): mcap.writer.zstandard.compress(data[i])\n"
        "threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
