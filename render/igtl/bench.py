"""``igtflow bench igtl``: the igtl-server node's send path against pyigtl's server, on loopback.

A separate receiver process (raw socket, our CRC-checking parser) records when each whole message
arrived; latency is that time minus the header timestamp, which the sender sets to the time it
handed the message over (so it covers conversion, copy, packing, CRC, queueing, the socket and the
receiver's parse and CRC check). Each case is paced at its target rate; the stalled-client case
publishes 512×512 frames as fast as it can, with and without a client that connects and never reads.
The baseline is pyigtl 0.3.4's ``OpenIGTLinkServer`` sending the same messages with ``wait=True``.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from igtflow.machine import describe, machine_info
from igtflow.ports import free_port
from igtflow.render.igtl.reader import Parser

CASES = {
    "transform": {"rate_hz": 1000.0},
    "transform_5k": {"rate_hz": 5000.0},  # headroom: five times the 1000 Hz target
    "image512": {"rate_hz": 60.0, "shape": (512, 512), "dtype": np.uint8},
    "image1024": {"rate_hz": 30.0, "shape": (1024, 1024), "dtype": np.uint16},
}
TARGETS = {
    "transform_hz": 1000,
    "transform_p99_ms": 2.0,
    "image512_hz": 60,
    "image512_p99_ms": 5.0,
    "image1024_hz": 30,
}
LOG = logging.getLogger("igtflow.bench.igtl")


# -- receiver process ---------------------------------------------------------------------------


def receive(
    port: int, idle_s: float = 3.0, limit_s: float = 120.0, connect_s: float = 10.0
) -> dict[str, Any]:
    """Read messages until the sender closes (or goes quiet); per message its latency in ms,
    its device name and when it arrived (``igtflow bench e2e`` splits them by device)."""
    deadline = time.monotonic() + connect_s
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=idle_s)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    parser = Parser()
    latencies: list[float] = []
    devices: list[str] = []
    arrivals: list[int] = []
    first = last = 0
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            n = sock.recv_into(parser.buffer())
        except TimeoutError:
            break
        if n == 0:
            break
        packet = parser.advance(n)
        if packet is None:
            continue
        now = time.time_ns()
        first = first or now
        last = now
        latencies.append((now - packet.header.stamp_ns) / 1e6)
        devices.append(packet.header.device)
        arrivals.append(now)
    sock.close()
    return {
        "count": len(latencies),
        "first_ns": first,
        "last_ns": last,
        "latency_ms": latencies,
        "device": devices,
        "arrival_ns": arrivals,
    }


class Receiver:
    """The receiving side in its own process (``python -m igtflow.render.igtl.bench PORT``)."""

    def __init__(self, port: int, idle_s: float = 3.0, limit_s: float = 120.0) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "igtflow.render.igtl.bench",
                str(port),
                str(idle_s),
                str(limit_s),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )

    def result(self, timeout_s: float = 60) -> dict[str, Any]:
        out, _ = self.process.communicate(timeout=timeout_s)
        return json.loads(out)


# -- senders ------------------------------------------------------------------------------------


def _paced(rate_hz: float, duration_s: float, send: Callable[[], None]) -> tuple[int, float]:
    """Call ``send`` ``rate_hz`` times a second (0 = back to back) for ``duration_s``;
    (calls, seconds taken)."""
    period = 1.0 / rate_hz if rate_hz > 0 else 0.0
    start = time.perf_counter()
    next_at = start
    count = 0
    while time.perf_counter() - start < duration_s:  # a sender that cannot keep up just ends
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send()
        count += 1
        next_at += period
    return count, time.perf_counter() - start


def _frame(case: dict[str, Any]) -> np.ndarray:
    h, w = case["shape"]
    return (np.arange(h * w) % 251).astype(case["dtype"]).reshape(h, w)


def _wait(condition: Callable[[], Any], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench igtl: timed out waiting for {what}")
        time.sleep(0.01)


def _ours(case_name: str, duration_s: float) -> dict[str, Any]:
    """The igtl-server node's code path (on_message) to one receiver process."""
    from igtflow.render.nodes.igtl_server import IgtlServerNode
    from igtflow.stream.messages import Image, Transform

    case = CASES[case_name]
    node = IgtlServerNode()
    node.log = LOG
    node.setup(port=free_port())
    server = node.transport
    receiver = Receiver(server.port)  # type: ignore[attr-defined]
    try:
        _wait(lambda: server.peers, 10, "the receiver to connect")  # type: ignore[attr-defined]
        if case_name.startswith("transform"):
            matrix = np.eye(4)

            def send() -> None:
                node.on_message("ProbeToTracker", Transform(matrix=matrix))
        else:
            frame = _frame(case)

            def send() -> None:
                node.on_message("Image", Image(data=frame))

        sent, seconds = _paced(case["rate_hz"], duration_s, send)
        time.sleep(0.2)
    finally:
        node.teardown()
    return {"sent": sent, "send_s": seconds, **receiver.result()}


def _pyigtl(case_name: str, duration_s: float) -> dict[str, Any]:
    """pyigtl's OpenIGTLinkServer sending the same messages with wait=True."""
    import pyigtl

    case = CASES[case_name]
    port = free_port()
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = pyigtl.OpenIGTLinkServer(port=port, local_server=True)
    receiver = Receiver(port)
    try:
        _wait(server.is_connected, 10, "the receiver to connect to pyigtl")
        if case_name.startswith("transform"):
            matrix = np.eye(4)

            def send() -> None:
                message = pyigtl.TransformMessage(matrix, device_name="ProbeToTracker")
                server.send_message(message, wait=True)
        else:
            volume = _frame(case)[None]

            def send() -> None:
                message = pyigtl.ImageMessage(volume, device_name="Image")
                server.send_message(message, wait=True)

        sent, seconds = _paced(case["rate_hz"], duration_s, send)
        time.sleep(0.2)
    finally:
        server.stop()
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    return {"sent": sent, "send_s": seconds, **receiver.result()}


def _publish_rate(duration_s: float, stalled: bool) -> dict[str, Any]:
    """512×512 frames published as fast as possible to two clients: a reader, and a second
    reader or a client that connects and never reads (same client count, so only the stall
    differs)."""
    from igtflow.render.nodes.igtl_server import IgtlServerNode
    from igtflow.stream.messages import Image

    node = IgtlServerNode()
    node.log = LOG
    node.setup(port=free_port())
    server = node.transport
    port = server.port  # type: ignore[attr-defined]
    blocker = None
    receivers = [Receiver(port)]
    if stalled:
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        blocker.connect(("127.0.0.1", port))  # and never reads
    else:
        receivers.append(Receiver(port))
    try:
        _wait(lambda: len(server.peers) >= 2, 10, "the clients to connect")  # type: ignore[attr-defined]
        frame = _frame(CASES["image512"])
        count = 0
        start = time.perf_counter()
        while time.perf_counter() - start < duration_s:
            node.on_message("Image", Image(data=frame))
            count += 1
        seconds = time.perf_counter() - start
        time.sleep(0.2)
    finally:
        node.teardown()
        if blocker is not None:
            blocker.close()
    received = receivers[0].result()
    for extra in receivers[1:]:
        extra.result()
    return {"published_hz": count / seconds, "received": received["count"]}


# -- report -------------------------------------------------------------------------------------


def _summary(result: dict[str, Any]) -> dict[str, float]:
    latencies = np.asarray(result["latency_ms"], dtype=float)
    span_s = (result["last_ns"] - result["first_ns"]) / 1e9
    rate = (result["count"] - 1) / span_s if result["count"] > 1 and span_s > 0 else 0.0
    if latencies.size == 0:
        return {"hz": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    return {
        "hz": rate,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "max_ms": float(latencies.max()),
        "received": int(result["count"]),
        "sent": int(result["sent"]),
    }


def run_igtl_bench(quick: bool = False, progress: Console | None = None) -> dict[str, Any]:
    """Every case for igtflow and pyigtl, plus the stalled-client ratio; the JSON report."""
    duration = 0.5 if quick else 6.0
    baseline_duration = 0.5 if quick else 3.0
    stall_duration = 0.5 if quick else 3.0
    report: dict[str, Any] = {
        "machine": machine_info(),
        "quick": quick,
        "cases": {},
    }
    steps = [(name, "igtflow") for name in CASES] + [(name, "pyigtl") for name in CASES]
    with Progress(console=progress, transient=True, disable=progress is None) as bar:
        task = bar.add_task("bench igtl", total=len(steps) + 2)
        for name, side in steps:
            bar.update(task, description=f"{side} {name}")
            run = _ours if side == "igtflow" else _pyigtl
            result = run(name, duration if side == "igtflow" else baseline_duration)
            report["cases"].setdefault(name, {})[side] = _summary(result)
            bar.advance(task)
        bar.update(task, description="publish rate, no stalled client")
        none = _publish_rate(stall_duration, stalled=False)
        bar.advance(task)
        bar.update(task, description="publish rate, one stalled client")
        stalled = _publish_rate(stall_duration, stalled=True)
        bar.advance(task)
    cases = report["cases"]
    for name in CASES:
        ours, base = cases[name]["igtflow"], cases[name]["pyigtl"]
        report[f"{name}_hz"] = ours["hz"]
        report[f"{name}_p99_ms"] = ours["p99_ms"]
        report[f"baseline_{name}_hz"] = base["hz"]
        report[f"baseline_{name}_p99_ms"] = base["p99_ms"]
        report[f"{name}_rate_ratio"] = ours["hz"] / base["hz"] if base["hz"] else float("inf")
    report["publish_hz_no_stall"] = none["published_hz"]
    report["publish_hz_stalled"] = stalled["published_hz"]
    report["stalled_client_slowdown"] = none["published_hz"] / stalled["published_hz"]
    report["targets"] = TARGETS
    report["meets_targets"] = {
        key: (report[key] <= target if key.endswith("_ms") else report[key] >= target * 0.97)
        for key, target in TARGETS.items()
    }
    return report


def print_table(report: dict[str, Any], console: Console) -> None:
    table = Table(title="OpenIGTLink send → receive on loopback (igtflow vs pyigtl)")
    for column in ("case", "target", "side", "rate Hz", "p50 ms", "p99 ms", "max ms", "rate ratio"):
        table.add_column(column, justify="right" if column not in ("case", "side") else "left")
    for name, sides in report["cases"].items():
        target = f"{CASES[name]['rate_hz']:.0f} Hz"
        for side, row in sides.items():
            ratio = f"{report[f'{name}_rate_ratio']:.1f}x" if side == "igtflow" else ""
            table.add_row(
                name,
                target if side == "igtflow" else "",
                side,
                f"{row['hz']:.1f}",
                f"{row['p50_ms']:.2f}",
                f"{row['p99_ms']:.2f}",
                f"{row['max_ms']:.2f}",
                ratio,
            )
    console.print(table)
    console.print(
        f"512×512 publish rate to two clients: {report['publish_hz_no_stall']:.0f}/s when both "
        f"read, {report['publish_hz_stalled']:.0f}/s when one is stalled; "
        f"stalled_client_slowdown = {report['stalled_client_slowdown']:.2f}"
    )
    console.print(describe(report["machine"]), highlight=False)


if __name__ == "__main__":
    port, idle, limit = int(sys.argv[1]), *(float(a) for a in sys.argv[2:4])
    sys.stdout.write(json.dumps(receive(port, idle, limit)))
