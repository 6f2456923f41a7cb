"""Flow control between real node processes: `latest` skips and counts, `queue` keeps or alarms.

Each test runs a counting source into a recording sink; the sink's JSON lines are what it saw,
the supervisor's heartbeats are what the runtime counted, and the two must agree.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zmq

from igtflow.stream import shm
from igtflow.stream.messages import Image
from igtflow.stream.node_stats import InputStats
from igtflow.stream.shm import SlotReader
from igtflow.stream.transport import Input, InputConfig, Output, OutputConfig, ipc_endpoint
from tests.helpers.graph_runs import GraphRun, read_jsonl, wait_settled

INLINE = pytest.param(32, id="inline-32x32")
# 32 KiB: still inline (< 64 KiB), and big enough that a backlog overflows the socket buffers.
INLINE_BIG = pytest.param(128, id="inline-128x128")


def shared() -> object:
    """512×512 uint16 frames (512 KiB): they travel through shared memory."""
    return pytest.param(512, id="shm-512x512")


def seq_gaps(records: list[dict]) -> int:
    """Messages a consumer never saw before its last one (seq counts from 0)."""
    return records[-1]["seq"] + 1 - len(records)


def counted_drops(run: GraphRun, node_id: str) -> int:
    stats = run.input_stats(node_id)
    return stats["skipped"] + stats["lost"] + stats["overwritten"] + stats["malformed"]


def test_slow_consumer_never_blocks_source(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    out = tmp_path / "slow.jsonl"
    run = start_graph(
        f"""
name: slow-consumer
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: 100, width: 512, height: 512}}
  - id: slow
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: {{from: src/image, policy: latest}}}}
    params: {{out: "{out}", sleep_ms: [100]}}
"""
    )

    def two_seconds_seen() -> list[dict] | None:
        records = read_jsonl(out)
        span_ns = records[-1]["stamp_ns"] - records[0]["stamp_ns"] if records else 0
        return records if span_ns >= 2e9 else None

    records = run.wait(two_seconds_seen, 10, "2 s of frames at the slow consumer")
    first, last = records[0], records[-1]
    # seq and capture stamp come from the source: its own send rate, read at the far end.
    source_hz = (last["seq"] - first["seq"]) / ((last["stamp_ns"] - first["stamp_ns"]) / 1e9)
    # Blocked, it would fall to the consumer's 10 Hz; the margin is for a busy 2-core machine.
    assert source_hz >= 80, f"source slowed to {source_hz:.1f} Hz behind a 10 Hz consumer"
    assert len(records) <= 0.25 * (last["seq"] + 1), "consumer handled more than 10 Hz allows"
    assert all(r["intact"] for r in records)

    run.wait(lambda: run.input_stats("slow").get("received", 0) >= len(records), 30, "heartbeat")
    stats = run.input_stats("slow")
    assert stats["skipped"] > 0
    assert counted_drops(run, "slow") >= seq_gaps(records), "some skipped frames went uncounted"
    assert run.stats("slow")["age_p99_ms"] < 100, "latest should hand over fresh frames"


@pytest.mark.parametrize("size", [INLINE, shared()])
def test_latest_skips_are_counted(
    start_graph: Callable[[str], GraphRun], tmp_path: Path, size: int
) -> None:
    out = tmp_path / "sink.jsonl"
    count = 150
    run = start_graph(
        f"""
name: latest-skips
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: 100, width: {size}, height: {size}, count: {count}}}
  - id: sink
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: src/image}}
    params: {{out: "{out}", sleep_ms: [40]}}
"""
    )
    records = wait_settled(run, out, "sink")
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(set(seqs))
    assert seqs[-1] == count - 1, "latest must always deliver the newest frame"
    assert seq_gaps(records) > 0
    stats = run.input_stats("sink")
    # A skipped frame, or one overwritten in shared memory while it waited, is not 'lost'.
    assert (stats["skipped"] + stats["overwritten"], stats["lost"]) == (seq_gaps(records), 0)
    assert all(r["intact"] for r in records)


@pytest.mark.parametrize("size", [INLINE, shared()])
def test_queue_is_lossless_while_it_keeps_up(
    start_graph: Callable[[str], GraphRun], tmp_path: Path, size: int
) -> None:
    out = tmp_path / "sink.jsonl"
    count = 150
    # 10 messages at 15 ms then 10 at 2 ms: behind during bursts, ahead on average (100 Hz in).
    bursts = [15] * 10 + [2] * 10
    run = start_graph(
        f"""
name: queue-keeps-up
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: 100, width: {size}, height: {size}, count: {count}}}
  - id: sink
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: {{from: src/image, policy: queue, depth: 64}}}}
    params: {{out: "{out}", sleep_ms: {bursts}}}
"""
    )
    records = wait_settled(run, out, "sink")
    assert [r["seq"] for r in records] == list(range(count)), (
        f"queue must deliver every seq in order; input stats {run.input_stats('sink')}"
    )
    assert all(r["intact"] for r in records)
    stats = run.input_stats("sink")
    assert (stats["skipped"], stats["lost"], stats["overwritten"]) == (0, 0, 0)
    assert run.nodes["sink"].alarms == 0


@pytest.mark.parametrize("size", [INLINE_BIG, shared()])
def test_queue_alarms_when_it_cannot_keep_up(
    start_graph: Callable[[str], GraphRun], tmp_path: Path, size: int
) -> None:
    out, alarms = tmp_path / "sink.jsonl", tmp_path / "alarms.jsonl"
    run = start_graph(
        f"""
name: queue-falls-behind
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: 200, width: {size}, height: {size}, count: 120}}
  - id: slow
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: {{from: src/image, policy: queue, depth: 4}}}}
    params: {{out: "{out}", sleep_ms: [25]}}
  - id: watch
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: {{from: slow/status, policy: queue, depth: 256}}}}
    params: {{out: "{alarms}"}}
"""
    )
    records = wait_settled(run, out, "slow")
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(set(seqs)), "a queue delivers in order, even when it loses"
    stats = run.input_stats("slow")
    assert stats["lost"] + stats["overwritten"] > 0
    assert stats["skipped"] == 0, "a queue never skips on purpose"
    assert stats["lost"] + stats["overwritten"] == seq_gaps(records), "each loss counted once"

    slow = run.nodes["slow"]
    assert slow.state == "running", "losing messages is an alarm, not a failure"
    assert slow.alarms > 0
    assert slow.last_alarm.startswith("queue-loss")
    statuses = run.wait(lambda: read_jsonl(alarms), 30, "a Status on slow/status")
    assert {(s["kind"], s["level"], s["code"]) for s in statuses} == {
        ("Status", "warn", "queue-loss")
    }
    assert all(s["topic"] == "slow/status" and "'in' lost" in s["text"] for s in statuses)


@pytest.mark.parametrize("policy", ["latest", "queue"])
def test_a_frame_overwritten_in_shared_memory_is_counted_once(
    tmp_path: Path, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One output and one input on a real ipc socket, stepped by hand so the race is certain.

    A queue's claim is taken back only when the pool cannot grow at all (tmpfs full), as here.
    """
    monkeypatch.setattr(shm, "MAX_SLOTS", 1)
    ctx = zmq.Context()
    endpoint = ipc_endpoint(tmp_path, "src", "image")
    output = Output(
        ctx, OutputConfig("image", "src/image", endpoint, subscribers=1, slots=1), tmp_path, "src"
    )
    stats = InputStats()
    config = InputConfig("in", "src/image", endpoint, policy=policy, depth=16)
    reader = SlotReader(tmp_path / "shm")
    receiver = Input(ctx, config, reader, stats, logging.getLogger("test"))
    assert output.pool is not None
    output.pool.max_slots = 1  # no room to grow: the producer must reuse the slot
    try:
        deadline = time.monotonic() + 5
        while output.subscribed < 1 and time.monotonic() < deadline:
            output.read_subscriptions()
            time.sleep(0.005)

        def frame() -> np.ndarray:
            slot = output.pool.acquire(512 * 512 * 2)
            assert slot is not None
            return output.pool.writable(slot, (512, 512), np.uint16)

        def send(seq: int, data: np.ndarray) -> None:
            output.send(Image(data=data, topic="src/image", seq=seq), output.pool.place)

        def arrive() -> None:
            assert receiver.socket.poll(5000), "nothing arrived"
            receiver.receive()

        def handle() -> None:
            arrival = receiver.pop()
            message = arrival.message
            stats.account(message.seq, arrival.accounted)  # what NodeRuntime._handle does

        send(0, frame())
        arrive()
        handle()
        send(1, frame())
        next_frame = frame()  # the producer reuses the slot before the consumer got to seq 1
        arrive()
        assert stats.overwritten == 1
        send(2, next_frame)
        arrive()
        handle()
        assert stats.received == 2
        assert stats.skipped + stats.lost + stats.overwritten == 1, vars(stats)
    finally:
        receiver.close()
        output.close()
        reader.close()
        ctx.term()


def test_garbage_on_an_input_is_counted_and_the_node_lives_on(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    out = tmp_path / "sink.jsonl"
    run = start_graph(
        f"""
name: garbage
nodes:
  - id: src
    uses: tests.nodes.sources:Garbler
    params: {{rate_hz: 100}}
  - id: sink
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: {{from: src/image, policy: queue, depth: 64}}}}
    params: {{out: "{out}"}}
"""
    )
    run.wait(lambda: len(read_jsonl(out)) >= 50, 10, "50 good messages between the garbage")
    run.wait(lambda: run.input_stats("sink").get("malformed", 0) >= 50, 30, "malformed counted")
    assert run.nodes["sink"].restarts == 0 and run.nodes["sink"].state == "running"
    assert all(r["intact"] for r in read_jsonl(out))
