"""``igtflow bench transport``: igtflow against raw pyzmq over the same chains on this host.

Both sides move the same frames over the same topologies (1 hop: source → sink; 3 hops: source →
relay → relay → sink), one process per node, over ipc://, one run after the other:

- igtflow: a real graph (YAML → ``parse_graph`` → ``run_graph``) of :class:`BenchSource`, the
  built-in ``passthrough`` relays and :class:`BenchSink`; large frames go through shared memory.
- raw: what a careful pyzmq user writes: PUB/SUB with default HWMs, ``[topic][msgpack
  header][buffer]``, the buffer sent with ``copy=False``, relays forwarding the received frames.

Both sinks measure with the same :class:`Tally`: per-hop latency = (receive − source send) / hops,
gaps in the source's frame counter (drops), frames whose pixels do not match their counter
(corrupt), and msgs/s over the samples kept after a warm-up.

It lives in ``launch`` rather than beside the transport in ``stream``: the igtflow side is a graph
started by the launcher, and ``stream`` imports no other layer. This module runs the cases and
keeps the public names; the parts live beside it: ``transport_cases`` (cases, the shared
:class:`Tally`), ``transport_igtflow`` and ``transport_raw`` (the two sides), ``transport_report``
(comparison, targets, table and Markdown).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import msgpack
import zmq

import igtflow.machine
from igtflow.launch.bench.transport_cases import (
    HOPS,
    PACED_HZ,
    PATTERN_MOD,
    PAYLOADS,
    POLL_MAX_MS,
    QUICK_S,
    SHM_TARGET_MIN_BYTES,
    STARTUP_ALLOWANCE_S,
    SUBSCRIBE_SETTLE_S,
    TAIL_S,
    THROUGHPUT_TARGET_MIN_BYTES,
    WARMUP_S,
    BenchError,
    Case,
    Tally,
    bench_cases,
    side_stats,
)
from igtflow.launch.bench.transport_igtflow import BenchSink, BenchSource, run_igtflow_case
from igtflow.launch.bench.transport_raw import run_raw_case
from igtflow.launch.bench.transport_report import (
    compare,
    markdown_table,
    print_table,
    progress_line,
)
from igtflow.stream.rehearsal import ENV_SWITCH

__all__ = [
    "HOPS",
    "PACED_HZ",
    "PATTERN_MOD",
    "PAYLOADS",
    "POLL_MAX_MS",
    "QUICK_S",
    "SHM_TARGET_MIN_BYTES",
    "STARTUP_ALLOWANCE_S",
    "SUBSCRIBE_SETTLE_S",
    "TAIL_S",
    "THROUGHPUT_TARGET_MIN_BYTES",
    "WARMUP_S",
    "BenchError",
    "BenchSink",
    "BenchSource",
    "Case",
    "Tally",
    "bench_cases",
    "compare",
    "machine_info",
    "markdown_table",
    "print_table",
    "run_igtflow_case",
    "run_raw_case",
    "run_transport_bench",
    "side_stats",
]


def machine_info() -> dict[str, Any]:
    """The shared machine description and calibration, plus the ZeroMQ and msgpack versions."""
    return {
        **igtflow.machine.machine_info(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "msgpack": ".".join(map(str, msgpack.version)),
    }


def _runs(cases: list[Case]) -> Iterator[tuple[Case, str]]:
    for case in cases:
        yield case, "igtflow"
        yield case, "raw"


def run_transport_bench(
    duration_s: float = 10.0,
    saturated_s: float = 5.0,
    quick: bool = False,
    progress: Any = None,
    rehearsal: bool = True,
) -> dict[str, Any]:
    """Run every case on both sides, one at a time; the JSON report (machine + cases).

    ``rehearsal`` False runs the igtflow nodes without rehearsals (``stream/rehearsal.py``).
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = progress or Console(stderr=True)
    if quick:
        duration_s, saturated_s = min(duration_s, QUICK_S), min(saturated_s, QUICK_S)
    cases = bench_cases(duration_s, saturated_s, quick)
    report: dict[str, Any] = {
        "benchmark": "transport",
        "machine": machine_info(),
        "settings": {
            "duration_s": duration_s,
            "saturated_s": saturated_s,
            "warmup_s": WARMUP_S,
            "quick": quick,
            "rehearsal": rehearsal,
            "transport": "ipc:// on this host; igtflow: shared memory ≥ 64 KiB, policy latest",
        },
        "cases": [],
    }
    sides: dict[str, dict[str, Any]] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
    )
    switch = {ENV_SWITCH: "1" if rehearsal else "0"}  # node processes inherit it
    with (
        _environment(switch),
        Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar,
    ):
        task = bar.add_task("transport", total=2 * len(cases))
        for case, side in _runs(cases):
            bar.update(task, description=f"{side:>7} · {case.label}")
            tally = run_igtflow_case(case, console) if side == "igtflow" else run_raw_case(case)
            sides[side] = side_stats(tally)
            bar.advance(task)
            if side == "raw":
                row = compare(case, sides["igtflow"], sides["raw"])
                report["cases"].append(row)
                console.print(progress_line(row), highlight=False)
    if hasattr(os, "getloadavg"):  # other work on the box skews p99: say so in the report
        report["machine"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return report


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration (node processes inherit them)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
