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
started by the launcher, and ``stream`` imports no other layer.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq

import igtflow.machine
from igtflow.stream.messages import Image
from igtflow.stream.node import Node, Source
from igtflow.stream.rehearsal import ENV_SWITCH

WARMUP_S = 0.5
QUICK_S = 2.0
# run_graph's clock includes process start-up (~1 s for 4 nodes on 2 cores); the source's window
# starts at its first tick, so the graph runs this much longer than the window.
STARTUP_ALLOWANCE_S = 1.5
TAIL_S = 0.3
SUBSCRIBE_SETTLE_S = 0.5
POLL_MAX_MS = 50
PATTERN_MOD = 251  # fits uint8; frame[0, :8] = counter % PATTERN_MOD lets sinks spot corruption

# (label, height, width, dtype)
PAYLOADS = (
    ("256x256 uint8", 256, 256, "uint8"),
    ("512x512 uint16", 512, 512, "uint16"),
    ("1024x1024 uint16", 1024, 1024, "uint16"),
)
HOPS = (1, 3)
PACED_HZ = (30.0, 60.0)
SHM_TARGET_MIN_BYTES = 512 * 1024
THROUGHPUT_TARGET_MIN_BYTES = 2 * 1024 * 1024


class BenchError(RuntimeError):
    """A benchmark run that produced no measurement (a node failed, a sink wrote nothing)."""


# --- measurement shared by both sinks --------------------------------------------------------


@dataclass
class Tally:
    """What a sink saw: per-hop latencies after the warm-up, gaps, corrupt frames."""

    hops: int
    warmup_s: float = WARMUP_S
    latency_ms: list[float] = field(default_factory=list)
    received: int = 0
    gaps: int = 0
    corrupt: int = 0
    last_n: int = -1
    first_n: int | None = None
    first_ns: int | None = None
    window_first_ns: int | None = None
    window_last_ns: int | None = None

    def add(self, t_recv_ns: int, t_sent_ns: int, n: int, pixel: int) -> None:
        """One frame ``n`` received at ``t_recv_ns`` that the source sent at ``t_sent_ns``."""
        self.received += 1
        self.first_n = n if self.first_n is None else self.first_n
        if n > self.last_n + 1:
            self.gaps += n - self.last_n - 1  # counter starts at 0: a late first frame is a drop
        self.last_n = max(self.last_n, n)
        if pixel != n % PATTERN_MOD:
            self.corrupt += 1
        if self.first_ns is None:
            self.first_ns = t_recv_ns
        if t_recv_ns - self.first_ns < self.warmup_s * 1e9:
            return
        if self.window_first_ns is None:
            self.window_first_ns = t_recv_ns
        self.window_last_ns = t_recv_ns
        self.latency_ms.append((t_recv_ns - t_sent_ns) / 1e6 / self.hops)

    def to_json(self) -> dict[str, Any]:
        return {
            "hops": self.hops,
            "received": self.received,
            "gaps": self.gaps,
            "corrupt": self.corrupt,
            "first_n": self.first_n,
            "window_first_ns": self.window_first_ns,
            "window_last_ns": self.window_last_ns,
            "latency_ms": self.latency_ms,
        }


def side_stats(tally: dict[str, Any]) -> dict[str, Any]:
    """p50/p99/max per-hop latency, msgs/s over the window, drops, from a sink's tally JSON."""
    latency = np.asarray(tally["latency_ms"], dtype=np.float64)
    first, last = tally["window_first_ns"], tally["window_last_ns"]
    window_s = (last - first) / 1e9 if first is not None and last is not None else 0.0
    kept = int(latency.size)

    def pct(q: float) -> float | None:
        return round(float(np.percentile(latency, q)), 4) if kept else None

    return {
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": round(float(latency.max()), 4) if kept else None,
        # intervals over the window: n frames span n - 1 periods
        "msgs_per_s": round((kept - 1) / window_s, 1) if window_s > 0 else 0.0,
        "drops": int(tally["gaps"]),
        "lost_at_start": int(tally.get("first_n") or 0),  # part of drops: before the first frame
        "corrupt": int(tally["corrupt"]),
        "received": int(tally["received"]),
        "samples": kept,
        "window_s": round(window_s, 3),
        **({"node_drops": tally["node_drops"]} if "node_drops" in tally else {}),
    }


# --- igtflow side: two nodes, run as a real graph --------------------------------------------

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


# --- cases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One chain, payload and rate; ``rate_hz`` 0 means as fast as possible."""

    payload: str
    height: int
    width: int
    dtype: str
    hops: int
    rate_hz: float
    seconds: float

    @property
    def payload_bytes(self) -> int:
        return self.height * self.width * np.dtype(self.dtype).itemsize

    @property
    def label(self) -> str:
        rate = f"{self.rate_hz:g} Hz" if self.rate_hz else "saturated"
        return f"{self.payload}, {self.hops} hop{'s' if self.hops > 1 else ''}, {rate}"


def bench_cases(duration_s: float, saturated_s: float, quick: bool) -> list[Case]:
    """Every case the benchmark runs, in order; ``quick`` keeps a smoke test's worth."""
    payloads, hops, rates = PAYLOADS, HOPS, (*PACED_HZ, 0.0)
    if quick:
        payloads, hops, rates = (PAYLOADS[0], PAYLOADS[2]), (1,), (60.0, 0.0)
    return [
        Case(label, h, w, dtype, n_hops, rate, duration_s if rate else saturated_s)
        for label, h, w, dtype in payloads
        for n_hops in hops
        for rate in rates
    ]


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


# --- raw pyzmq side: the same chain, no framework --------------------------------------------


def _raw_source(
    endpoint: str, case: Case, seconds: float, ready: Any, go: Any
) -> None:  # pragma: no cover - runs in a child process
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)
    poller = zmq.Poller()
    poller.register(pub, zmq.POLLIN)
    shape, dtype = (case.height, case.width), np.dtype(case.dtype)
    topic = b"source/image"
    ready.set()
    go.wait()
    period = 1.0 / case.rate_hz if case.rate_hz else 0.0
    next_tick = time.monotonic()
    end = next_tick + seconds
    n = 0
    while time.monotonic() < end:
        if period:
            # igtflow's pacing: poll up to the next tick (whole ms, like zmq), then spin
            poller.poll(max(0.0, min(POLL_MAX_MS, (next_tick - time.monotonic()) * 1e3)))
            if time.monotonic() < next_tick:
                continue
        frame = np.empty(shape, dtype)  # a fresh frame each time: zero-copy send keeps it alive
        frame[0, :8] = n % PATTERN_MOD
        t = time.time_ns()
        header = {"seq": n, "stamp_ns": t, "dtype": dtype.str, "shape": list(shape)}
        header["trace"] = [["source", t, t]]
        pub.send(topic, zmq.SNDMORE)
        pub.send(msgpack.packb(header), zmq.SNDMORE)
        pub.send(frame, copy=False)
        n += 1
        if period:
            next_tick += period
            if time.monotonic() - next_tick > period:
                next_tick = time.monotonic() + period
    pub.close()
    ctx.term()


def _raw_subscriber(ctx: zmq.Context, upstream: str) -> zmq.Socket:
    """A plain SUB socket on ``upstream``, as any pyzmq user would open it."""
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(upstream)
    return sub


def _raw_received(sub: zmq.Socket, stop: Any) -> Iterator[list[zmq.Frame]]:
    """Every multipart message ``sub`` receives until ``stop`` is set, as it arrives."""
    while not stop.is_set():
        if not sub.poll(100):
            continue
        while True:
            try:
                yield sub.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break


def _raw_relay(
    name: str, upstream: str, endpoint: str, ready: Any, stop: Any
) -> None:  # pragma: no cover - runs in a child process
    ctx = zmq.Context()
    sub = _raw_subscriber(ctx, upstream)
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)
    ready.set()
    for topic, head, buffer in _raw_received(sub, stop):
        t_in = time.time_ns()
        header = msgpack.unpackb(head.buffer)
        header["trace"].append([name, t_in, time.time_ns()])
        pub.send(topic, zmq.SNDMORE)
        pub.send(msgpack.packb(header), zmq.SNDMORE)
        pub.send(buffer, copy=False)  # a received frame: forwarded by reference
    sub.close()
    pub.close()
    ctx.term()


def _raw_sink(
    upstream: str, hops: int, report: str, ready: Any, stop: Any
) -> None:  # pragma: no cover - runs in a child process
    ctx = zmq.Context()
    sub = _raw_subscriber(ctx, upstream)
    tally = Tally(hops=hops)
    ready.set()
    for _, head, buffer in _raw_received(sub, stop):
        header = msgpack.unpackb(head.buffer)
        data = np.frombuffer(buffer.buffer, dtype=header["dtype"]).reshape(header["shape"])
        t_recv = time.time_ns()  # the frame is usable here: igtflow's handler entry
        tally.add(t_recv, header["trace"][0][2], header["seq"], int(data[0, 0]))
    sub.close()
    ctx.term()
    Path(report).write_text(json.dumps(tally.to_json()))


def run_raw_case(case: Case) -> dict[str, Any]:
    """Run ``case`` as plain pyzmq processes; the sink's tally JSON.

    The processes are started with ``spawn``: a script calling this needs the usual
    ``if __name__ == "__main__":`` guard.
    """
    mp = multiprocessing.get_context("spawn")
    go, stop = mp.Event(), mp.Event()
    with tempfile.TemporaryDirectory(prefix="igtflow-raw-") as tmp:
        endpoints = [f"ipc://{tmp}/hop{i}.sock" for i in range(case.hops)]
        report = Path(tmp) / "sink.json"
        readies = [mp.Event() for _ in range(case.hops + 1)]
        source = mp.Process(
            target=_raw_source,
            args=(endpoints[0], case, WARMUP_S + case.seconds, readies[0], go),
            daemon=True,
        )
        others = [
            mp.Process(
                target=_raw_relay,
                args=(f"relay{i}", endpoints[i - 1], endpoints[i], readies[i], stop),
                daemon=True,
            )
            for i in range(1, case.hops)
        ]
        others.append(
            mp.Process(
                target=_raw_sink,
                args=(endpoints[-1], case.hops, str(report), readies[-1], stop),
                daemon=True,
            )
        )
        processes = [*others, source]
        try:
            for process in processes:
                process.start()
            deadline = time.monotonic() + 30.0
            for ready in readies:
                if not ready.wait(max(0.0, deadline - time.monotonic())):
                    raise BenchError(f"raw run of {case.label}: a process did not start in 30 s")
            time.sleep(SUBSCRIBE_SETTLE_S)  # let subscriptions reach every PUB: no slow joiners
            go.set()
            source.join(WARMUP_S + case.seconds + 30.0)
            time.sleep(TAIL_S)  # frames still in flight
        finally:
            stop.set()
            for process in processes:
                process.join(5.0)
                if process.is_alive():
                    process.kill()
                    process.join()
        if not report.is_file():
            codes = [p.exitcode for p in processes]
            raise BenchError(f"raw run of {case.label} wrote no report (exit codes {codes})")
        return json.loads(report.read_text())


# --- the report ------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _target(
    case: Case,
    igt: dict[str, Any],
    raw: dict[str, Any],
    ratio_p99: float | None,
    ratio_rate: float | None,
) -> tuple[str, bool | None]:
    """(rule, met) for ``case``; met is None where the issue sets no target."""
    if not case.rate_hz:
        if case.payload_bytes >= THROUGHPUT_TARGET_MIN_BYTES:
            return "msgs/s ≥ 1.5×", ratio_rate is not None and ratio_rate >= 1.5
        return "—", None
    clean = igt["drops"] == 0 and igt["corrupt"] == 0 and ratio_p99 is not None
    if case.payload_bytes >= SHM_TARGET_MIN_BYTES:
        return "p99 ≤ 0.6×, 0 drops", clean and ratio_p99 <= 0.6
    near = clean and (ratio_p99 <= 1.1 or igt["p99_ms"] <= raw["p99_ms"] + 0.2)
    return "p99 ≤ 1.1× or +0.2 ms, 0 drops", near


def compare(case: Case, igt: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """One case of the JSON report from both sides' stats."""
    ratio_p99 = _ratio(igt["p99_ms"], raw["p99_ms"])
    ratio_rate = _ratio(igt["msgs_per_s"], raw["msgs_per_s"])
    rule, met = _target(case, igt, raw, ratio_p99, ratio_rate)
    return {
        "payload": case.payload,
        "payload_bytes": case.payload_bytes,
        "shape": [case.height, case.width],
        "dtype": case.dtype,
        "hops": case.hops,
        "rate_hz": case.rate_hz,
        "seconds": case.seconds,
        "igtflow": igt,
        "raw": raw,
        "ratio_p99": ratio_p99,
        "ratio_msgs_per_s": ratio_rate,
        "target": rule,
        "target_met": met,
    }


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
                console.print(_progress_line(row), highlight=False)
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


# --- printing --------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _three(side: dict[str, Any]) -> str:
    return "/".join(_ms(side[k]) for k in ("p50_ms", "p99_ms", "max_ms"))


def _x(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}×" if value >= 0.1 else f"{value:.3f}×"


def _verdict(row: dict[str, Any]) -> str:
    met = row["target_met"]
    return "—" if met is None else ("met" if met else "MISSED")


def _rate(row: dict[str, Any]) -> str:
    return f"{row['rate_hz']:g} Hz" if row["rate_hz"] else "max"


def _progress_line(row: dict[str, Any]) -> str:
    igt, raw = row["igtflow"], row["raw"]
    return (
        f"{row['payload']:>17} {row['hops']} hop {_rate(row):>6}: "
        f"igtflow p99 {_ms(igt['p99_ms'])} ms {igt['msgs_per_s']:.0f}/s drops {igt['drops']} · "
        f"raw p99 {_ms(raw['p99_ms'])} ms {raw['msgs_per_s']:.0f}/s drops {raw['drops']} · "
        f"p99 {_x(row['ratio_p99'])} · {_verdict(row)}"
    )


def print_table(report: dict[str, Any], console: Any) -> None:
    """The report as a rich table: per-hop latency, msgs/s, ratios and the target verdict."""
    from rich.table import Table

    from igtflow.launch.console import whole_width

    machine = report["machine"]
    table = Table(
        title="igtflow vs raw pyzmq · per-hop latency (ms) and throughput",
        title_justify="left",
        caption=(
            f"{machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}, "
            f"pyzmq {machine['pyzmq']} / libzmq {machine['libzmq']}, "
            f"load {machine.get('load_avg_1m', '?')} → {machine.get('load_avg_1m_end', '?')}, "
            f"{_rehearsal(report)}. Rate max = saturated.\n{igtflow.machine.describe(machine)}\n"
            "Targets: paced p99 ≤ 0.6× raw from 512 KiB, else ≤ 1.1× raw or raw + 0.2 ms, "
            "both with 0 drops; saturated 2 MiB msgs/s ≥ 1.5× raw."
        ),
        caption_justify="left",
    )
    for header in (
        "payload",
        "hops",
        "rate",
        "igtflow ms\np50/p99/max",
        "raw ms\np50/p99/max",
        "msgs/s\nigtflow",
        "msgs/s\nraw",
        "ratio\np99",
        "ratio\nmsgs/s",
        "drops\nigt/raw",
        "target",
    ):
        justify = "left" if header in ("payload", "target") else "right"
        table.add_column(header, justify=justify, no_wrap=True)
    for row in report["cases"]:
        igt, raw = row["igtflow"], row["raw"]
        verdict = _verdict(row)
        style = {"met": "green", "MISSED": "bold red"}.get(verdict, "dim")
        drops = f"{igt['drops']}/{raw['drops']}"
        if igt.get("corrupt"):
            drops += f" ({igt['corrupt']} corrupt)"
        table.add_row(
            row["payload"],
            str(row["hops"]),
            _rate(row),
            _three(igt),
            _three(raw),
            f"{igt['msgs_per_s']:.0f}",
            f"{raw['msgs_per_s']:.0f}",
            _x(row["ratio_p99"]),
            _x(row["ratio_msgs_per_s"]),
            drops,
            f"[{style}]{verdict}[/]",
        )
    whole_width(console).print(table)


def _rehearsal(report: dict[str, Any]) -> str:
    on = report.get("settings", {}).get("rehearsal", True)  # older reports: always on
    return "rehearsal on" if on else "rehearsal off"


def markdown_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table, for pasting into the README as it is."""
    machine = report["machine"]
    lines = [
        f"Measured on {machine['cpu_model']}, {machine['cores']} cores, Python "
        f"{machine['python']}, pyzmq {machine['pyzmq']} / libzmq {machine['libzmq']}, "
        f"{_rehearsal(report)}; per-hop latency in ms (p50 / p99 / max); rate max = saturated.",
        "",
        igtflow.machine.describe(machine) + ".",
        "",
        "| payload | hops | rate | igtflow ms | raw pyzmq ms | msgs/s igtflow | msgs/s raw "
        "| p99 ratio | msgs/s ratio | drops igt/raw | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["cases"]:
        igt, raw = row["igtflow"], row["raw"]
        lines.append(
            f"| {row['payload']} | {row['hops']} | {_rate(row)} | {_three(igt)} | {_three(raw)} "
            f"| {igt['msgs_per_s']:.0f} | {raw['msgs_per_s']:.0f} | {_x(row['ratio_p99'])} "
            f"| {_x(row['ratio_msgs_per_s'])} | {igt['drops']}/{raw['drops']} | {_verdict(row)} |"
        )
    return "\n".join(lines) + "\n"
