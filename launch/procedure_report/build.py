"""From a recording to the page and its summary: which plot goes in which section, and what each
section says when its stream was not recorded."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from igtflow.launch.graph_edit import source_topics
from igtflow.launch.procedure_report import page, plots
from igtflow.launch.procedure_report.page import Section, e
from igtflow.launch.procedure_report.reading import (
    INVALID_REGISTRATION,
    LOW_CONFIDENCE,
    RESTART,
    STALE,
    Procedure,
    Series,
    read_procedure,
)
from igtflow.launch.procedure_report.snapshots import Snapshot

ALARM_KINDS = {
    STALE: "stale",
    LOW_CONFIDENCE: "low confidence",
    RESTART: "restarts",
    INVALID_REGISTRATION: "invalid registration",
}
ALARM_ROWS = 60  # the table lists the first ones; the plot shows them all
KEY_FRAMES = 4


@dataclass
class Report:
    html: str
    summary: dict[str, Any]

    @property
    def damaged(self) -> bool:
        return bool(self.summary["problems"])


def build_report(path: str | Path) -> Report:
    """The report of the recording at ``path`` (``RecordingError`` if it is no recording)."""
    procedure = read_procedure(path)
    snapshots = procedure.key_frames.pick(KEY_FRAMES)
    latency = _latency_topics(procedure)
    facts = [
        ("recording", procedure.path),
        ("captured", f"{page.utc(procedure.start_ns)}, {procedure.duration_s:.1f} s"),
        ("messages", procedure.messages),
        ("igtflow", procedure.metadata.get("igtflow_version", "?")),
    ]
    html = page.page(
        f"Procedure report: {procedure.path.name}",
        facts,
        procedure.problems,
        _sections(procedure, latency, snapshots),
    )
    return Report(html, _summary(procedure, latency, snapshots))


def _sections(
    procedure: Procedure, latency: dict[str, Series], snapshots: list[Snapshot]
) -> list[Section]:
    start = procedure.start_ns or 0
    alarms = _alarms(procedure, start) if procedure.alarms else None
    frames = page.key_frames(snapshots, start) if snapshots else None
    return [
        _plot_section(
            "latency", "Latency: capture to each output", latency, start, "ms",
            note=_latency_note(procedure, latency),
        ),
        _plot_section(
            "registration", "Registration error", procedure.registration, start, "error (mm)",
            flagged="invalid",
        ),
        _plot_section(
            "confidence", "Segmentation and tracking confidence", procedure.confidence, start,
            "confidence", flagged="low confidence",
        ),
        _plot_section(
            "targets", "Target shift from the first position", procedure.target_shift, start,
            "shift (mm)",
        ),
        Section("alarms", "Alarms", alarms, "not recorded: the recording holds no Status message"),
        Section("key-frames", "Key frames", frames),
        Section("versions", "Graph and model versions", _versions(procedure)),
    ]  # fmt: skip


def _summary(
    procedure: Procedure, latency: dict[str, Series], snapshots: list[Snapshot]
) -> dict[str, Any]:
    """The ``--json`` summary: the numbers behind each section (``None``: not recorded)."""
    start = procedure.start_ns or 0
    shift = {name: s.percentiles() for name, s in procedure.target_shift.items()}
    return {
        "recording": str(procedure.path),
        "damaged": bool(procedure.problems),
        "problems": procedure.problems,
        "start_utc": page.utc(procedure.start_ns),
        "duration_s": round(procedure.duration_s, 3),
        "messages": procedure.messages,
        "latency_ms": {t: s.percentiles() for t, s in latency.items()} or None,
        "registration": _registration_summary(procedure.registration),
        "confidence": _confidence_summary(procedure.confidence),
        "target_shift_mm": shift or None,
        "alarms": _alarm_counts([a for a in procedure.alarms if a.level != "ok"]),
        "key_frames": [_frame_summary(s, start) for s in snapshots],
        "versions": _version_summary(procedure),
    }


def _plot_section(
    slug: str,
    title: str,
    series: dict[str, Series],
    start: int,
    ylabel: str,
    flagged: str | None = None,
    note: str = "",
) -> Section:
    if not series:
        return Section(slug, title, None)
    png = plots.lines(series, start, ylabel, flagged)
    rows = [[name, len(s.values), *s.percentiles().values()] for name, s in series.items()]
    if flagged:
        for row, one in zip(rows, series.values(), strict=True):
            row.append(sum(one.flags))
    header = ["series", "points", "p50", "p99", "max", *([flagged] if flagged else [])]
    body = page.image(png, title) + (f"<p>{e(note)}</p>" if note else "")
    return Section(slug, title, body + page.table(header, rows))


def _latency_topics(procedure: Procedure) -> dict[str, Series]:
    """Outputs of the nodes downstream of the sources (a source's own outputs leave at capture);
    every topic when only sources were recorded."""
    sources = set(source_topics(procedure.graph_yaml, list(procedure.latency_ms)))
    derived = {t: s for t, s in procedure.latency_ms.items() if t not in sources}
    if procedure.graph_yaml and derived:
        return derived
    return procedure.latency_ms


def _latency_note(procedure: Procedure, shown: dict[str, Series]) -> str:
    left_out = sorted(set(procedure.latency_ms) - set(shown))
    note = "Milliseconds from a frame's capture to the moment the node sent the output."
    if left_out:
        note += f" The sources' own outputs are left out: {', '.join(left_out)}."
    return note


def _alarms(procedure: Procedure, start: int) -> str:
    raised = [a for a in procedure.alarms if a.level != "ok"]
    counts = _alarm_counts(raised)
    summary = page.table(["alarm", "count"], [[k, v] for k, v in counts.items()])
    rows = [
        [
            f"{(a.stamp_ns - start) / 1e9:.2f}" if a.stamp_ns is not None else "?",
            a.node,
            f'<span class="{e(a.level)}">{e(a.level)}</span>',
            a.code,
            a.text,
        ]
        for a in procedure.alarms[:ALARM_ROWS]
    ]
    more = len(procedure.alarms) - ALARM_ROWS
    tail = f"<p>… and {more} more (all are in the plot).</p>" if more > 0 else ""
    timeline = page.image(plots.alarm_timeline(procedure.alarms, start), "alarms over time")
    listing = page.table(["s", "node", "level", "code", "text"], rows, raw=2)
    return summary + timeline + "<p>Green marks: the alarm cleared.</p>" + listing + tail


def _alarm_counts(raised: list[Any]) -> dict[str, int]:
    counts = Counter(ALARM_KINDS.get(a.code, "other") for a in raised)
    return {kind: counts.get(kind, 0) for kind in [*ALARM_KINDS.values(), "other"]}


def _versions(procedure: Procedure) -> str:
    meta = page.table(["metadata", "value"], sorted(procedure.metadata.items()))
    models = (
        page.table(
            ["node", "model", "SHA-256 of the weights"],
            [[n, m["model"], m["sha256"]] for n, m in sorted(procedure.models.items())],
        )
        if procedure.models
        else f'<p class="missing">models: {page.NOT_RECORDED}</p>'
    )
    if procedure.graph_yaml:
        graph = (
            f"<p>graph.yaml, SHA-256 <code>{procedure.graph_sha256}</code></p>"
            f"<details><summary>the graph</summary><pre>{e(procedure.graph_yaml)}</pre>"
            "</details>"
        )
    else:
        graph = f'<p class="missing">graph: {page.NOT_RECORDED}</p>'
    return models + graph + meta


def _registration_summary(series: dict[str, Series]) -> dict[str, Any] | None:
    return {
        topic: {"messages": len(s.values), "invalid": sum(s.flags), "error_mm": s.percentiles()}
        for topic, s in series.items()
    } or None


def _confidence_summary(series: dict[str, Series]) -> dict[str, Any] | None:
    return {
        node: {
            "frames": len(s.values),
            "low_frames": sum(s.flags),
            "min": min(s.values),
            "p50": s.percentiles()["p50"],
        }
        for node, s in series.items()
    } or None


def _frame_summary(shot: Snapshot, start: int) -> dict[str, Any]:
    return {
        "t_s": round((shot.stamp_ns - start) / 1e9, 3),
        "topic": shot.topic,
        "drawn": shot.what,
        "png_bytes": len(shot.png),
    }


def _version_summary(procedure: Procedure) -> dict[str, Any]:
    return {
        "igtflow_version": procedure.metadata.get("igtflow_version"),
        "graph_sha256": procedure.graph_sha256,
        "models": procedure.models,
        "metadata": {k: _maybe_json(v) for k, v in procedure.metadata.items()},
    }


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value
