"""Disk full while recording: a clear alarm, the file so far readable, the live graph goes on.

Two real ways to fill a disk without faking a write: a file size limit (``RLIMIT_FSIZE``, any
user; the write fails with EFBIG) and, where the tests run as root, a tiny tmpfs (ENOSPC).
"""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from igtflow.stream.messages import Image
from igtflow.stream.recording import DiskFull, RecordingWriter, read_messages
from igtflow.stream.recording_scan import ScanReport
from tests.helpers.cli import igtflow
from tests.helpers.graph_runs import read_jsonl


def _frames(count: int) -> Iterator[Image]:
    rng = np.random.default_rng(1)
    for n in range(count):
        data = rng.integers(0, 256, (64, 64), dtype=np.uint8)  # incompressible
        yield Image(data=data, topic="probe/image", seq=n, stamp_ns=1_000_000 * (n + 1))


def _recorded_seqs(path: Path) -> list[int]:
    report = ScanReport(str(path))
    return [m.seq for _, _, m in read_messages(path, report=report)]


def test_writer_stops_at_file_size_limit_and_keeps_what_it_wrote(tmp_path: Path) -> None:
    path = tmp_path / "full.mcap"
    limit = 120_000
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))  # Python ignores SIGXFSZ: EFBIG
    try:
        writer = RecordingWriter(path, "name: g\n", chunk_size=16_384, flush_interval_s=60)
        for image in _frames(200):
            writer.write(image)
            if writer.failed is not None:
                break
        for image in _frames(3):
            writer.write(image)  # after the failure: counted, not written, no exception
        writer.close()
        writer.close()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    full = writer.failed
    assert isinstance(full, DiskFull) and full.errno == errno.EFBIG
    assert str(path) in str(full) and "MB free" in str(full)
    assert writer.dropped >= 3
    assert path.stat().st_size <= limit
    seqs = _recorded_seqs(path)
    assert seqs == list(range(len(seqs))), "the file keeps an unbroken run from the start"
    assert len(seqs) >= full.written > 0
    inspected = igtflow("inspect", str(path), "--json", timeout=60)
    assert inspected.returncode == 3, inspected.stderr  # readable, and it says it was cut
    summary = json.loads(inspected.stdout)
    assert summary["topics"]["probe/image"]["messages"] == len(seqs)
    assert summary["topics"]["probe/image"]["missing_seq"] == 0


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs, mounted for the test; skipped where mounting needs rights we lack."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root; the RLIMIT_FSIZE test covers the rest")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_recorder_on_a_full_disk_alarms_keeps_its_file_and_the_graph_goes_on(
    tiny_disk: Path, tmp_path: Path, start_graph
) -> None:
    target = tiny_disk / "run.mcap"
    alarms = tmp_path / "alarms.jsonl"
    run = start_graph(
        f"""
name: disk-full
nodes:
  - id: src
    uses: tests.nodes.sources:Noise
    params: {{rate_hz: 100, width: 96, height: 96}}
  - id: rec
    uses: record
    inputs: {{image: {{from: src/image, policy: queue, depth: 256}}}}
    params: {{path: "{target}", flush_s: 0.1}}
  - id: watch
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: rec/status}}
    params: {{out: "{alarms}"}}
"""
    )
    full = run.wait(
        lambda: [a for a in read_jsonl(alarms) if a["code"] == "disk-full"], 30, "disk-full"
    )[0]
    heard_ns = full["t_ns"]
    assert full["level"] == "error" and str(target) in full["text"]
    assert "MB free" in full["text"] and full["meta"]["free_bytes"] >= 0
    assert (heard_ns - full["meta"]["failed_ns"]) / 1e9 < 1.0, "alarm within a second"
    run.wait(lambda: run.nodes["rec"].last_alarm.startswith("disk-full"), 5, "the status table")

    sent_at_alarm = run.stats("src")["sent"]
    t0 = time.monotonic()
    run.run_for(1.5)
    rate = (run.stats("src")["sent"] - sent_at_alarm) / (time.monotonic() - t0)
    assert rate > 60, f"the source kept its rate ({rate:.0f}/s of 100)"
    assert all(n.restarts == 0 for n in run.nodes.values()), "no node was restarted"
    assert run.nodes["rec"].state == "running"
    run.stop()

    seqs = _recorded_seqs(target)
    assert seqs == list(range(len(seqs))) and len(seqs) >= full["meta"]["kept"] > 0
    assert run.nodes["rec"].files[str(target)] == "stopped: disk full"
