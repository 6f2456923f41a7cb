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

Small chunks bound what a crash (kill -9) loses to the chunk being filled.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from igtflow.stream import wire
from igtflow.stream.messages import Message
from mcap.reader import make_reader
from mcap.writer import CompressionType, Writer

from igtflow import __version__

MESSAGE_ENCODING = "igtflow-msgpack"
PROFILE = "igtflow"
GRAPH_ATTACHMENT = "graph.yaml"
METADATA_NAME = "igtflow"
CHUNK_SIZE = 1024 * 1024

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


class RecordingWriter:
    """Writes messages to an MCAP file at ``path``; ``close()`` writes the index (a must)."""

    def __init__(
        self,
        path: str | Path,
        graph_yaml: str,
        metadata: dict[str, Any] | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.path = Path(path)
        self._file: BinaryIO = self.path.open("wb")
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=CompressionType.ZSTD)
        self._writer.start(profile=PROFILE, library=f"igtflow {__version__}")
        self._channels: dict[str, int] = {}
        self.count = 0
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
        data = pack_frames(wire.encode(message))
        self._writer.add_message(
            channel_id=self._channel(message.topic, message.KIND),
            log_time=time.time_ns() if log_time_ns is None else log_time_ns,
            data=data,
            publish_time=message.stamp_ns,
            sequence=message.seq & 0xFFFFFFFF,
        )
        self.count += 1

    def close(self) -> None:
        """Flush the last chunk and write the summary and index; safe to call twice."""
        if self._file.closed:
            return
        try:
            self._writer.finish()
        finally:
            self._file.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_messages(
    path: str | Path, topics: Iterable[str] | None = None
) -> Iterator[tuple[str, int, Message]]:
    """``(topic, log_time_ns, message)`` for every recorded message (of ``topics``), file order.

    Arrays are inline and read-only. Raises ``wire.WireError`` for a message that is not
    ``igtflow-msgpack`` or cannot be decoded.
    """
    with Path(path).open("rb") as file:
        reader = make_reader(file)
        wanted = list(topics) if topics is not None else None
        for _, channel, record in reader.iter_messages(topics=wanted, log_time_order=False):
            if channel.message_encoding != MESSAGE_ENCODING:
                raise wire.WireError(
                    f"{path}: channel {channel.topic!r} is {channel.message_encoding!r}, "
                    f"not {MESSAGE_ENCODING!r}"
                )
            message = wire.decode(unpack_frames(record.data))
            yield channel.topic, record.log_time, message


@dataclass(frozen=True)
class RecordingInfo:
    """What a replay needs to know about a recording before reading its messages."""

    graph_yaml: str | None
    metadata: dict[str, str]
    topics: dict[str, str]  # topic → message kind
    message_counts: dict[str, int]  # topic → messages


def read_info(path: str | Path) -> RecordingInfo:
    """The graph, metadata and channels of the recording at ``path``."""
    with Path(path).open("rb") as file:
        reader = make_reader(file)
        graph = next(
            (a.data.decode() for a in reader.iter_attachments() if a.name == GRAPH_ATTACHMENT),
            None,
        )
        metadata: dict[str, str] = {}
        for record in reader.iter_metadata():
            if record.name == METADATA_NAME:
                metadata = dict(record.metadata)
        summary = reader.get_summary()
        topics: dict[str, str] = {}
        counts: dict[str, int] = {}
        if summary is not None:
            for channel_id, channel in summary.channels.items():
                topics[channel.topic] = channel.metadata.get("kind", "")
                if summary.statistics is not None:
                    counts[channel.topic] = summary.statistics.channel_message_counts.get(
                        channel_id, 0
                    )
    return RecordingInfo(graph, metadata, topics, counts)
