"""Recordings: messages written to MCAP exactly as they travel on the wire, and read back.

Layout of a recording (MCAP, zstd chunks of about 1 MiB, indexed):

- one channel per topic, message encoding ``igtflow-msgpack``, no schema (the wire header says
  what each message is); channel metadata ``{"kind": <message kind>}``;
- per message: ``log_time`` = receive time (ns), ``publish_time`` = ``stamp_ns`` (capture time),
  ``sequence`` = ``seq`` (modulo 2**32, MCAP's width);
- message data = the wire frames of one message (``[topic][msgpack header][buffer 0]…``, see
  ``wire.py``), every array inline, framed as::

      u32 LE frame count N, then N times: u32 LE frame length L, L bytes

- attachment ``graph.yaml`` (``text/yaml``): the graph that produced the recording;
- metadata ``igtflow``: ``{"igtflow_version": …, **metadata}`` (MCAP metadata is str → str, so
  other values are stored as JSON).

A chunk is closed and flushed to the file when it reaches ``CHUNK_SIZE`` or is
``FLUSH_INTERVAL_S`` old, whichever comes first, so a crash (kill -9) loses at most the last half
second; ``recording_scan`` reads back what a crashed or damaged file still holds.
"""

from __future__ import annotations

import errno
import itertools
import json
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import mcap.writer
import zstandard
from mcap.reader import make_reader
from mcap.writer import CompressionType, Writer

from igtflow import __version__
from igtflow.stream import recording_scan, wire
from igtflow.stream.atomic_file import atomic_output
from igtflow.stream.messages import Message
from igtflow.stream.recording_scan import RawMessage, RecordingError, ScanReport, scan

MESSAGE_ENCODING = recording_scan.MESSAGE_ENCODING
PROFILE = "igtflow"
GRAPH_ATTACHMENT = "graph.yaml"
METADATA_NAME = "igtflow"
GAP_METADATA = "igtflow.gap."  # + a number: one record per topic a recorder restart left a hole in
RECOVERY_METADATA = "igtflow-recovery"
CHUNK_SIZE = 1024 * 1024
# A write failing with one of these will not succeed on retry until someone frees space.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
FLUSH_INTERVAL_S = 0.5
ZSTD_LEVEL = 1


class _LevelledZstd:
    """Stands in for the ``zstandard`` module inside ``mcap.writer``, which always compresses at
    zstd's default level 3: too slow for 1024×1024 uint16 at 30 fps with headroom on one core.
    ``igtflow bench record`` measures the library's writer beside ours.

    One compressor per thread: a ``ZstdCompressor`` is not thread-safe, and a restarted recorder
    writes its new part while a thread rewrites the part its predecessor left open (sharing one
    compressor, that crashed the recorder with SIGSEGV in ``bench soak``).
    """

    def __init__(self, level: int) -> None:
        self._level = level
        self._local = threading.local()

    def compress(self, data: bytes) -> bytes:
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = self._local.compressor = zstandard.ZstdCompressor(level=self._level)
        return compressor.compress(data)


mcap.writer.zstandard = _LevelledZstd(ZSTD_LEVEL)  # type: ignore[assignment]

_U32 = struct.Struct("<I")


def pack_frames(frames: Sequence[wire.Frame]) -> bytes:
    """One byte string holding ``frames``: u32 LE count, then per frame u32 LE length + bytes."""
    parts: list[wire.Frame] = [_U32.pack(len(frames))]
    for frame in frames:
        parts.append(_U32.pack(memoryview(frame).nbytes))
        parts.append(frame)
    return b"".join(parts)


def unpack_frames(data: bytes | memoryview) -> list[bytes]:
    """The frames ``pack_frames`` joined; raises ``wire.WireError`` if ``data`` is cut or padded.

    Each frame is copied into its own ``bytes`` so arrays decoded from it are aligned.
    """
    view = memoryview(data).cast("B")
    if view.nbytes < _U32.size:
        raise wire.WireError(f"recorded message of {view.nbytes} bytes has no frame count")
    (count,) = _U32.unpack_from(view, 0)
    offset = _U32.size
    frames: list[bytes] = []
    for index in range(count):
        if offset + _U32.size > view.nbytes:
            raise wire.WireError(f"recorded message ends before the length of frame {index}")
        (length,) = _U32.unpack_from(view, offset)
        offset += _U32.size
        if offset + length > view.nbytes:
            raise wire.WireError(f"recorded frame {index} needs {length} bytes, message is cut")
        frames.append(bytes(view[offset : offset + length]))
        offset += length
    if offset != view.nbytes:
        raise wire.WireError(f"recorded message has {view.nbytes - offset} trailing bytes")
    return frames


class DiskFull(OSError):
    """The file system refused a write (no space, quota, file size limit); says where and how
    much space is left, and what happens to the recording."""

    def __init__(self, path: Path, cause: OSError, written: int) -> None:
        try:
            free = shutil.disk_usage(path.parent).free
        except OSError:
            free = -1
        self.path = path
        self.free_bytes = free
        self.written = written
        self.failed_ns = time.time_ns()
        free_text = f"{free / 1e6:.1f} MB free" if free >= 0 else "free space unknown"
        super().__init__(
            cause.errno,
            f"cannot write {path}: {cause.strerror} ({free_text} on {path.parent}); recording "
            f"stopped; the file keeps at least {written} messages (igtflow inspect reads it); "
            "free space and restart the recorder to record again",
        )


class RecordingWriter:
    """Writes messages to an MCAP file at ``path``; ``close()`` writes the index.

    Without ``close()`` (a crash) every chunk older than ``flush_interval_s`` is already in the
    file: a background thread closes a chunk that has waited that long even when no message comes.

    When the file system refuses a write for lack of space (``NO_SPACE``), the writer stops for
    good: ``failed`` says why, later writes are counted in ``dropped`` and go nowhere, and the
    file keeps every chunk written before (a summary-less file, as after a crash, that
    ``recording_scan`` reads back). It does not retry when space comes back: a later chunk
    after a hole would read as a continuous recording; a new part says that there was a hole.
    """

    def __init__(
        self,
        path: str | Path,
        graph_yaml: str,
        metadata: dict[str, Any] | None = None,
        chunk_size: int = CHUNK_SIZE,
        flush_interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        self.path = Path(path)
        self._file: BinaryIO = self.path.open("wb")
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=CompressionType.ZSTD)
        self._writer.start(profile=PROFILE, library=f"igtflow {__version__}")
        self._channels: dict[str, int] = {}
        self._lock = threading.Lock()
        self._unflushed_since: float | None = None
        self._flush_interval_s = flush_interval_s
        self._closing = threading.Event()
        self.count = 0
        self.failed: DiskFull | None = None
        self.dropped = 0
        self.kept = 0  # messages surely in the file: those of the chunks flushed so far
        now = time.time_ns()
        self._writer.add_attachment(
            create_time=now,
            log_time=now,
            name=GRAPH_ATTACHMENT,
            media_type="text/yaml",
            data=graph_yaml.encode(),
        )
        info = {"igtflow_version": __version__, **(metadata or {})}
        self._writer.add_metadata(
            METADATA_NAME,
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in info.items()},
        )
        self._file.flush()  # a disk already full fails here, in the constructor
        self._handed = self._file.tell()  # bytes given to the file: what is not in a chunk
        self._flusher = threading.Thread(target=self._flush_old_chunks, daemon=True)
        self._flusher.start()

    def _flush_old_chunks(self) -> None:
        while not self._closing.wait(self._flush_interval_s / 4):
            with self._lock:
                since = self._unflushed_since
                if since is not None and time.monotonic() - since >= self._flush_interval_s:
                    self._guarded(self._flush_locked)

    def _flush_locked(self) -> None:
        self._writer.flush()  # closes the chunk, writes its index, flushes the file object
        self._unflushed_since = None
        self._flush_file()

    def _flush_file(self) -> None:
        self._file.flush()
        self._handed = self._file.tell()
        self.kept = self.count

    def _guarded(self, write: Callable[[], None]) -> bool:
        """Run ``write`` (lock held); on a full disk stop writing for good. False if stopped."""
        if self.failed is not None:
            return False
        try:
            write()
        except OSError as exc:
            if exc.errno not in NO_SPACE:
                raise
            self.failed = DiskFull(self.path, exc, self.kept)
            self._abandon()
            return False
        return True

    def _abandon(self) -> None:
        """Let go of the file without another write: the chunks already in it stay readable."""
        try:
            self._file.close()  # its flush fails again, but the descriptor is closed anyway
        except OSError:
            pass

    def _channel(self, topic: str, kind: str) -> int:
        channel_id = self._channels.get(topic)
        if channel_id is None:
            channel_id = self._writer.register_channel(
                topic=topic,
                message_encoding=MESSAGE_ENCODING,
                schema_id=0,
                metadata={"kind": kind},
            )
            self._channels[topic] = channel_id
        return channel_id

    def write(self, message: Message, log_time_ns: int | None = None) -> None:
        """Append ``message`` (received at ``log_time_ns``, default now), arrays inline."""
        # No placer: frames that came through shared memory are written as inline bytes.
        self._add(
            message.topic,
            message.KIND,
            pack_frames(wire.encode(message)),
            time.time_ns() if log_time_ns is None else log_time_ns,
            message.stamp_ns,
            message.seq & 0xFFFFFFFF,
        )

    def add_metadata(self, name: str, values: dict[str, Any]) -> None:
        """A further metadata record ``name`` (non-string values are stored as JSON)."""
        with self._lock:
            self._guarded(
                lambda: self._writer.add_metadata(
                    name, {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
                )
            )

    def write_raw(self, raw: RawMessage) -> None:
        """Append a message read by ``recording_scan.scan`` exactly as it was stored."""
        self._add(raw.topic, raw.kind, raw.data, raw.log_time_ns, raw.publish_time_ns, raw.sequence)

    def _add(
        self, topic: str, kind: str, data: bytes, log_time: int, publish_time: int, sequence: int
    ) -> None:
        with self._lock:
            if self.failed is not None:
                self.dropped += 1
                return
            added = self._guarded(
                lambda: self._writer.add_message(
                    channel_id=self._channel(topic, kind),
                    log_time=log_time,
                    data=data,
                    publish_time=publish_time,
                    sequence=sequence,
                )
            )
            if not added:
                self.dropped += 1
                return
            self.count += 1
            # the writer closed a full chunk: flush it, so that ``kept`` is true
            chunk_closed = self._file.tell() != self._handed
            if chunk_closed and not self._guarded(self._flush_file):
                return
            if self._unflushed_since is None:
                self._unflushed_since = time.monotonic()
            elif time.monotonic() - self._unflushed_since >= self._flush_interval_s:
                self._guarded(self._flush_locked)

    def close(self) -> None:
        """Flush the last chunk and write the summary and index; safe to call twice."""
        self._closing.set()
        with self._lock:
            if self._file.closed:
                return
            try:
                self._guarded(self._writer.finish)
            finally:
                if not self._file.closed:
                    self._file.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_messages(
    path: str | Path,
    topics: Iterable[str] | None = None,
    report: ScanReport | None = None,
) -> Iterator[tuple[str, int, Message]]:
    """``(topic, log_time_ns, message)`` for every readable message (of ``topics``), file order.

    Reads crashed and damaged files too (see ``recording_scan``). With a ``report`` the problems
    are collected there; without one, a file with problems raises ``RecordingError`` after the
    last readable message, so a caller never mistakes a partial read for a whole one.
    """
    own = report is None
    report = report if report is not None else ScanReport(str(path))
    for raw in scan(path, topics, report):
        if raw.encoding != MESSAGE_ENCODING:
            report.note(
                f"channel {raw.topic!r} is {raw.encoding!r}, not {MESSAGE_ENCODING!r}; skipped"
            )
            continue
        try:
            message = wire.decode(unpack_frames(raw.data))
        except wire.WireError as exc:
            report.note(f"message {raw.sequence} on {raw.topic!r} cannot be decoded: {exc}")
            continue
        yield raw.topic, raw.log_time_ns, message
    if own and report.problems:
        raise RecordingError(path, "; ".join(report.problems))


@dataclass(frozen=True)
class RecordingInfo:
    """What a replay needs to know about a recording before reading its messages."""

    graph_yaml: str | None
    metadata: dict[str, str]
    topics: dict[str, str]  # topic → message kind
    message_counts: dict[str, int]  # topic → messages
    graph_problem: str | None = None  # why ``graph_yaml`` is None although the file names one


def read_info(path: str | Path) -> RecordingInfo:
    """The graph, metadata and channels of the recording at ``path``.

    Uses the summary a closed file ends with; a file without one (crash) is scanned instead.
    """
    try:
        with Path(path).open("rb") as file:
            summary = make_reader(file).get_summary()
    except Exception:  # the mcap reader raises many types on files it cannot index
        summary = None
    if summary is None or summary.statistics is None:
        return _scanned_info(path)
    report = ScanReport(str(path))
    for _ in scan(path, topics=(), report=report):
        pass  # reads attachments and metadata; with no wanted topics nothing is yielded
    counts = summary.statistics.channel_message_counts
    return RecordingInfo(
        graph_yaml=_graph(report),
        metadata=report.metadata.get(METADATA_NAME, {}),
        topics={c.topic: c.metadata.get("kind", "") for c in summary.channels.values()},
        message_counts={c.topic: counts.get(i, 0) for i, c in summary.channels.items()},
        graph_problem=_graph_problem(report),
    )


def _scanned_info(path: str | Path) -> RecordingInfo:
    report = ScanReport(str(path))
    counts: dict[str, int] = {}
    for raw in scan(path, report=report):
        counts[raw.topic] = counts.get(raw.topic, 0) + 1
    return RecordingInfo(
        graph_yaml=_graph(report),
        metadata=report.metadata.get(METADATA_NAME, {}),
        topics=dict(report.channels),
        message_counts=counts,
        graph_problem=_graph_problem(report),
    )


def _graph(report: ScanReport) -> str | None:
    data = report.attachments.get(GRAPH_ATTACHMENT)
    return data.decode(errors="replace") if data is not None else None


def _graph_problem(report: ScanReport) -> str | None:
    if GRAPH_ATTACHMENT in report.attachments:
        return None
    if GRAPH_ATTACHMENT in report.bad_attachments:
        return f"the {GRAPH_ATTACHMENT} attachment is damaged (it fails its CRC)"
    if report.losses:
        return f"no readable {GRAPH_ATTACHMENT} attachment: the file is damaged where it was"
    return None


def recover(
    source: str | Path,
    target: str | Path,
    force: bool = False,
    seen: Callable[[RawMessage], None] | None = None,
) -> ScanReport:
    """Copy every readable message of ``source`` (crashed or damaged) into a closed, indexed file.

    The messages are copied byte for byte, with the graph and the metadata; the metadata also
    says where they came from, and what was lost (``recovery_losses``) or copied from a chunk
    whose CRC failed (``unverified_messages``). Returns what the scan of ``source`` found:
    ``report.losses`` and ``report.unverified`` say whether anything is missing or suspect.
    ``target`` appears only when the copy is complete; an existing one is replaced only with
    ``force`` (``target`` may be ``source`` itself). ``seen`` is called with each message copied.
    """
    report = ScanReport(str(source))
    messages = scan(source, report=report)
    first = next(messages, None)  # attachments and metadata precede the first message
    metadata: dict[str, Any] = dict(report.metadata.get(METADATA_NAME, {}))
    metadata["recovered_from"] = str(source)
    suspect: list[list[Any]] = []
    with (
        atomic_output(target, force) as partial,
        RecordingWriter(partial, _graph(report) or "", metadata) as writer,
    ):
        for raw in itertools.chain([first] if first is not None else [], messages):
            writer.write_raw(raw)
            if seen is not None:
                seen(raw)
            if not raw.verified:
                suspect.append([raw.topic, raw.sequence])
        for name, values in report.metadata.items():  # e.g. a restarted recorder's gap records
            if name not in (METADATA_NAME, RECOVERY_METADATA):
                writer.add_metadata(name, values)
        # the scan is over only now: what it lost goes in a second metadata record
        damage: dict[str, Any] = {}
        if report.losses:
            damage["recovery_losses"] = [loss.as_dict() for loss in report.losses]
        if suspect:
            damage["unverified_messages"] = suspect
        if damage:
            writer.add_metadata(RECOVERY_METADATA, damage)
    return report
