"""``igtflow bench e2e``: each guidance graph end to end, capture → sent to a client's socket.

Each case runs a shipped guidance graph (``launch/graphs/*-guidance.yaml``) as real node
processes at its source's native rate, with an OpenIGTLink client in its own process that
records, per message, when it arrived minus the header timestamp (the capture time of the frame
it was derived from, DESIGN.md). Beside it, in the same run, the same graph without its networks
and registration (``graph_edit.without_nodes``): the framework's floor, the same source, overlay,
server and recorder with nothing to compute. A third US run at twice the source rate shows
overload: the ``latest`` policy keeps latency bounded and counts what it skipped.

Before the graphs, the overlay's compose time per frame is measured in process on the sample
recordings (``render.overlay_bench``): the per-node budget the issue sets (≤ 3 ms p99 at 256²).

Reported per case: latency p50/p99/max per device and for the worst output, source drops (ticks
the source could not make on time), frames skipped on the way, each node's CPU ms per frame, and
the nodes' resident memory over the run (its growth from the first to the last quarter).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

from igtflow.launch.graph_edit import without_nodes
from igtflow.launch.graph_reader import parse_graph
from igtflow.launch.supervisor import Supervisor
from igtflow.machine import describe, machine_info
from igtflow.ports import free_port
from igtflow.render.igtl.bench import Receiver

COMPUTE_NODES = ("segment", "track", "register-us", "register-fluoro", "shift-monitor")
WARMUP_S = 3.0  # first frames carry model loading and caches warming: not steady state
TARGETS = {"us_p99_ms": 50.0, "fluoro_p99_ms": 100.0, "us_source_drops": 0}


@dataclass(frozen=True)
class Case:
    """One run: a shipped graph (or its floor) at a source rate."""

    name: str
    graph: str  # file name under launch/graphs
    source: str  # node id of the source
    rate_hz: float
    floor: bool = False
    overrides: tuple[str, ...] = field(default=())


CASES = (
    Case("us", "us-guidance.yaml", "probe", 30.0),
    Case("floor_us", "us-guidance.yaml", "probe", 30.0, floor=True),
    Case("overload_us", "us-guidance.yaml", "probe", 60.0),
    Case("fluoro", "fluoro-guidance.yaml", "carm", 15.0),
    Case("floor_fluoro", "fluoro-guidance.yaml", "carm", 15.0, floor=True),
)


def graph_text(case: Case) -> str:
    text = resources.files("igtflow.launch").joinpath(f"graphs/{case.graph}").read_text()
    return without_nodes(text, COMPUTE_NODES) if case.floor else text


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "count": 0}
    p50, p99 = np.percentile(values, [50, 99])
    return {
        "p50_ms": round(float(p50), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(max(values)), 2),
        "count": len(values),
    }


def _latency_by_device(received: dict[str, Any], since_ns: int) -> dict[str, list[float]]:
    by_device: dict[str, list[float]] = {}
    for device, arrived, latency in zip(
        received["device"], received["arrival_ns"], received["latency_ms"], strict=True
    ):
        if arrived >= since_ns:
            by_device.setdefault(device, []).append(latency)
    return by_device


def _rss_mb(pids: list[int]) -> float:
    """Anonymous resident memory (RSS less file-backed and shared pages), MB, summed.

    Plain RSS also counts the pages of a file a node maps (a recorder rereading a part it
    recovers maps the whole file) and the shared frame pool, neither of which a leak grows.
    """
    total = 0
    for pid in pids:
        try:
            info = psutil.Process(pid).memory_info()
        except psutil.Error:
            continue
        total += info.rss - getattr(info, "shared", 0)
    return total / 2**20


def run_case(case: Case, seconds: float, work_dir: Path) -> dict[str, Any]:
    """Run one case for ``seconds`` of steady state; its latency, drops, CPU and memory."""
    port = free_port()
    overrides = [
        f"{case.source}.rate_hz={case.rate_hz}",
        f"slicer.port={port}",
        f"rec.path={work_dir / (case.name + '.mcap')}",
        *case.overrides,
    ]
    graph = parse_graph(graph_text(case), f"graphs/{case.graph}", overrides)
    supervisor = Supervisor(graph, work_dir / case.name)
    rss: list[float] = []
    try:
        supervisor.start()
        receiver = Receiver(port, idle_s=5.0, limit_s=seconds + WARMUP_S + 120)
        started = time.monotonic()
        since_ns = time.time_ns() + int(WARMUP_S * 1e9)
        next_sample = started + WARMUP_S
        while time.monotonic() - started < seconds + WARMUP_S:
            supervisor.poll(0.25)
            if time.monotonic() >= next_sample:
                rss.append(_rss_mb([n.pid for n in supervisor.nodes.values() if n.pid]))
                next_sample += 1.0
        rows = supervisor.snapshot()
        source_stats = dict(supervisor.nodes[case.source].stats)
        handler_p99 = {i: n.stats.get("handler_p99_ms") for i, n in supervisor.nodes.items()}
        background = {i for i, n in supervisor.nodes.items() if n.spec.priority == "background"}
    finally:
        supervisor.stop()
    received = receiver.result(timeout_s=60)
    by_device = _latency_by_device(received, since_ns)
    devices = {name: percentiles(values) for name, values in sorted(by_device.items())}
    counted = [d for d, v in devices.items() if v["count"]]
    worst = max(counted, key=lambda d: devices[d]["p99_ms"]) if counted else None
    quarter = max(1, len(rss) // 4)
    return {
        "graph": case.graph,
        "floor": case.floor,
        "rate_hz": case.rate_hz,
        "seconds": seconds,
        "devices": devices,
        "worst_device": worst,
        "latency": devices[worst] if worst else percentiles([]),
        "source_drops": int(source_stats.get("late_ticks", 0)),
        "source_sent": int(source_stats.get("sent", 0)),
        # frames the live path skipped (latest policy); a background node skips by design
        "skipped": {
            r["node"]: r["drops"] for r in rows if r["drops"] and r["node"] not in background
        },
        "handler_p99_ms": {k: None if v is None else round(v, 2) for k, v in handler_p99.items()},
        "cpu_ms_per_frame": {r["node"]: r["cpu_ms_per_frame"] for r in rows},
        "cpu_percent": {r["node"]: r["cpu_percent"] for r in rows},
        "failed": [r["node"] for r in rows if r["state"] == "failed"],
        "rss_mb": [round(v, 1) for v in rss],
        "rss_growth_mb": round(float(np.mean(rss[-quarter:]) - np.mean(rss[:quarter])), 1)
        if rss
        else None,
    }


def run_e2e_bench(
    seconds: float = 60.0, only: list[str] | None = None, progress: Console | None = None
) -> dict[str, Any]:
    """Every case (or those named in ``only``), then the headline keys and ratios."""
    from igtflow.render.overlay_bench import overlay_bench

    if progress is not None:
        progress.print("e2e: overlay compose per frame, in process …")
    overlay = overlay_bench()
    work_dir = Path(tempfile.mkdtemp(prefix="igtflow-e2e-"))
    results: dict[str, Any] = {}
    try:
        for case in CASES:
            if only and case.name not in only:
                continue
            if progress is not None:
                progress.print(f"e2e: {case.name} ({case.graph}, {case.rate_hz:g} Hz) …")
            results[case.name] = run_case(case, seconds, work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return {
        "cases": results,
        **headline(results),
        "overlay_us_p99_ms": overlay["us_compose"]["p99_ms"],
        "overlay_fluoro_p99_ms": overlay["fluoro_compose"]["p99_ms"],
        "overlay": overlay,
        "machine": machine_info(),
    }


def _p(results: dict[str, Any], name: str, key: str) -> float | None:
    case = results.get(name)
    return case["latency"][key] if case else None


def headline(results: dict[str, Any]) -> dict[str, Any]:
    us, floor = _p(results, "us", "p99_ms"), _p(results, "floor_us", "p99_ms")
    return {
        "us_p50_ms": _p(results, "us", "p50_ms"),
        "us_p99_ms": us,
        "us_source_drops": results["us"]["source_drops"] if "us" in results else None,
        "fluoro_p99_ms": _p(results, "fluoro", "p99_ms"),
        "overload_p99_ms": _p(results, "overload_us", "p99_ms"),
        "floor_us_p99_ms": floor,
        "floor_fluoro_p99_ms": _p(results, "floor_fluoro", "p99_ms"),
        "us_over_floor": round(us / floor, 2) if us and floor else None,
        "rss_growth_mb": results["us"]["rss_growth_mb"] if "us" in results else None,
    }


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _cpu_cell(case: dict[str, Any], node: str) -> str:
    if node not in case["cpu_ms_per_frame"]:
        return ""
    return f"{_ms(case['cpu_ms_per_frame'][node])} ({_ms(case['handler_p99_ms'].get(node))})"


def print_report(report: dict[str, Any], console: Console) -> None:
    table = Table(title="Guidance graphs end to end: capture → sent to an OpenIGTLink client")
    for column in ("case", "rate", "worst output", "p50 ms", "p99 ms", "max ms", "drops", "RSS Δ"):
        table.add_column(column, justify="left" if column in ("case", "worst output") else "right")
    for name, case in report["cases"].items():
        lat = case["latency"]
        table.add_row(
            name,
            f"{case['rate_hz']:g} Hz",
            case["worst_device"] or "nothing received",
            _ms(lat["p50_ms"]),
            _ms(lat["p99_ms"]),
            _ms(lat["max_ms"]),
            f"{case['source_drops']} (+{sum(case['skipped'].values())} skipped)",
            f"{_ms(case['rss_growth_mb'])} MB",
        )
    console.print(table)
    cpu = Table(title="Per node: CPU ms per frame (handler p99 ms)")
    cpu.add_column("node")
    names = list(report["cases"])
    for name in names:
        cpu.add_column(name, justify="right")
    nodes = sorted({n for c in report["cases"].values() for n in c["cpu_ms_per_frame"]})
    for node in nodes:
        cpu.add_row(node, *(_cpu_cell(report["cases"][n], node) for n in names))
    console.print(cpu)
    ratio = report.get("us_over_floor")
    console.print(
        f"US p99 {_ms(report['us_p99_ms'])} ms (target ≤ {TARGETS['us_p99_ms']:.0f}), floor "
        f"{_ms(report['floor_us_p99_ms'])} ms"
        + (f", {ratio:.2f}× the floor" if ratio else "")
        + f"; fluoro p99 {_ms(report['fluoro_p99_ms'])} ms (target ≤ "
        f"{TARGETS['fluoro_p99_ms']:.0f}); 2× overload p99 {_ms(report['overload_p99_ms'])} ms",
        highlight=False,
    )
    overlay = report["overlay"]
    console.print(
        "overlay compose per frame (new labels each frame, model cut or projected): US 256² "
        f"p50 {overlay['us_compose']['p50_ms']:.2f} / p99 {overlay['us_compose']['p99_ms']:.2f} ms "
        f"(target ≤ 3), fluoro 512² p50 {overlay['fluoro_compose']['p50_ms']:.2f} / p99 "
        f"{overlay['fluoro_compose']['p99_ms']:.2f} ms; the bare RGB copy of the frame "
        f"{overlay['us_copy']['p50_ms']:.2f} / {overlay['fluoro_copy']['p50_ms']:.2f} ms",
        highlight=False,
    )
    console.print(describe(report["machine"]), highlight=False)
