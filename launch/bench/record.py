"""``igtflow bench record``: can the recorder keep up, with room to spare, and how fast is replay?

Every figure comes from real graphs of node processes:

- **paced**: a source at the required rate (1024×1024 uint16 at 30 fps, 256×256 uint8 at 60 fps,
  frames with a moving grain so they compress like real images) into a ``record`` node for the
  whole duration; the recording is read back and every missing frame is counted as lost;
- **saturated**: the same source as fast as it can go; the rate the recorder actually wrote is
  its sustainable rate, and headroom = that rate / the required rate;
- **baseline**: the ``mcap`` package's own writer (zstd at its default level) writing the same
  frames in this process, no graph, beside ``RecordingWriter`` doing the same;
- **replay**: a recording played in lockstep through a pass-through graph, as fast as it goes;
  speed-up = recorded duration / wall time.

It lives in ``launch`` rather than beside the recorder in ``stream``: the paced, saturated and
replay figures come from graphs started by the supervisor, and ``stream`` imports no other layer.
"""

from __future__ import annotations

import io
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcap.writer
import numpy as np
import zstandard
from mcap.writer import CompressionType, Writer

from igtflow.machine import describe, machine_info

REPLAY_SAMPLE = Path("recordings/phantom-us.mcap")
DRAIN_S = 1.5


@dataclass(frozen=True)
class RecordCase:
    name: str
    width: int
    height: int
    dtype: str
    rate_hz: float
    noise: float


CASES = (
    RecordCase("fluoro 1024×1024 uint16 @ 30 fps", 1024, 1024, "uint16", 30, 40.0),
    RecordCase("US 256×256 uint8 @ 60 fps", 256, 256, "uint8", 60, 12.0),
)


def _graph(case: RecordCase, rate_hz: float, path: Path) -> str:
    return f"""
name: bench-record
nodes:
  - id: src
    uses: synthetic-image
    params: {{width: {case.width}, height: {case.height}, dtype: {case.dtype},
              noise: {case.noise}, rate_hz: {rate_hz}}}
  - id: rec
    uses: record
    inputs: {{"*": {{from: "*", policy: queue, depth: 256}}}}
    params: {{path: "{path}"}}
"""


def _record_run(case: RecordCase, rate_hz: float, seconds: float, tmp: Path) -> dict[str, Any]:
    """Run source → recorder for ``seconds``, let it drain, and count what reached the file."""
    from igtflow.launch.graph_reader import parse_graph
    from igtflow.launch.supervisor import Supervisor
    from igtflow.stream.recording_scan import ScanReport, scan

    path = tmp / f"{case.width}-{rate_hz}.mcap"
    graph = parse_graph(_graph(case, rate_hz, path), "<bench record>")
    supervisor = Supervisor(graph, tmp / "logs", log_sink=lambda _line: None)
    try:
        supervisor.start()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            supervisor.poll(0.25)
        supervisor.pause(True)  # the source stops; the recorder empties its queue
        supervisor.poll(DRAIN_S)
        rows = {row["node"]: row for row in supervisor.snapshot()}
    finally:
        supervisor.stop()
    report = ScanReport(str(path))
    log_times, seqs = [], []
    for raw in scan(path, topics=["src/image"], report=report):
        log_times.append(raw.log_time_ns)
        seqs.append(raw.sequence)
    sent = int(rows["src"]["sent"])
    recorded = len(seqs)
    span_s = (max(log_times) - min(log_times)) / 1e9 if len(log_times) > 1 else 0.0
    return {
        "offered_hz": round(sent / seconds, 1),
        "sent": sent,
        "recorded": recorded,
        "lost": sent - recorded,
        "recorded_hz": round((recorded - 1) / span_s, 1) if span_s else 0.0,
        "queue_alarms": rows["rec"]["alarms"],
        "bytes_per_frame": round(path.stat().st_size / max(1, recorded)),
        "raw_bytes_per_frame": case.width * case.height * np.dtype(case.dtype).itemsize,
        "closed": report.complete,
    }


def _frames(case: RecordCase, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = np.add.outer(np.arange(case.height), np.arange(case.width)) % 128 + 1000
    if case.dtype == "uint8":
        base = base % 128 + 64
    return [
        np.clip(base + rng.normal(0, case.noise, base.shape), 0, None).astype(case.dtype)
        for _ in range(count)
    ]


def _writer_baseline(case: RecordCase, seconds: float) -> dict[str, Any]:
    """Frames/s of the plain ``mcap`` writer and of ``RecordingWriter``, in-process, one core."""
    from igtflow.stream.messages import Image
    from igtflow.stream.recording import RecordingWriter

    frames = _frames(case, 32)
    ours = mcap.writer.zstandard
    mcap.writer.zstandard = zstandard  # the library as shipped: zstd at its default level
    plain = Writer(io.BytesIO(), compression=CompressionType.ZSTD)
    plain.start()
    channel = plain.register_channel("src/image", "igtflow-msgpack", 0)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        plain.add_message(channel, n, frames[n % 32].tobytes(), n)
        n += 1
    plain.finish()
    plain_fps = n / (time.perf_counter() - start)
    mcap.writer.zstandard = ours
    with tempfile.TemporaryDirectory() as tmp:
        writer = RecordingWriter(Path(tmp) / "b.mcap", "", {})
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            writer.write(Image(topic="src/image", seq=n, data=frames[n % 32]))
            n += 1
        writer.close()
        ours_fps = n / (time.perf_counter() - start)
    return {"mcap_writer_fps": round(plain_fps, 1), "recording_writer_fps": round(ours_fps, 1)}


def _stand_in_recording(path: Path, seconds: float = 10.0) -> None:
    """A 256×256 US-like recording at 30 fps with a pose per frame, when no sample is given."""
    from igtflow.stream.messages import Image, Transform
    from igtflow.stream.recording import RecordingWriter

    case = RecordCase("stand-in", 256, 256, "uint8", 30, 12.0)
    frames = _frames(case, 16)
    with RecordingWriter(path, "name: stand-in\nnodes: []\n", {"stand_in": True}) as writer:
        for i in range(int(seconds * 30)):
            stamp = 1_700_000_000_000_000_000 + i * 33_333_333
            writer.write(Image(topic="probe/image", seq=i, stamp_ns=stamp, data=frames[i % 16]))
            writer.write(Transform(topic="probe/probe_to_tracker", seq=i, stamp_ns=stamp))


def _replay_run(recording: Path, tmp: Path) -> dict[str, Any]:
    """Lockstep replay of ``recording`` through a pass-through of its images, as fast as it goes."""
    from igtflow.launch.graph_edit import replay_graph
    from igtflow.launch.graph_reader import parse_graph
    from igtflow.launch.supervisor import Supervisor
    from igtflow.stream.recording import read_info
    from igtflow.stream.recording_scan import scan

    info = read_info(recording)
    stamps = [raw.publish_time_ns for raw in scan(recording)]
    duration_s = (max(stamps) - min(stamps)) / 1e9
    image_topic = next(t for t, kind in sorted(info.topics.items()) if kind == "Image")
    producer = image_topic.partition("/")[0]
    topics = sorted(t for t in info.topics if t.startswith(producer + "/"))
    downstream = f"""name: bench-replay
nodes:
  - id: relay
    uses: passthrough
    inputs: {{in: {image_topic}}}
"""
    text, _ = replay_graph(str(recording), downstream, sorted(info.topics), topics)
    supervisor = Supervisor(
        parse_graph(text, "<bench replay>"), tmp / "logs", log_sink=lambda _: None, lockstep=True
    )
    try:
        supervisor.start()
        start = time.monotonic()
        while not supervisor.drained() and time.monotonic() - start < 600:
            supervisor.poll(0.01)
        wall_s = time.monotonic() - start
        supervisor.poll(1.0)  # one more heartbeat, so the relay's count is current
        rows = {row["node"]: row for row in supervisor.snapshot()}
    finally:
        supervisor.stop()
    return {
        "recording": str(recording),
        "messages": len(stamps),
        "recorded_s": round(duration_s, 2),
        "wall_s": round(wall_s, 2),
        "replay_speedup": round(duration_s / wall_s, 1) if wall_s else None,
        "relay_received": rows["relay"]["received"],
    }


def run_record_bench(
    duration_s: float = 60.0,
    saturated_s: float = 10.0,
    recording: Path | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Every case paced and saturated, the writer baselines, and the lockstep replay."""
    say = progress.print if progress is not None else (lambda *_: None)
    cases = []
    with tempfile.TemporaryDirectory(prefix="igtflow-bench-record-") as tmp_name:
        tmp = Path(tmp_name)
        for case in CASES:
            say(f"{case.name}: paced {duration_s:.0f} s")
            paced = _record_run(case, case.rate_hz, duration_s, tmp)
            say(f"{case.name}: saturated {saturated_s:.0f} s")
            saturated = _record_run(case, 0, saturated_s, tmp)
            baseline = _writer_baseline(case, min(5.0, saturated_s))
            cases.append(
                {
                    "case": case.name,
                    "required_hz": case.rate_hz,
                    "paced": paced,
                    "saturated": saturated,
                    "baseline": baseline,
                    "headroom": round(saturated["recorded_hz"] / case.rate_hz, 2),
                }
            )
        sample = recording or REPLAY_SAMPLE
        if not sample.exists():
            sample = tmp / "stand-in.mcap"
            _stand_in_recording(sample)
        say(f"replay in lockstep: {sample}")
        replay = _replay_run(sample, tmp)
    return {
        "machine": machine_info(),
        "duration_s": duration_s,
        "cases": cases,
        "replay": replay,
        "record_headroom": min(c["headroom"] for c in cases),
        "record_lost": sum(c["paced"]["lost"] for c in cases),
        "replay_speedup": replay["replay_speedup"],
    }


def print_report(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title="igtflow bench record", title_justify="left")
    for column in (
        "case",
        "paced: sent",
        "lost",
        "saturated: recorded fps",
        "headroom",
        "KB/frame (raw)",
        "mcap writer fps",
        "RecordingWriter fps",
    ):
        table.add_column(column, justify="left" if column == "case" else "right")
    for c in report["cases"]:
        table.add_row(
            c["case"],
            str(c["paced"]["sent"]),
            str(c["paced"]["lost"]),
            f"{c['saturated']['recorded_hz']:.0f}",
            f"{c['headroom']:.1f}×",
            f"{c['paced']['bytes_per_frame'] / 1e3:.0f} "
            f"({c['paced']['raw_bytes_per_frame'] / 1e3:.0f})",
            f"{c['baseline']['mcap_writer_fps']:.0f}",
            f"{c['baseline']['recording_writer_fps']:.0f}",
        )
    console.print(table)
    r = report["replay"]
    console.print(
        f"lockstep replay of {r['recording']}: {r['messages']} messages, {r['recorded_s']} s "
        f"recorded, in {r['wall_s']} s → {r['replay_speedup']}× real time"
    )
    console.print(describe(report["machine"]), highlight=False)
