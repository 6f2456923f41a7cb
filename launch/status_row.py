"""One node as the supervisor tracks it, and the status row it becomes.

The row is the contract between the supervisor and whoever shows a run: the live table
(:mod:`igtflow.launch.status_table`), ``--json`` output and the benches read the same keys, so
the format lives here, apart from the process handling in :mod:`igtflow.launch.supervisor`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from igtflow.launch.graph import NodeSpec
from igtflow.stream.runtime import NodeConfig


class NodeState(str, Enum):
    """Where a node is in its life; the value is what status rows and JSON show."""

    STARTING = "starting"  # spawned, not yet ready
    READY = "ready"  # set up and waiting for GO
    RUNNING = "running"
    RESTARTING = "restarting"  # died, waiting out its back-off
    FAILED = "failed"  # down for good: restarts used up, never restarted, or a permanent fault
    FINISHED = "finished"  # exited 0: it had nothing more to do
    STOPPED = "stopped"  # stopped by the supervisor

    # ``str, Enum`` rather than StrEnum (3.11+): formatted, a state reads as its value.
    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


ENDED = frozenset({NodeState.FAILED, NodeState.FINISHED, NodeState.STOPPED})


@dataclass
class NodeRun:
    """What the supervisor knows about one node; one row of the status table."""

    spec: NodeSpec
    config: NodeConfig
    process: subprocess.Popen | None = None
    state: NodeState = NodeState.STARTING
    restarts: int = 0
    consecutive_failures: int = 0
    started_at: float = 0.0
    restart_at: float | None = None
    last_heartbeat: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    rate_in: float = 0.0
    rate_out: float = 0.0
    cpu_percent: float = 0.0
    cpu_ms_per_frame: float | None = None  # CPU time per message taken in (a source: sent)
    alarms: int = 0
    last_alarm: str = ""
    exit_code: int | None = None
    sent_all_at: float | None = None  # a source said it has sent everything (EOS)
    gaps: list[dict[str, Any]] = field(default_factory=list)  # restart gaps, one per topic
    files: dict[str, str] = field(default_factory=dict)  # path → writing/open/closed/recovered
    _prev: tuple[float, int, int, float] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def update_rates(self, stats: dict[str, Any], now: float) -> None:
        received, sent, cpu = (
            stats.get("received", 0),
            stats.get("sent", 0),
            stats.get("cpu_s", 0.0),
        )
        if self._prev is not None:
            t0, r0, s0, c0 = self._prev
            dt = now - t0
            if dt > 0.2:
                self.rate_in = max(0.0, (received - r0) / dt)
                self.rate_out = max(0.0, (sent - s0) / dt)
                self.cpu_percent = max(0.0, 100.0 * (cpu - c0) / dt)
                frames = received - r0 if received > r0 else sent - s0
                self.cpu_ms_per_frame = 1e3 * max(0.0, cpu - c0) / frames if frames > 0 else None
                self._prev = (now, received, sent, cpu)
        else:
            self._prev = (now, received, sent, cpu)
        self.stats = stats


def _gap_ms(gaps: list[dict[str, Any]]) -> float:
    """How long a node's restarts held its topics up: per restart its longest gap, summed."""
    longest: dict[Any, float] = {}
    for gap in gaps:
        key = gap.get("restart")
        longest[key] = max(longest.get(key, 0.0), float(gap.get("gap_ms", 0.0)))
    return round(sum(longest.values()), 1)


def status_row(node: NodeRun) -> dict[str, Any]:
    """The node's row: what the status table shows and what ``--json`` prints."""
    return {
        "node": node.spec.id,
        "uses": node.spec.uses,
        "state": node.state.value,
        "pid": node.pid,
        "restarts": node.restarts,
        "rate_in_hz": round(node.rate_in, 2),
        "rate_out_hz": round(node.rate_out, 2),
        "age_p50_ms": node.stats.get("age_p50_ms"),
        "age_p99_ms": node.stats.get("age_p99_ms"),
        "received": node.stats.get("received", 0),
        "sent": node.stats.get("sent", 0),
        "drops": node.stats.get("drops", 0),
        "lost": node.stats.get("lost", 0),
        "malformed": node.stats.get("malformed", 0),
        "send_drops": node.stats.get("send_drops", 0),
        "cpu_percent": round(node.cpu_percent, 1),
        "cpu_ms_per_frame": None
        if node.cpu_ms_per_frame is None
        else round(node.cpu_ms_per_frame, 2),
        "alarms": node.alarms,
        "last_alarm": node.last_alarm,
        "exit_code": node.exit_code,
        "restart_gap_ms": _gap_ms(node.gaps),
        "restart_gap_frames": sum(g.get("frames", 0) for g in node.gaps),
        "restart_gaps": list(node.gaps),
        "files": [{"path": p, "state": f} for p, f in node.files.items()],
    }
