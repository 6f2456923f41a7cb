"""The raw pyzmq side of ``igtflow bench transport``: the same chain, no framework.

What a careful pyzmq user writes: PUB/SUB with default HWMs, ``[topic][msgpack header][buffer]``,
the buffer sent with ``copy=False``, relays forwarding the received frames; the sink counts with
the same :class:`~igtflow.launch.bench.transport_cases.Tally` as the igtflow sink.
"""

from __future__ import annotations

import json
import multiprocessing
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq

from igtflow.launch.bench.transport_cases import (
    PATTERN_MOD,
    POLL_MAX_MS,
    SUBSCRIBE_SETTLE_S,
    TAIL_S,
    WARMUP_S,
    BenchError,
    Case,
    Tally,
)


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
