"""Per-node counters and latency windows, summarised into each heartbeat to the supervisor."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WINDOW = 2048


@dataclass
class InputStats:
    """What one input saw: counts, losses by cause, and age since capture."""

    received: int = 0
    skipped: int = 0  # dropped on purpose by the `latest` policy
    lost: int = 0  # sequence gaps not explained by skipping: queue overflow, restarts upstream
    overwritten: int = 0  # shared-memory frame reused before it could be held
    malformed: int = 0
    last_seq: int | None = None
    ages_ms: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))

    def account(self, seq: int, accounted: int) -> int:
        """Record delivery of ``seq``; returns the messages lost before it for no known reason.

        ``accounted`` is how many were taken off the socket but not delivered (skipped,
        overwritten, malformed) since the previous delivery; only the rest of a gap is lost.
        """
        self.received += 1
        lost = 0
        if self.last_seq is not None and seq > self.last_seq + 1:
            lost = max(0, seq - self.last_seq - 1 - accounted)
        self.lost += lost
        self.last_seq = seq
        return lost

    @property
    def drops(self) -> int:
        return self.skipped + self.lost + self.overwritten + self.malformed


@dataclass
class NodeStats:
    """Everything the status table shows for a node, kept by its runtime."""

    inputs: dict[str, InputStats] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    handler_ms: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    ages_ms: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    late_ticks: int = 0
    inline_fallbacks: int = 0
    loop_ns: int | None = None  # when the loop last turned; None while setup still runs
    started: float = field(default_factory=time.monotonic)
    cpu_s: float = field(default_factory=time.process_time)

    def snapshot(self) -> dict[str, Any]:
        """A small msgpack-able summary for the heartbeat."""
        ages = np.fromiter(self.ages_ms, dtype=np.float64)
        handler = np.fromiter(self.handler_ms, dtype=np.float64)
        return {
            "received": sum(s.received for s in self.inputs.values()),
            "sent": sum(self.sent.values()),
            "drops": sum(s.drops for s in self.inputs.values()),
            "lost": sum(s.lost + s.overwritten for s in self.inputs.values()),
            "malformed": sum(s.malformed for s in self.inputs.values()),
            "age_p50_ms": float(np.percentile(ages, 50)) if ages.size else None,
            "age_p99_ms": float(np.percentile(ages, 99)) if ages.size else None,
            "handler_p99_ms": float(np.percentile(handler, 99)) if handler.size else None,
            "late_ticks": self.late_ticks,
            "inline_fallbacks": self.inline_fallbacks,
            "cpu_s": time.process_time() - self.cpu_s,
            # A long setup is not a hung loop: it is timed by the supervisor's ready timeout.
            "loop_age_ms": None
            if self.loop_ns is None
            else (time.monotonic_ns() - self.loop_ns) / 1e6,
            "inputs": {
                name: {
                    "received": s.received,
                    "skipped": s.skipped,
                    "lost": s.lost,
                    "overwritten": s.overwritten,
                    "malformed": s.malformed,
                }
                for name, s in self.inputs.items()
            },
        }
