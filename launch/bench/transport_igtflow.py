"""The igtflow side of ``igtflow bench transport``: source and sink nodes run as a real graph.

A YAML graph of :class:`BenchSource`, the built-in ``passthrough`` relays and :class:`BenchSink`
goes through ``parse_graph`` → ``run_graph``; large frames go through shared memory.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from igtflow.launch.bench.transport_cases import (
    PATTERN_MOD,
    STARTUP_ALLOWANCE_S,
    TAIL_S,
    WARMUP_S,
    BenchError,
    Case,
    Tally,
)
from igtflow.stream.messages import Image
from igtflow.stream.node import Node, Source

_DTYPES = {"uint8": np.uint8, "uint16": np.uint16}


class BenchSource(Source):
    """Benchmark source: renders a frame straight into shared memory and emits it, nothing else."""

    outputs = {"image": Image}

    def setup(
        self, width: int = 256, height: int = 256, dtype: str = "uint8", stop_after_s: float = 0.0
    ) -> None:
        """
        width: frame width in pixels
        height: frame height in pixels
        dtype: pixel type, uint8 or uint16
        stop_after_s: stop emitting this many seconds after the first tick (0 = never)
        """
        if dtype not in _DTYPES:
            raise ValueError(f"dtype {dtype!r} is not one of {sorted(_DTYPES)}")
        self.shape = (height, width)
        self.pixel_type = np.dtype(_DTYPES[dtype])
        self.count = 0
        self.started: float | None = None

    def tick(self) -> None:
        now = time.monotonic()
        self.started = now if self.started is None else self.started
        if self.stop_after_s and now - self.started >= self.stop_after_s:
            time.sleep(0.01)  # window over: idle until the launcher stops the graph
            return
        frame = self.new_frame("image", self.shape, self.pixel_type)
        frame[0, :8] = self.count % PATTERN_MOD  # a cheap mark, not a render: measure transport
        # stamp_ns is taken here, right before emit, so latency is transport only
        self.emit("image", Image(data=frame, frame="Image", meta={"n": self.count}))
        self.count += 1


class BenchSink(Node):
    """Benchmark sink: per-hop latency from the trace, gaps, one pixel read; JSON on stop."""

    inputs = {"image": Image}

    def setup(self, report: str = "", hops: int = 1, warmup_s: float = WARMUP_S) -> None:
        """
        report: path of the JSON tally written on stop
        hops: number of edges between the source and this sink
        warmup_s: seconds of samples discarded after the first frame
        """
        self.tally = Tally(hops=hops, warmup_s=warmup_s)

    def on_image(self, image: Image) -> None:
        t_recv = time.time_ns()
        self.tally.add(t_recv, image.trace[0][2], image.meta.get("n", -1), int(image.data[0, 0]))

    def teardown(self) -> None:
        if self.report:
            Path(self.report).write_text(json.dumps(self.tally.to_json()))


def _graph_yaml(case: Case, report: Path) -> str:
    q = json.dumps  # JSON scalars are valid YAML flow scalars
    lines = [
        "name: bench-transport",
        "nodes:",
        "  - id: source",
        f"    uses: {__name__}:BenchSource",
        f"    params: {{rate_hz: {case.rate_hz}, width: {case.width}, height: {case.height}, "
        f"dtype: {q(case.dtype)}, stop_after_s: {WARMUP_S + case.seconds}}}",
    ]
    upstream = "source/image"
    for i in range(1, case.hops):
        lines += [f"  - id: relay{i}", "    uses: passthrough", f"    inputs: {{in: {upstream}}}"]
        upstream = f"relay{i}/out"
    lines += [
        "  - id: sink",
        f"    uses: {__name__}:BenchSink",
        f"    inputs: {{image: {upstream}}}",
        f"    params: {{report: {q(str(report))}, hops: {case.hops}, warmup_s: {WARMUP_S}}}",
    ]
    return "\n".join(lines) + "\n"


def run_igtflow_case(case: Case, console: Any = None) -> dict[str, Any]:
    """Run ``case`` as an igtflow graph; the sink's tally JSON plus ``node_drops``.

    ``node_drops`` is each consumer's own count (skipped, lost, overwritten, malformed) from the
    supervisor: where in the chain the sink's gaps were made.
    """
    from igtflow.launch.graph_reader import parse_graph
    from igtflow.launch.launcher import run_graph

    tmp = Path(tempfile.mkdtemp(prefix="igtflow-bench-"))
    report = tmp / "sink.json"
    graph = parse_graph(_graph_yaml(case, report), path="<bench transport>")
    seconds = STARTUP_ALLOWANCE_S + WARMUP_S + case.seconds + TAIL_S
    result = run_graph(graph, log_dir=tmp / "logs", duration_s=seconds, console=console, live=False)
    if result.exit_code != 0 or not report.is_file():
        raise BenchError(
            f"igtflow run of {case.label} failed (exit code {result.exit_code}, "
            f"events: {result.events or 'none'}); node logs are in {tmp / 'logs'}"
        )
    tally = json.loads(report.read_text())
    tally["node_drops"] = {row["node"]: row["drops"] for row in result.rows if row["received"]}
    shutil.rmtree(tmp, ignore_errors=True)
    return tally
