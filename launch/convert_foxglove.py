"""``igtflow convert REC.mcap OUT.mcap --to foxglove``: a recording Foxglove opens with no plug-in.

An igtflow recording stores each message in igtflow's own wire encoding, which Foxglove cannot
read. This rewrites every message it can in Foxglove's well-known protobuf schemas (see
``render/foxglove_mapping.py``), one channel per topic (``probe/image`` → ``/probe/image``), with
the recorded log time and the capture stamp as publish time. The graph and the metadata are kept.
A damaged recording converts as far as it can be read; the result lists what was not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcap_protobuf.writer import Writer

from igtflow.render.foxglove_mapping import to_foxglove
from igtflow.stream.atomic_file import atomic_output
from igtflow.stream.messages import Image, Transform
from igtflow.stream.recording import (
    GRAPH_ATTACHMENT,
    MESSAGE_ENCODING,
    read_messages,
)
from igtflow.stream.recording_scan import ScanReport

FOXGLOVE_METADATA = "igtflow-foxglove"


class NotIgtflowError(Exception):
    """The input holds no igtflow messages: it is another program's MCAP."""


def to_foxglove_mcap(
    source: Path,
    target: Path,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write ``source``'s messages to ``target`` in Foxglove's schemas.

    Returns ``{"messages": per output topic, "skipped": {topic: why}, "problems": [...]}``;
    ``problems`` is not empty when ``source`` is damaged (what was readable is converted).
    Raises ``RecordingError`` (not an MCAP), ``NotIgtflowError`` (no igtflow message in it) or
    ``OutputError``; ``target`` then stays as it was.
    """
    report = ScanReport(str(source))
    counts: dict[str, int] = {}
    skipped: dict[str, str] = {}
    with atomic_output(target, force) as partial, partial.open("wb") as file:
        writer = Writer(file)
        for topic, log_time, message in read_messages(source, report=report):
            converted = to_foxglove(message)
            if converted is None:
                skipped[topic] = _why_skipped(message)
                continue
            name = "/" + topic.lstrip("/")
            writer.write_message(
                name, converted, log_time, message.stamp_ns, message.seq & 0xFFFFFFFF
            )
            counts[name] = counts.get(name, 0) + 1
            if progress is not None:
                progress(sum(counts.values()))
        if not counts and not skipped:
            raise NotIgtflowError(_not_igtflow(source, report))
        _keep_provenance(writer, source, report)
        writer.finish()
    return {"messages": counts, "skipped": skipped, "problems": report.problems}


def _why_skipped(message: Any) -> str:
    if isinstance(message, Transform):
        return f"{message.name} mirrors (determinant < 0): no FrameTransform quaternion holds it"
    if isinstance(message, Image):
        if message.modality == "FIELD":
            return "FIELD image (displacement vectors): Foxglove has no image form for it"
        return f"{message.data.dtype} {message.data.shape} pixels have no RawImage encoding"
    return f"{message.KIND} has no Foxglove schema"


def _not_igtflow(source: Path, report: ScanReport) -> str:
    foreign = [p for p in report.problems if MESSAGE_ENCODING in p]
    if foreign:
        return (
            f"{source}: not an igtflow recording (its channels are not {MESSAGE_ENCODING!r}; "
            "it may already be a Foxglove file)"
        )
    if report.problems:
        return f"{source}: no readable igtflow message: {'; '.join(report.problems)}"
    return f"{source}: the recording holds no messages"


def _keep_provenance(writer: Writer, source: Path, report: ScanReport) -> None:
    graph = report.attachments.get(GRAPH_ATTACHMENT)
    if graph is not None:
        writer.add_attachment(0, 0, GRAPH_ATTACHMENT, "text/yaml", graph)
    for name, values in report.metadata.items():
        writer.add_metadata(name, values)
    info = {"converted_from": str(source)}
    if report.problems:
        info["source_problems"] = json.dumps(report.problems)
    writer.add_metadata(FOXGLOVE_METADATA, info)
