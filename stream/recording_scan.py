"""Reading recordings record by record, so that a crashed or damaged file gives back what it holds.

The ``mcap`` package's readers need the summary at the end of the file, which a recorder killed
with ``kill -9`` never wrote, and its stream reader stops at the first bad byte with an exception
from deep inside. Here every top-level record is read by its length prefix: a chunk that fails its
CRC or does not decompress is skipped and reported, and a file cut short ends the scan with a
problem that says where, keeping every message read before it.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import msgpack
from mcap.data_stream import ReadDataStream
from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.records import Attachment, Channel, Chunk, Metadata
from mcap.records import Message as McapMessage
from mcap.stream_reader import breakup_chunk

MAGIC = b"\x89MCAP0\r\n"
MESSAGE_ENCODING = "igtflow-msgpack"
_RECORD_HEAD = struct.Struct("<BQ")


class RecordingError(Exception):
    """A recording cannot be read (or only partly); the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass(frozen=True)
class RawMessage:
    """One recorded message as stored: wire frames packed by ``recording.pack_frames``."""

    topic: str
    kind: str
    encoding: str
    log_time_ns: int
    publish_time_ns: int
    sequence: int
    data: bytes


@dataclass
class ScanReport:
    """What a scan found besides the messages: file state, attachments, metadata, problems."""

    path: str
    complete: bool = False  # the footer was reached: the recorder closed the file
    messages: int = 0
    chunks: int = 0
    bad_chunks: int = 0
    attachments: dict[str, bytes] = field(default_factory=dict)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)  # topic → kind
    problems: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        self.problems.append(problem)


def scan(
    path: str | Path, topics: Iterable[str] | None = None, report: ScanReport | None = None
) -> Iterator[RawMessage]:
    """Every readable message of the recording at ``path`` (of ``topics``), in file order.

    Problems go to ``report`` (create one to see them); a file that is not MCAP at all raises
    ``RecordingError``.
    """
    report = report if report is not None else ScanReport(str(path))
    wanted = set(topics) if topics is not None else None
    try:
        with Path(path).open("rb") as file:
            yield from _scan_file(file, Path(path).stat().st_size, wanted, report)
    except OSError as exc:
        raise RecordingError(path, f"cannot read: {exc.strerror or exc}") from None


def _scan_file(
    file: BinaryIO, size: int, wanted: set[str] | None, report: ScanReport
) -> Iterator[RawMessage]:
    if file.read(len(MAGIC)) != MAGIC:
        raise RecordingError(report.path, "not an MCAP recording (it does not start with MCAP)")
    channels: dict[int, Channel] = {}
    for opcode, offset, body in _records(file, size, report):
        if opcode == Opcode.CHUNK:
            yield from _chunk_messages(body, offset, channels, wanted, report)
            continue
        try:
            raw = _top_level(opcode, body, channels, wanted, report)
        except (McapError, ValueError, struct.error, EOFError) as exc:
            report.note(f"record at byte {offset} is damaged ({exc}); skipped")
            continue
        if raw is not None:
            yield raw


def _top_level(
    opcode: int,
    body: bytes,
    channels: dict[int, Channel],
    wanted: set[str] | None,
    report: ScanReport,
) -> RawMessage | None:
    """Take in one record outside a chunk; a message comes back, everything else is noted."""
    if opcode == Opcode.CHANNEL:
        _add_channel(_parse(Channel, body), channels, report)
    elif opcode == Opcode.MESSAGE:
        message = McapMessage.read(ReadDataStream(io.BytesIO(body)), len(body))
        return _raw(message, channels, wanted, report)
    elif opcode == Opcode.ATTACHMENT:
        attachment = _parse(Attachment, body)
        report.attachments[attachment.name] = attachment.data
    elif opcode == Opcode.METADATA:
        metadata = _parse(Metadata, body)
        report.metadata[metadata.name] = dict(metadata.metadata)
    elif opcode == Opcode.FOOTER:
        report.complete = True
    return None


def _records(file: BinaryIO, size: int, report: ScanReport) -> Iterator[tuple[int, int, bytes]]:
    """``(opcode, offset, body)`` per top-level record until the footer or the end of the data."""
    while True:
        offset = file.tell()
        head = file.read(_RECORD_HEAD.size)
        if len(head) < _RECORD_HEAD.size:
            report.note(
                f"the file ends at byte {offset} without the MCAP footer: the recorder did not "
                "close it (crash or kill); everything before that point was read"
            )
            return
        opcode, length = _RECORD_HEAD.unpack(head)
        left = size - offset - _RECORD_HEAD.size
        if length > left:
            report.note(
                f"record at byte {offset} needs {length} bytes but only {left} follow: the file "
                "is cut short there (crash or copy); everything before it was read"
            )
            return
        yield opcode, offset, file.read(length)
        if opcode == Opcode.FOOTER:
            return


def _parse(record_type: type, body: bytes):  # type: ignore[no-untyped-def]
    return record_type.read(ReadDataStream(io.BytesIO(body)))


def _chunk_messages(
    body: bytes,
    offset: int,
    channels: dict[int, Channel],
    wanted: set[str] | None,
    report: ScanReport,
) -> Iterator[RawMessage]:
    report.chunks += 1
    if wanted is not None and not wanted:
        return  # no topic asked for (attachments and metadata only): nothing to decompress
    try:
        records = breakup_chunk(_parse(Chunk, body), validate_crc=True)
    except (McapError, ValueError, struct.error, EOFError) as exc:
        report.bad_chunks += 1
        report.note(f"chunk at byte {offset} is damaged ({exc}); its messages are skipped")
        return
    except Exception as exc:  # zstd/lz4 raise their own types for corrupt frames
        report.bad_chunks += 1
        report.note(
            f"chunk at byte {offset} does not decompress ({type(exc).__name__}: {exc}); "
            "its messages are skipped"
        )
        return
    for record in records:
        if isinstance(record, Channel):
            _add_channel(record, channels, report)
        elif isinstance(record, McapMessage):
            raw = _raw(record, channels, wanted, report)
            if raw is not None:
                yield raw


def _add_channel(channel: Channel, channels: dict[int, Channel], report: ScanReport) -> None:
    channels[channel.id] = channel
    report.channels[channel.topic] = channel.metadata.get("kind", "")


def _raw(
    message: McapMessage,
    channels: dict[int, Channel],
    wanted: set[str] | None,
    report: ScanReport,
) -> RawMessage | None:
    channel = channels.get(message.channel_id) or _channel_from_message(message, report)
    if channel is None:
        report.note(f"message on unknown channel {message.channel_id} skipped")
        return None
    channels[message.channel_id] = channel
    if wanted is not None and channel.topic not in wanted:
        return None
    report.messages += 1
    return RawMessage(
        topic=channel.topic,
        kind=channel.metadata.get("kind", ""),
        encoding=channel.message_encoding,
        log_time_ns=message.log_time,
        publish_time_ns=message.publish_time,
        sequence=message.sequence,
        data=message.data,
    )


def _channel_from_message(message: McapMessage, report: ScanReport) -> Channel | None:
    """The channel of a message whose Channel record was lost (it lives only in the first chunk
    that used it): every igtflow message names its own topic (frame 0) and kind (header).
    """
    try:
        data = memoryview(message.data)
        (count,) = struct.unpack_from("<I", data, 0)
        (topic_len,) = struct.unpack_from("<I", data, 4)
        topic = bytes(data[8 : 8 + topic_len]).decode()
        (header_len,) = struct.unpack_from("<I", data, 8 + topic_len)
        start = 12 + topic_len
        header = msgpack.unpackb(bytes(data[start : start + header_len]), raw=False)
        kind = header["kind"] if count >= 2 and isinstance(header, dict) else None
    except (struct.error, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(kind, str) or not topic:
        return None
    report.note(
        f"channel {message.channel_id} ({topic}) was described only in a damaged chunk; "
        "its later messages are read by the topic and kind they carry"
    )
    report.channels.setdefault(topic, kind)
    return Channel(
        id=message.channel_id,
        topic=topic,
        message_encoding=MESSAGE_ENCODING,
        metadata={"kind": kind},
        schema_id=0,
    )
