"""``igtflow bench soak``: the US guidance graph for minutes, with faults injected at random.

The graph runs as in ``bench e2e`` (real processes, an OpenIGTLink client in its own process
timing every message from capture, reconnecting whenever the server restarts). The first fifth
of the run is fault-free: its p99 is the baseline. Then, at random times (seeded), one fault at a
time: a node killed with SIGKILL, a node hung (SIGSTOP: alive, silent, so only the supervisor's
heartbeat watch can tell), an OpenIGTLink client that connects and never reads, and one that
sends garbage. A node fault's window lasts from its injection until the node runs again (a new
process) plus a settling second; a client fault's, two seconds. Reported: restarts, each
detection and recovery time, frames the recording lost outside fault windows (``seq`` gaps of
the source's image topic, across every part of the recording), latency p99 outside fault
windows against the fault-free p99, latency over time, and memory growth.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from igtflow.launch.bench.e2e import _rss_mb, percentiles
from igtflow.launch.graph_reader import parse_graph
from igtflow.launch.supervisor import Supervisor
from igtflow.machine import machine_info
from igtflow.ports import free_port
from igtflow.render.igtl.bench import Receiver
from igtflow.stream.recording import read_messages
from igtflow.stream.recording_scan import ScanReport

GRAPH = "us-guidance.yaml"
SOURCE_TOPIC = "probe/image"
KILLABLE = ("probe", "seg", "track", "overlay", "slicer", "rec")
FAULTS = ("kill", "kill", "kill", "hang", "stalled_client", "malformed_client")
SETTLE_S = 1.0
CLIENT_FAULT_S = 2.0
RECOVERY_TIMEOUT_S = 30.0


@dataclasses.dataclass
class Fault:
    kind: str
    node: str | None
    start_ns: int
    end_ns: int = 0
    detect_ms: float | None = None
    recovery_ms: float | None = None


def _graph(port: int, recording: Path) -> Any:
    from importlib import resources

    text = resources.files("igtflow.launch").joinpath(f"graphs/{GRAPH}").read_text()
    graph = parse_graph(text, f"graphs/{GRAPH}", [f"slicer.port={port}", f"rec.path={recording}"])
    # a soak injects more faults into one node than a real run would survive by design
    nodes = tuple(dataclasses.replace(n, max_restarts=10_000) for n in graph.nodes)
    return dataclasses.replace(graph, nodes=nodes)


def _wait_restarted(
    supervisor: Supervisor, node_id: str, old_pid: int
) -> tuple[float | None, float | None]:
    """Seconds until the supervisor saw ``node_id`` down (its state left ``running``), and
    until it runs again in a new process (None: not within the timeout)."""
    start = time.monotonic()
    detected = None
    while time.monotonic() - start < RECOVERY_TIMEOUT_S:
        supervisor.poll(0.02)
        node = supervisor.nodes[node_id]
        if detected is None and (node.state.value != "running" or node.pid != old_pid):
            detected = time.monotonic() - start
        if node.pid not in (None, old_pid) and node.state.value == "running":
            return detected, time.monotonic() - start
    return detected, None


def _hold_stalled_client(port: int) -> socket.socket:
    """A client that connects and never reads: the server must not slow down for it."""
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return client


def _send_garbage(port: int, rng: random.Random) -> None:
    """A client that sends a header with absurd sizes and then noise, and hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        # version, type (12), device (20), timestamp (8), body size 2**64-1, CRC (8): 58 bytes
        header = b"\x00\x02" + b"IMAGE".ljust(12, b"\x00") + bytes(28) + b"\xff" * 8 + bytes(8)
        client.sendall(header + rng.randbytes(1000))


def _inject(
    kind: str, supervisor: Supervisor, port: int, rng: random.Random, held: list[socket.socket]
) -> Fault:
    now = time.time_ns()
    if kind in ("kill", "hang"):
        node_id = rng.choice(KILLABLE if kind == "kill" else ("seg", "track", "overlay"))
        pid = supervisor.nodes[node_id].pid
        fault = Fault(kind, node_id, now)
        if pid is None:
            fault.end_ns = now
            return fault
        os.kill(pid, signal.SIGKILL if kind == "kill" else signal.SIGSTOP)
        detected, took = _wait_restarted(supervisor, node_id, pid)
        fault.detect_ms = None if detected is None else round(detected * 1e3, 1)
        fault.recovery_ms = None if took is None else round(took * 1e3, 1)
        fault.end_ns = time.time_ns() + int(SETTLE_S * 1e9)
        return fault
    if kind == "stalled_client":
        held.append(_hold_stalled_client(port))
    else:
        _send_garbage(port, rng)
    return Fault(kind, None, now, now + int(CLIENT_FAULT_S * 1e9))


def _in_fault(stamp_ns: int, faults: list[Fault]) -> bool:
    return any(f.start_ns <= stamp_ns <= f.end_ns for f in faults)


def _frames_lost(parts: list[Path], faults: list[Fault]) -> tuple[int, int]:
    """(frames lost outside fault windows, inside them): ``seq`` gaps of the source's image,
    read across every part of the recording (a killed recorder continues in a new part)."""
    seen: dict[int, int] = {}
    for part in parts:
        for _, _, message in read_messages(part, [SOURCE_TOPIC], ScanReport(str(part))):
            seen[message.seq] = message.stamp_ns
    outside = inside = 0
    seqs = sorted(seen)
    for before, after in itertools.pairwise(seqs):
        missing = after - before - 1
        if missing <= 0:
            continue
        # a gap is inside a fault when the fault's window overlaps the frames around it
        lo, hi = seen[before], seen[after]
        if any(f.start_ns <= hi and lo <= f.end_ns for f in faults):
            inside += missing
        else:
            outside += missing
    return outside, inside


def run_soak(minutes: float, seed: int = 0, progress: Any = None) -> dict[str, Any]:
    """The soak; see the module docstring for what it measures."""
    rng = random.Random(seed)
    seconds = minutes * 60
    work = Path(tempfile.mkdtemp(prefix="igtflow-soak-"))
    port = free_port()
    supervisor = Supervisor(_graph(port, work / "soak.mcap"), work / "logs")
    faults: list[Fault] = []
    held: list[socket.socket] = []
    rss: list[tuple[float, float]] = []
    rss_nodes: list[dict[str, float]] = []
    try:
        supervisor.start()
        receiver = Receiver(port, idle_s=10.0, limit_s=seconds + 180, reconnect=True)
        started = time.monotonic()
        baseline_end_ns = time.time_ns() + int(seconds / 5 * 1e9)
        warm_ns = time.time_ns() + int(3e9)
        next_fault = started + seconds / 5 + rng.uniform(2, 8)
        gap_s = max(5.0, seconds / 30)  # about 25 faults in any soak
        next_sample = started + 3.0
        while time.monotonic() - started < seconds:
            supervisor.poll(0.1)
            now = time.monotonic()
            if now >= next_sample:
                by_node = {i: _rss_mb([n.pid]) for i, n in supervisor.nodes.items() if n.pid}
                rss.append((round(now - started, 1), round(sum(by_node.values()), 1)))
                rss_nodes.append(by_node)
                next_sample += 2.0
            if now >= next_fault and now - started < seconds - 5:
                kind = rng.choice(FAULTS)
                fault = _inject(kind, supervisor, port, rng, held)
                faults.append(fault)
                if progress is not None:
                    where = f" {fault.node}" if fault.node else ""
                    took = f", back in {fault.recovery_ms:.0f} ms" if fault.recovery_ms else ""
                    progress.print(f"soak {now - started:5.0f} s: {kind}{where}{took}")
                next_fault = time.monotonic() + rng.uniform(0.5, 1.5) * gap_s
        restarts = {i: n.restarts for i, n in supervisor.nodes.items() if n.restarts}
        failed = [i for i, n in supervisor.nodes.items() if n.state.value == "failed"]
    finally:
        supervisor.stop()
        for client in held:
            client.close()
    received = receiver.result(timeout_s=120)
    parts = sorted(work.glob("soak*.mcap"))
    lost_outside, lost_inside = _frames_lost(parts, faults)
    shutil.rmtree(work, ignore_errors=True)
    return _report(received, faults, rss, restarts, failed, baseline_end_ns, warm_ns, seconds) | {
        "frames_lost_outside_faults": lost_outside,
        "frames_lost_inside_faults": lost_inside,
        "recording_parts": len(parts),
        # per node, first and last sample: which process grew
        "rss_by_node_mb": {
            i: [round(rss_nodes[0].get(i, 0.0), 1), round(v, 1)]
            for i, v in (rss_nodes[-1].items() if rss_nodes else [])
        },
        "machine": machine_info(),
    }


def _report(
    received: dict[str, Any],
    faults: list[Fault],
    rss: list[tuple[float, float]],
    restarts: dict[str, int],
    failed: list[str],
    baseline_end_ns: int,
    warm_ns: int,
    seconds: float,
) -> dict[str, Any]:
    fault_free: list[float] = []
    outside: list[float] = []
    first_ns = received["first_ns"] or 0
    windows: dict[int, list[float]] = {}
    for arrived, latency in zip(received["arrival_ns"], received["latency_ms"], strict=True):
        if arrived < warm_ns:
            continue
        windows.setdefault(int((arrived - first_ns) / 10e9), []).append(latency)
        if arrived < baseline_end_ns:
            fault_free.append(latency)
        elif not _in_fault(arrived, faults):
            outside.append(latency)
    base, out = percentiles(fault_free), percentiles(outside)
    recovery = [f.recovery_ms for f in faults if f.recovery_ms is not None]
    hung = [f.detect_ms for f in faults if f.kind == "hang" and f.detect_ms is not None]
    quarter = max(1, len(rss) // 4)
    values = [v for _, v in rss]
    return {
        "minutes": round(seconds / 60, 2),
        "faults": [dataclasses.asdict(f) for f in faults],
        "fault_counts": {k: sum(f.kind == k for f in faults) for k in sorted(set(FAULTS))},
        "unrecovered": [f"{f.kind} {f.node}" for f in faults if f.node and f.recovery_ms is None],
        "restarts": sum(restarts.values()),
        "client_reconnects": received.get("reconnects", 0),
        "restarts_by_node": restarts,
        "failed": failed,
        "max_recovery_ms": max(recovery) if recovery else None,
        "hung_detect_ms": max(hung) if hung else None,
        "p99_fault_free_ms": base["p99_ms"],
        "p99_outside_faults_ms": out["p99_ms"],
        "p99_outside_over_fault_free": round(out["p99_ms"] / base["p99_ms"], 2)
        if out["p99_ms"] and base["p99_ms"]
        else None,
        "latency_over_time": [
            {"t_s": 10 * k, **percentiles(v)} for k, v in sorted(windows.items())
        ],
        "rss_mb": rss,
        "rss_growth_mb": round(float(np.mean(values[-quarter:]) - np.mean(values[:quarter])), 1)
        if values
        else None,
    }


def print_report(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    from igtflow.machine import describe

    table = Table(title=f"Soak: us-guidance for {report['minutes']:g} min with faults injected")
    table.add_column("measure")
    table.add_column("value", justify="right")
    counts = ", ".join(f"{k} {v}" for k, v in report["fault_counts"].items())

    def ms(value: float | None) -> str:
        return "–" if value is None else f"{value:.0f} ms"

    rows = [
        ("faults injected", counts),
        ("restarts", str(report["restarts"])),
        ("nodes failed for good", ", ".join(report["failed"]) or "none"),
        ("faults not recovered", ", ".join(report["unrecovered"]) or "none"),
        ("slowest recovery (new process running)", ms(report["max_recovery_ms"])),
        ("hung node detected (heartbeat lost)", ms(report["hung_detect_ms"])),
        ("frames lost outside fault windows", str(report["frames_lost_outside_faults"])),
        ("frames lost inside fault windows", str(report["frames_lost_inside_faults"])),
        ("p99 fault-free (first fifth)", ms(report["p99_fault_free_ms"])),
        ("p99 outside fault windows", ms(report["p99_outside_faults_ms"])),
        ("ratio", f"{report['p99_outside_over_fault_free'] or 0:.2f}×"),
        ("RSS growth", f"{report['rss_growth_mb']} MB"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(describe(report["machine"]), highlight=False)
