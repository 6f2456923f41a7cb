"""The measurement both sides of ``igtflow bench transport`` share: cases, the sink's tally, stats.

Kept apart from either side so the igtflow sink and the raw pyzmq sink count frames, gaps, corrupt
pixels and per-hop latency with exactly the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
