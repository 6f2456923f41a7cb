"""What the browser view's status table and plots show, kept over the last minute.

The view sees the graph through what reaches it: each frame's trace names every node on its path
with the time it sent the frame on, so the table gives, per node, the rate of frames through it
and their latency since capture at its output (p50/p99), beside the sequence gaps (drops) of
each input and the last Status each node raised. Pure bookkeeping, no I/O: the node feeds it and
sends :meth:`LiveStats.snapshot` to the browsers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WINDOW_S = 60.0
RATE_WINDOW_S = 2.0  # a rate over the last two seconds follows a change within a status refresh


@dataclass
class _NodeRow:
    """One node's row: (receive time, latency since capture at its output) over the window."""

    samples: deque[tuple[int, float]] = field(default_factory=deque)
    level: str = ""
    code: str = ""
    text: str = ""


class LiveStats:
    """Rolling per-node latency and rate, per-input drops, latency and confidence series."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_ns = int(window_s * 1e9)
        self.rows: dict[str, _NodeRow] = {}
        self.last_seq: dict[str, int] = {}
        self.drops: dict[str, int] = {}
        self.latency: deque[tuple[int, float]] = deque()  # main view: (received, age ms)
        self.confidence: deque[tuple[int, float]] = deque()
        self.main_view = ""  # the first view that reached us: its age is the latency plot

    def frame(self, input_name: str, seq: int, stamp_ns: int, trace: list, now_ns: int) -> None:
        """A frame reached the view: count drops, record each hop's latency and the age."""
        last = self.last_seq.get(input_name)
        if last is not None and seq > last + 1:
            self.drops[input_name] = self.drops.get(input_name, 0) + seq - last - 1
        self.last_seq[input_name] = seq
        for hop in trace:
            if len(hop) >= 3 and isinstance(hop[0], str):
                row = self.rows.setdefault(hop[0], _NodeRow())
                row.samples.append((now_ns, (int(hop[2]) - stamp_ns) / 1e6))
        if not self.main_view:
            self.main_view = input_name
        if input_name == self.main_view:
            self.latency.append((now_ns, (now_ns - stamp_ns) / 1e6))

    def status(self, node: str, level: str, code: str, text: str) -> None:
        row = self.rows.setdefault(node, _NodeRow())
        row.level, row.code, row.text = level, code, text

    def confidence_value(self, value: float, now_ns: int) -> None:
        self.confidence.append((now_ns, value))

    def snapshot(self, now_ns: int) -> dict[str, Any]:
        """Table rows and plot series (times in server-clock ms) as the page draws them."""
        start = now_ns - self.window_ns
        rate_start = now_ns - int(RATE_WINDOW_S * 1e9)
        for series in (self.latency, self.confidence):
            while series and series[0][0] < start:
                series.popleft()
        table = []
        for node, row in self.rows.items():
            while row.samples and row.samples[0][0] < start:
                row.samples.popleft()
            latencies = [lat for _, lat in row.samples]
            recent = sum(1 for t, _ in row.samples if t >= rate_start)
            p50, p99 = np.percentile(latencies, [50, 99]) if latencies else (None, None)
            table.append(
                {
                    "node": node,
                    "rate_hz": round(recent / RATE_WINDOW_S, 1),
                    "p50_ms": _round(p50),
                    "p99_ms": _round(p99),
                    "level": row.level,
                    "code": row.code,
                    "text": row.text,
                }
            )
        return {
            "now_ms": now_ns / 1e6,
            "table": table,
            "drops": dict(self.drops),
            "latency": [[t / 1e6, round(v, 1)] for t, v in self.latency],
            "confidence": [[t / 1e6, round(v, 3)] for t, v in self.confidence],
        }


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)
