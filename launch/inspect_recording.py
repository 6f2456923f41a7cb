"""``igtflow inspect``: what a recording holds, read from the file alone (even a damaged one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from rich.console import Console
from rich.table import Table

from igtflow.stream.recording import (
    GAP_METADATA,
    GRAPH_ATTACHMENT,
    METADATA_NAME,
    RECOVERY_METADATA,
    unpack_frames,
)
from igtflow.stream.recording_scan import RawMessage, ScanReport, scan


class _TopicTally:
    """Counts, sizes, timing and sequence gaps of one topic."""

    def __init__(self, raw: RawMessage) -> None:
        self.kind = raw.kind
        self.count = 0
        self.bytes = 0
        self.first_ns = raw.publish_time_ns
        self.last_ns = raw.publish_time_ns
        self.max_interval_ns = 0
        self.last_seq: int | None = None
        self.missing = 0
        self.seq_restarts = 0
        self.shape = _shape(raw)

    def add(self, raw: RawMessage) -> None:
        self.count += 1
        self.bytes += len(raw.data)
        if self.count > 1:
            self.max_interval_ns = max(self.max_interval_ns, raw.publish_time_ns - self.last_ns)
        self.first_ns = min(self.first_ns, raw.publish_time_ns)
        self.last_ns = max(self.last_ns, raw.publish_time_ns)
        if self.last_seq is not None:
            if raw.sequence > self.last_seq:
                self.missing += raw.sequence - self.last_seq - 1
            else:  # the producer started counting again (an older recorder, a restart): no loss
                self.seq_restarts += 1
        self.last_seq = raw.sequence

    def summary(self) -> dict[str, Any]:
        span_s = (self.last_ns - self.first_ns) / 1e9
        return {
            "kind": self.kind,
            "messages": self.count,
            "rate_hz": round((self.count - 1) / span_s, 2) if span_s > 0 else None,
            "bytes": self.bytes,
            "bytes_per_message": round(self.bytes / self.count) if self.count else 0,
            "missing_seq": self.missing,
            "seq_restarts": self.seq_restarts,
            "max_gap_ms": round(self.max_interval_ns / 1e6, 1),
            "shape": self.shape,
        }


def _shape(raw: RawMessage) -> str | None:
    """``HxW dtype`` of the first array of a message, read from its wire header."""
    try:
        header = msgpack.unpackb(unpack_frames(raw.data)[1], raw=False)
        array = header["arrays"][0]
        return "×".join(str(n) for n in array["shape"]) + f" {np.dtype(array['dtype']).name}"
    except Exception:  # a message with no array, or a header we cannot read: no shape to show
        return None


def _restart_gap(raw: RawMessage) -> dict[str, Any] | None:
    """The restart gap a recorded ``restart-gap`` Status message describes, if it is one."""
    try:
        header = msgpack.unpackb(unpack_frames(raw.data)[1], raw=False)
        gap = header["meta"]["gap"] if header["fields"]["code"] == "restart-gap" else None
    except Exception:  # not a Status we can read: it describes no gap
        return None
    return gap if isinstance(gap, dict) else None


def _recorded_gaps(report: ScanReport) -> list[dict[str, Any]]:
    """The holes a restarted recorder stored (``igtflow.gap.N`` metadata)."""
    gaps = []
    for name, values in report.metadata.items():
        if name.startswith(GAP_METADATA):
            gaps.append({k: _maybe_json(v) for k, v in values.items()})
    return gaps


def inspect_recording(path: str | Path) -> dict[str, Any]:
    """Summary of the recording at ``path`` (raises ``RecordingError`` if it is not one).

    ``problems`` lists everything found wrong (empty: the file is whole); ``losses`` the byte
    ranges that could not be read, with the messages and topics they held when known.
    """
    report = ScanReport(str(path))
    tallies: dict[str, _TopicTally] = {}
    status_gaps: list[dict[str, Any]] = []
    for raw in scan(path, report=report):
        tally = tallies.get(raw.topic) or tallies.setdefault(raw.topic, _TopicTally(raw))
        tally.add(raw)
        if raw.kind == "Status" and (gap := _restart_gap(raw)) is not None:
            status_gaps.append(gap)
    firsts = [t.first_ns for t in tallies.values()]
    lasts = [t.last_ns for t in tallies.values()]
    metadata = report.metadata.get(METADATA_NAME, {})
    graph = report.attachments.get(GRAPH_ATTACHMENT)
    return {
        "path": str(path),
        "size_bytes": Path(path).stat().st_size,
        "closed": report.complete,
        "messages": report.messages,
        "duration_s": round((max(lasts) - min(firsts)) / 1e9, 3) if firsts else 0.0,
        "start_ns": min(firsts) if firsts else None,
        "chunks": report.chunks,
        "damaged_chunks": report.bad_chunks,
        "expected_messages": report.expected_messages,
        "lost_messages": report.lost_messages,
        "unverified_messages": report.unverified,
        "losses": [loss.as_dict() for loss in report.losses],
        "damaged_attachments": report.bad_attachments,
        "metadata": {k: _maybe_json(v) for k, v in metadata.items()},
        "recovery": {
            k: _maybe_json(v) for k, v in report.metadata.get(RECOVERY_METADATA, {}).items()
        },
        "graph": graph.decode(errors="replace") if graph else None,
        "topics": {topic: tallies[topic].summary() for topic in sorted(tallies)},
        "restart_gaps": sorted(
            [*_recorded_gaps(report), *status_gaps], key=lambda g: g.get("start_ns") or 0
        ),
        "problems": report.problems,
    }


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def print_summary(summary: dict[str, Any], console: Console) -> None:
    if summary["problems"]:
        lost = summary["lost_messages"]
        state = (
            f"DAMAGED ({len(summary['problems'])} problem(s), "
            f"{'an unknown number of' if lost is None else lost} messages lost): "
            "run `igtflow recover`"
        )
        if not summary["closed"]:
            state = "NOT CLOSED (crash?), " + state
    else:
        state = "closed, no problems"
    console.print(
        f"[bold]{summary['path']}[/]  {summary['size_bytes'] / 1e6:.1f} MB, "
        f"{summary['messages']} messages, {summary['duration_s']:.1f} s, {state}"
    )
    for key, value in summary["metadata"].items():
        console.print(f"  {key}: {value}", highlight=False)
    recovery = summary["recovery"]
    if recovery:
        console.print(
            f"  [yellow]recovered from a damaged file:[/] "
            f"{len(recovery.get('recovery_losses', []))} unreadable byte ranges, "
            f"{len(recovery.get('unverified_messages', []))} unverified messages "
            "(see --json)",
            highlight=False,
        )
    table = Table(title="topics", title_justify="left")
    table.add_column("topic", no_wrap=True)
    for column in (
        "kind",
        "shape",
        "msgs",
        "Hz",
        "KB/msg",
        "missing",
        "seq restarts",
        "max gap ms",
    ):
        table.add_column(
            column, justify="left" if column in ("topic", "kind", "shape") else "right"
        )
    for topic, t in summary["topics"].items():
        table.add_row(
            topic,
            t["kind"],
            t["shape"] or "-",
            str(t["messages"]),
            "-" if t["rate_hz"] is None else f"{t['rate_hz']:.1f}",
            f"{t['bytes_per_message'] / 1e3:.1f}",
            str(t["missing_seq"]),
            str(t["seq_restarts"]),
            f"{t['max_gap_ms']:.0f}",
        )
    console.print(table)
    for gap in summary["restart_gaps"]:
        console.print(
            f"[yellow]restart gap:[/] {gap.get('topic')}: {gap.get('frames')} frame(s), "
            f"{(gap.get('end_ns', 0) - gap.get('start_ns', 0)) / 1e6:.0f} ms "
            f"while {gap.get('node')} restarted",
            highlight=False,
        )
    if summary["losses"]:
        damage = Table(title="unreadable byte ranges", title_justify="left")
        for column in ("bytes", "what", "msgs lost", "topics"):
            damage.add_column(column, justify="right" if column == "msgs lost" else "left")
        for loss in summary["losses"]:
            damage.add_row(
                f"{loss['start']}–{loss['end']}",
                loss["what"],
                "?" if loss["messages"] is None else str(loss["messages"]),
                ", ".join(loss["topics"]) or "-",
            )
        console.print(damage)
    for problem in summary["problems"]:
        console.print(f"[yellow]problem:[/] {problem}", highlight=False)
