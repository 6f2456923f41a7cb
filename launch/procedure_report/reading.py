"""One pass over a recording, keeping only what the report draws: small series, alarms, a few
frames. A long recording costs memory for its key-frame candidates and one float per message.

Read with ``recording.read_messages`` and a ``ScanReport``, so a crashed or damaged file gives
what it still holds and its problems are listed, never raised.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from igtflow.launch.procedure_report.snapshots import KeyFrames
from igtflow.stream.messages import Image, Message, Points, Status, Transform
from igtflow.stream.recording import (
    GAP_METADATA,
    GRAPH_ATTACHMENT,
    METADATA_NAME,
    read_messages,
)
from igtflow.stream.recording_scan import ScanReport

STALE, LOW_CONFIDENCE, RESTART = "stale-overlay", "low-confidence", "restart-gap"
INVALID_REGISTRATION = "invalid-registration"


@dataclass
class Series:
    """Values over capture time (ns), with a flag per point (low, invalid); typed arrays, so a
    point costs 17 bytes however long the recording."""

    stamps_ns: array = field(default_factory=lambda: array("q"))
    values: array = field(default_factory=lambda: array("d"))
    flags: array = field(default_factory=lambda: array("b"))

    def add(self, stamp_ns: int, value: float, flag: bool = False) -> None:
        self.stamps_ns.append(stamp_ns)
        self.values.append(value)
        self.flags.append(flag)

    def percentiles(self) -> dict[str, float]:
        """p50, p99 and max: what the design asks every timing to be reported as."""
        data = np.asarray(self.values, dtype=np.float64)
        p50, p99 = np.percentile(data, [50, 99])
        return {"p50": round(p50, 2), "p99": round(p99, 2), "max": round(data.max(), 2)}


@dataclass
class Alarm:
    stamp_ns: int | None
    node: str
    level: str
    code: str
    text: str


@dataclass
class Procedure:
    """What the report shows, read from one recording."""

    path: Path
    problems: list[str] = field(default_factory=list)  # what is wrong with the file
    messages: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    graph_yaml: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    latency_ms: dict[str, Series] = field(default_factory=dict)  # topic → capture to output
    registration: dict[str, Series] = field(default_factory=dict)  # topic → error_mm, invalid
    confidence: dict[str, Series] = field(default_factory=dict)  # node → confidence, low
    target_shift: dict[str, Series] = field(default_factory=dict)  # "topic: label" → mm
    alarms: list[Alarm] = field(default_factory=list)
    models: dict[str, dict[str, str]] = field(default_factory=dict)  # node → model, sha256
    key_frames: KeyFrames = field(default_factory=KeyFrames)

    @property
    def duration_s(self) -> float:
        if self.start_ns is None or self.end_ns is None:
            return 0.0
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def graph_sha256(self) -> str | None:
        return hashlib.sha256(self.graph_yaml.encode()).hexdigest() if self.graph_yaml else None


def _node(topic: str) -> str:
    return topic.split("/", 1)[0]


class _Collector:
    """Sorts each message into the series it feeds."""

    def __init__(self, procedure: Procedure) -> None:
        self.p = procedure
        self.transforms: dict[str, Series] = defaultdict(Series)
        self.model_frames: set[str] = set()  # Transform topics that say they place the model
        self.first_points: dict[str, np.ndarray] = {}
        self.confidence_topics: dict[str, str] = {}  # node → the one topic its series reads
        self.last_seq: dict[str, int] = {}

    def add(self, topic: str, log_time_ns: int, message: Message) -> None:
        p = self.p
        p.messages += 1
        stamp = message.stamp_ns
        p.start_ns = stamp if p.start_ns is None else min(p.start_ns, stamp)
        p.end_ns = stamp if p.end_ns is None else max(p.end_ns, stamp)
        self._seq(topic, message)
        if isinstance(message, Status):
            self._status(topic, message)
            return
        sent_ns = message.trace[-1][2] if message.trace else log_time_ns
        p.latency_ms.setdefault(topic, Series()).add(stamp, (sent_ns - stamp) / 1e6)
        self._model(topic, message.meta)
        if isinstance(message, Transform):
            self.transforms[topic].add(stamp, float(message.error_mm), not message.valid)
            if message.from_frame == "Model":
                self.model_frames.add(topic)
        elif isinstance(message, Points):
            self._targets(topic, message)
        elif isinstance(message, Image):
            p.key_frames.offer(topic, message)
        self._confidence(topic, message)

    def _seq(self, topic: str, message: Message) -> None:
        """A seq that goes back: its producer restarted and counted again (older recordings;
        a restarted node now carries on its count and says so in a ``restart-gap`` Status)."""
        last = self.last_seq.get(topic)
        self.last_seq[topic] = message.seq
        if last is not None and message.seq <= last:
            text = f"{topic}: seq went back from {last} to {message.seq}"
            self.p.alarms.append(Alarm(message.stamp_ns, _node(topic), "warn", RESTART, text))

    def _confidence(self, topic: str, message: Message) -> None:
        value = message.meta.get("confidence")
        if not isinstance(value, int | float) or isinstance(value, bool):
            return
        # A node's outputs carry the same value for a frame: one series per node, from one topic.
        if self.confidence_topics.setdefault(_node(topic), topic) == topic:
            low = bool(message.meta.get("low_confidence"))
            self.p.confidence.setdefault(_node(topic), Series()).add(
                message.stamp_ns, float(value), low
            )

    def _status(self, topic: str, status: Status) -> None:
        # "ok" ones are kept too: they say when an alarm cleared
        self.p.alarms.append(
            Alarm(status.stamp_ns, _node(topic), status.level, status.code, status.text)
        )

    def _model(self, topic: str, meta: dict[str, Any]) -> None:
        sha = meta.get("model_sha256")
        if isinstance(sha, str) and _node(topic) not in self.p.models:
            self.p.models[_node(topic)] = {"model": str(meta.get("model", "?")), "sha256": sha}

    def _targets(self, topic: str, points: Points) -> None:
        if not points.labels or "target" not in topic.rsplit("/", 1)[-1]:
            return
        first = self.first_points.setdefault(topic, np.asarray(points.points, np.float64))
        if len(first) != len(points.points):
            return  # another set of targets: a shift from the first one means nothing
        shift = np.linalg.norm(np.asarray(points.points, np.float64) - first, axis=1)
        for label, mm in zip(points.labels, shift, strict=True):
            self.p.target_shift.setdefault(f"{topic}: {label}", Series()).add(
                points.stamp_ns, float(mm)
            )

    def finish(self, report: ScanReport) -> None:
        p = self.p
        for topic, series in self.transforms.items():
            # A pose from a tracker is valid with no error: only a registration says otherwise.
            if topic in self.model_frames or any(series.flags) or any(series.values):
                p.registration[topic] = series
                self._invalid_runs(topic, series)
        for name, values in report.metadata.items():
            if name.startswith(GAP_METADATA):
                text = (
                    f"recorder restart: {values.get('topic', '?')} lost {values.get('frames', '?')}"
                    " frame(s)"
                )
                start = values.get("start_ns", "")
                stamp = int(start) if start.isdigit() else None
                p.alarms.append(Alarm(stamp, values.get("node", "?"), "warn", RESTART, text))
        p.alarms.sort(key=lambda a: a.stamp_ns or 0)

    def _invalid_runs(self, topic: str, series: Series) -> None:
        """One alarm per run of invalid registrations: when it began, how many in a row."""
        start, count = 0, 0
        for stamp, invalid in [*zip(series.stamps_ns, series.flags, strict=True), (0, False)]:
            if invalid:
                start, count = (stamp if count == 0 else start), count + 1
            elif count:
                text = f"{topic}: {count} invalid registration(s) in a row"
                self.p.alarms.append(Alarm(start, _node(topic), "warn", INVALID_REGISTRATION, text))
                count = 0


def read_procedure(path: str | Path) -> Procedure:
    """Everything the report shows, from the recording at ``path``.

    Raises ``RecordingError`` when the file is no recording at all; a damaged one is read as far
    as it goes and ``problems`` says what is wrong with it.
    """
    report = ScanReport(str(path))
    procedure = Procedure(Path(path))
    collector = _Collector(procedure)
    for topic, log_time_ns, message in read_messages(path, report=report):
        collector.add(topic, log_time_ns, message)
    collector.finish(report)
    procedure.metadata = dict(report.metadata.get(METADATA_NAME, {}))
    graph = report.attachments.get(GRAPH_ATTACHMENT)
    procedure.graph_yaml = graph.decode(errors="replace") if graph else None
    procedure.problems = list(report.problems)
    return procedure
