"""``igtflow convert``: frame files to MCAP recordings, and recordings to PLUS ``.seq.nrrd``.

Into MCAP, the file's own source node (``plus-sequence``, ``dicom`` or ``video``) does the
reading: it runs here with its emits going to a recording instead of a socket, so a converted
file holds exactly the messages the node would send live, stamped with the file's own times.

Out of MCAP, the images of one topic become the frames of a ``.seq.nrrd`` (or ``.seq.mha``), and
every Transform recorded up to each frame becomes that frame's ``<From>To<To>Transform`` with its
status, named as PLUS names them, so 3D Slicer's Sequences module opens the file.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from igtflow.launch.offline import RecordingEmitter, offline_node
from igtflow.stream.atomic_file import atomic_output, check_target
from igtflow.stream.messages import Image, Transform
from igtflow.stream.nodes.file_replay import FileReplay
from igtflow.stream.readers.errors import check_input
from igtflow.stream.readers.plus_writer import write_seq_mha, write_seq_nrrd
from igtflow.stream.recording import RecordingWriter, read_messages
from igtflow.stream.recording_scan import ScanReport

PLUS_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
DICOM_SUFFIXES = (".dcm", ".dicom")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")
SEQUENCE_TARGETS = (".seq.nrrd", ".igs.nrrd", ".nrrd", ".seq.mha", ".igs.mha", ".mha")
INPUTS_TEXT = (
    "PLUS sequences (.seq.mha, .igs.mha, .mha, .mhd, .seq.nrrd, .igs.nrrd, .nrrd, .nhdr), "
    "DICOM cine (.dcm, .dicom, or any file with a DICOM preamble), "
    f"video ({', '.join(VIDEO_SUFFIXES)}) "
    "or an MCAP recording (.mcap)"
)


class ConvertError(Exception):
    """A conversion that cannot be done; the message says which file and why."""


def source_type(path: Path) -> str:
    """The node type that reads ``path``: by extension, DICOM also by its preamble."""
    check_input(path)
    name = path.name.lower()
    if name.endswith(PLUS_SUFFIXES):
        return "plus-sequence"
    if name.endswith(DICOM_SUFFIXES):
        return "dicom"
    if name.endswith(VIDEO_SUFFIXES):
        return "video"
    with path.open("rb") as file:
        if file.read(132)[128:132] == b"DICM":
            return "dicom"
    raise ConvertError(
        f"{path}: cannot tell what the file holds by its name; convert reads {INPUTS_TEXT}"
    )


def convert(
    source: Path,
    target: Path,
    node_id: str = "probe",
    image_topic: str | None = None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    to: str | None = None,
) -> dict[str, Any]:
    """Convert ``source`` into ``target``, the direction given by their extensions, or by ``to``
    (``"foxglove"``: a recording into an MCAP in Foxglove's schemas).

    Checks both names before any work; ``target`` appears only whole and only if the conversion
    succeeded, and an existing one is replaced only with ``force``.
    """
    if target.resolve() == source.resolve():
        raise ConvertError(f"{target}: write to a new file; the source is kept as it is")
    if to is not None:
        return _convert_to(source, target, to, force, progress)
    if source.name.lower().endswith(".mcap"):
        check_input(source)
        if not target.name.lower().endswith(SEQUENCE_TARGETS):
            raise ConvertError(
                f"{target}: a recording converts to a PLUS sequence; name the target "
                f"{' or '.join(SEQUENCE_TARGETS)}"
            )
        check_target(target, force)
        return mcap_to_sequence(source, target, image_topic, force)
    uses = source_type(source)
    if not target.name.lower().endswith(".mcap"):
        raise ConvertError(f"{target}: frame files convert to a recording; name the target .mcap")
    check_target(target, force)
    return file_to_mcap(source, target, node_id, None, progress, force, uses)


def _convert_to(
    source: Path, target: Path, to: str, force: bool, progress: Callable[[int], None] | None
) -> dict[str, Any]:
    from igtflow.launch.convert_foxglove import NotIgtflowError, to_foxglove_mcap

    if to != "foxglove":
        raise ConvertError(f"--to {to}: unknown target format; the one there is: foxglove")
    check_input(source)
    if not target.name.lower().endswith(".mcap"):
        raise ConvertError(f"{target}: a Foxglove file is an MCAP; name the target .mcap")
    check_target(target, force)
    try:
        result = to_foxglove_mcap(source, target, force, progress)
    except NotIgtflowError as exc:
        raise ConvertError(str(exc)) from None
    if result["problems"]:
        result["warning"] = "the recording is damaged; converted what was readable: " + "; ".join(
            result["problems"]
        )
    return result


def file_to_mcap(
    source: Path,
    target: Path,
    node_id: str = "probe",
    params: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    force: bool = False,
    uses: str | None = None,
) -> dict[str, Any]:
    """Convert a PLUS sequence, DICOM cine or video into a recording: ``{"messages": per topic}``,
    and ``"damage"`` where the file was cut short (its whole frames are converted).

    Raises ``ConvertError`` (or the reader's ``SourceFileError``, or ``OutputError`` for the
    target) naming the file and the fault; ``target`` is then as it was.
    """
    uses = uses or source_type(source)
    # A DICOM file's path often holds the patient's name: the recording keeps its hash instead.
    origin = _file_hash(source) if uses == "dicom" else str(source)
    graph = f"name: converted\nnodes:\n  - id: {node_id}\n    uses: {uses}\n"
    graph += f"    params: {{path: {json.dumps(origin)}}}\n"
    metadata = {"converted_from": origin, "reader": uses}
    with atomic_output(target, force) as partial, RecordingWriter(partial, graph, metadata) as out:
        emitter = RecordingEmitter(out, node_id)
        try:
            node = offline_node(uses, node_id, {"path": str(source), **(params or {})}, emitter)
        except ValueError as exc:
            raise ConvertError(f"{source}: {exc}") from None
        assert isinstance(node, FileReplay)
        period_ns = int(node.frame_period_s * 1e9)
        for count, frame in enumerate(node.frames()):
            time_s = frame.time_s
            stamp = round(time_s * 1e9) if time_s is not None else frame.index * period_ns
            node.emit_frame(frame, stamp, 0)
            if progress is not None:
                progress(count + 1)
    result: dict[str, Any] = {"messages": emitter.counts}
    if node.damage is not None:
        result["damage"] = node.damage.as_dict()
        result["warning"] = str(node.damage)
    return result


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def _image_topic(path: Path, wanted: str | None) -> str:
    from igtflow.stream.recording import read_info

    topics = read_info(path).topics
    if wanted:
        if wanted not in topics:
            raise ConvertError(f"{path}: no topic {wanted!r}; it has {', '.join(sorted(topics))}")
        return wanted
    images = sorted(t for t, kind in topics.items() if kind == "Image" and "truth" not in t)
    if not images:
        raise ConvertError(f"{path}: no Image topic to export")
    return images[0]


def _poses_at(recorded: list[Transform], images: list[Image]) -> tuple[np.ndarray, np.ndarray]:
    """For each image, the latest pose captured at or before it (by stamp, as PLUS pairs
    them); identity and INVALID where none was yet."""
    recorded = sorted(recorded, key=lambda m: m.stamp_ns)
    stamps = [m.stamp_ns for m in recorded]
    matrices, valid = [], []
    for image in images:
        index = bisect.bisect_right(stamps, image.stamp_ns) - 1
        matrices.append(recorded[index].matrix if index >= 0 else np.eye(4))
        valid.append(index >= 0 and recorded[index].valid)
    return np.stack(matrices), np.array(valid)


def mcap_to_sequence(
    source: Path, target: Path, image_topic: str | None = None, force: bool = False
) -> dict[str, Any]:
    """Export one image topic of a recording, with every recorded pose, as a PLUS sequence."""
    topic = _image_topic(source, image_topic)
    report = ScanReport(str(source))
    images: list[Image] = []
    poses: dict[str, list[Transform]] = {}
    for message_topic, _, message in read_messages(source, report=report):
        if isinstance(message, Transform):
            poses.setdefault(f"{message.from_frame}To{message.to_frame}", []).append(message)
        elif message_topic == topic and isinstance(message, Image):
            if images and message.data.shape != images[0].data.shape:
                raise ConvertError(
                    f"{source}: {topic} changes size at seq {message.seq} "
                    f"({images[0].data.shape} → {message.data.shape}); a sequence needs one size"
                )
            images.append(message)
    if not images:
        raise ConvertError(f"{source}: {topic} holds no images")
    if images[0].data.ndim != 2:
        raise ConvertError(
            f"{source}: {topic} frames are {images[0].data.shape}; PLUS sequences hold H×W frames"
        )
    names = sorted(poses)
    transforms = {name: _poses_at(poses[name], images) for name in names}
    frames = np.stack([m.data for m in images])
    stamps = np.array([m.stamp_ns for m in images], dtype=np.int64)
    times = (stamps - stamps[0]) / 1e9
    writer = write_seq_mha if target.name.lower().endswith((".mha", ".mhd")) else write_seq_nrrd
    with atomic_output(target, force) as partial:
        writer(partial, frames, tuple(images[0].spacing), times, transforms)
    return {
        "frames": len(images),
        "image_topic": topic,
        "transforms": names,
        "problems": report.problems,
    }
