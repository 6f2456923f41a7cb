"""A `queue` input keeps every shared-memory frame it has not taken yet, within its budget.

Real node processes: a numbered source into a recorder that stalls once. The recorder's JSON
lines are what it saw (seq, capture stamp, pixels intact); the heartbeats are what the runtimes
counted, including the source's pool (``pools``: slots, claimed MiB).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.graph_runs import GraphRun, read_jsonl, wait_settled

# (width, dtype, rate): 256 KiB frames at 100 Hz, and 2 MiB frames at 30 Hz (a 1024² recording)
SMALL = pytest.param(512, "uint8", 100, id="shm-512x512-uint8")
LARGE = pytest.param(1024, "uint16", 30, id="shm-1024x1024-uint16")
STALL_FRAMES = 60


def source_hz(records: list[dict]) -> float:
    """The source's send rate, read from seq and capture stamp at the far end."""
    first, last = records[0], records[-1]
    return (last["seq"] - first["seq"]) / ((last["stamp_ns"] - first["stamp_ns"]) / 1e9)


def settled(run: GraphRun, out: Path, last_seq: int) -> list[dict]:
    """The sink's records once the last message has reached it (a stall is not the end)."""
    run.wait(lambda: any(r["seq"] == last_seq for r in read_jsonl(out)), 20, f"seq {last_seq}")
    return wait_settled(run, out, "sink")


def sleeps(stall_at: int, stall_ms: float) -> list[float]:
    """A handler that keeps up, except once for ``stall_ms`` on message ``stall_at``."""
    return [0] * stall_at + [stall_ms] + [0] * 1000


@pytest.mark.parametrize(("size", "dtype", "rate"), [SMALL, LARGE])
def test_a_queue_that_stalls_for_60_frames_loses_none_and_catches_up(
    start_graph: Callable[[str], GraphRun], tmp_path: Path, size: int, dtype: str, rate: int
) -> None:
    out = tmp_path / "sink.jsonl"
    stall_at, count = 10, STALL_FRAMES + 60
    stall_ms = STALL_FRAMES * 1000 / rate
    run = start_graph(
        f"""
name: queue-stalls
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: {rate}, width: {size}, height: {size}, dtype: {dtype}, count: {count}}}
  - id: sink
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: {{from: src/image, policy: queue, depth: 100}}}}
    params: {{out: "{out}", sleep_ms: {sleeps(stall_at, stall_ms)}}}
"""
    )
    records = settled(run, out, count - 1)
    stats = run.input_stats("sink")
    assert [r["seq"] for r in records] == list(range(count)), f"input stats {stats}"
    assert all(r["intact"] and r["mapped"] for r in records)
    assert (stats["skipped"], stats["lost"], stats["overwritten"]) == (0, 0, 0)
    assert run.nodes["sink"].alarms == 0
    # It fell 60 frames behind, then caught up: the last frame was handled soon after capture.
    stalled = records[stall_at]
    behind = [r for r in records if r["stamp_ns"] < stalled["t_ns"] + stall_ms * 1e6]
    assert len(behind) >= stall_at + STALL_FRAMES * 0.8, "the sink never fell behind"
    assert (records[-1]["t_ns"] - records[-1]["stamp_ns"]) / 1e6 < 500, "it never caught up"
    # The source kept its pace throughout, stall included.
    assert source_hz(records) >= 0.8 * rate
    assert source_hz(records[stall_at : stall_at + STALL_FRAMES]) >= 0.7 * rate


def test_a_queue_that_stalls_past_its_budget_loses_only_what_is_over_it(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    out, alarms = tmp_path / "sink.jsonl", tmp_path / "alarms.jsonl"
    rate, stall_at, count, budget_mib = 100, 10, 200, 8
    # 512×512 uint8 frames take 260 KiB of slot each (header and page rounding included).
    fits = budget_mib * 2**20 // (260 * 1024)
    stall_ms = STALL_FRAMES * 1000 / rate
    run = start_graph(
        f"""
name: queue-over-budget
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: {rate}, width: 512, height: 512, dtype: uint8, count: {count}}}
  - id: sink
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: {{from: src/image, policy: queue, depth: 256, budget_mib: {budget_mib}}}}}
    params: {{out: "{out}", sleep_ms: {sleeps(stall_at, stall_ms)}}}
  - id: watch
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: {{from: sink/status, policy: queue, depth: 64}}}}
    params: {{out: "{alarms}"}}
"""
    )
    records = settled(run, out, count - 1)
    seqs = [r["seq"] for r in records]
    stats = run.input_stats("sink")
    assert seqs == sorted(set(seqs)) and seqs[-1] == count - 1, "in order, to the last one"
    assert all(r["intact"] for r in records)
    missing = sorted(set(range(count)) - set(seqs))
    assert missing, "a stall of 60 frames cannot fit a budget of 31"
    assert stats["lost"] == len(missing) and stats["overwritten"] == 0, stats
    # What fitted in the budget was kept: every frame after the stalled one up to the budget.
    kept = missing[0] - stall_at - 1
    assert fits <= kept <= fits + 3, f"kept {kept} frames of the stall, the budget holds {fits}"
    # Only frames captured during the stall were lost; after it every frame got through.
    resumed = next(
        r["seq"] for r in records if r["stamp_ns"] > records[stall_at]["t_ns"] + stall_ms * 1e6
    )
    assert missing[-1] < resumed + 3, f"lost {missing} after the stall ended at seq {resumed}"
    sink = run.nodes["sink"]
    assert sink.alarms > 0 and sink.last_alarm.startswith("queue-loss")
    statuses = run.wait(lambda: read_jsonl(alarms), 5, "a queue-loss Status on sink/status")
    assert {s["code"] for s in statuses} == {"queue-loss"}
    run.wait(lambda: run.stats("src").get("send_drops", 0) == len(missing), 5, "drops counted")
    assert source_hz(records) >= 0.8 * rate, "the source waited for the stalled reader"


def test_a_killed_queue_reader_frees_its_claims(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    seen = tmp_path / "watch.jsonl"
    rate, budget_mib = 100, 16
    run = start_graph(
        f"""
name: queue-reader-killed
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: {rate}, width: 512, height: 512, dtype: uint8}}
  - id: stuck
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: {{from: src/image, policy: queue, depth: 1000, budget_mib: {budget_mib}}}}}
    params: {{out: "{tmp_path / "stuck.jsonl"}", sleep_ms: [0, 60000]}}
    restart: never
  - id: watch
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: src/image}}
    params: {{out: "{seen}"}}
"""
    )

    def pool() -> dict:
        return run.stats("src").get("pools", {}).get("image", {})

    last = {"slots": -1, "since": time.monotonic()}

    def steady() -> bool:
        """The pool has not grown for a second (the stuck reader's claims are at their cap)."""
        if pool().get("slots") != last["slots"]:
            last["slots"], last["since"] = pool().get("slots"), time.monotonic()
        return (
            pool().get("claimed_mib", 0) >= budget_mib - 1 and time.monotonic() - last["since"] > 1
        )

    # Connected but never reading again: it pins at most its budget, and no more.
    run.wait(steady, 15, "the pool to stop growing with the budget claimed")
    assert pool()["claimed_mib"] <= budget_mib
    slots = pool()["slots"]
    rotation = 8  # slots a latest reader may still be about to map
    assert slots <= budget_mib * 1024 // 260 + rotation + 4, f"{slots} slots for {budget_mib} MiB"

    pid = run.nodes["stuck"].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    run.wait(lambda: pool().get("claimed_mib") == 0, 10, "the killed reader's claims freed")
    before = len(read_jsonl(seen))
    start = time.monotonic()
    run.run_for(1.5)
    assert pool()["slots"] == slots, "the pool grew after the reader was gone"
    records = read_jsonl(seen)[before:]
    assert len(records) >= 0.5 * rate * (time.monotonic() - start), "the latest reader starved"
    assert source_hz(records) >= 0.8 * rate, "the source slowed down"
    assert run.nodes["src"].state == "running"
