"""The MCAP record layout, read field by field and never past the end its caller allows.

Each record is parsed by its own layout, so its length field can be checked against where its
contents end instead of being trusted (see the package docstring for why).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

from igtflow.stream.recording_scan.integrity import crc_state

MAGIC = b"\x89MCAP0\r\n"
MESSAGE_ENCODING = "igtflow-msgpack"

HEAD = struct.Struct("<BQ")
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
FOOTER_HEAD = b"\x02" + (20).to_bytes(8, "little")
FOOTER_SIZE = 9 + 20

HEADER, FOOTER, SCHEMA, CHANNEL, MESSAGE, CHUNK, MESSAGE_INDEX, CHUNK_INDEX = range(1, 9)
ATTACHMENT, ATTACHMENT_INDEX, STATISTICS, METADATA, METADATA_INDEX = range(9, 14)
SUMMARY_OFFSET, DATA_END = 14, 15
OPCODE_NAMES = {
    HEADER: "header",
    FOOTER: "footer",
    SCHEMA: "schema",
    CHANNEL: "channel",
    MESSAGE: "message",
    CHUNK: "chunk",
    MESSAGE_INDEX: "message index",
    CHUNK_INDEX: "chunk index",
    ATTACHMENT: "attachment",
    ATTACHMENT_INDEX: "attachment index",
    STATISTICS: "statistics",
    METADATA: "metadata",
    METADATA_INDEX: "metadata index",
    SUMMARY_OFFSET: "summary offset",
    DATA_END: "data end",
}


class Malformed(Exception):
    """The bytes at hand do not hold the record they should."""


class Cursor:
    """Reads little-endian fields from ``buf`` between ``pos`` and ``end``, never past ``end``."""

    def __init__(self, buf: Any, pos: int, end: int) -> None:
        self.buf, self.pos, self.end = buf, pos, end

    def _advance(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.end:
            raise Malformed(f"field of {n} bytes runs past byte {self.end}")
        self.pos = start + n
        return start

    def u8(self) -> int:
        return self.buf[self._advance(1)]

    def u16(self) -> int:
        return U16.unpack_from(self.buf, self._advance(2))[0]

    def u32(self) -> int:
        return U32.unpack_from(self.buf, self._advance(4))[0]

    def u64(self) -> int:
        return U64.unpack_from(self.buf, self._advance(8))[0]

    def take(self, n: int) -> bytes:
        start = self._advance(n)
        return bytes(self.buf[start : start + n])

    def text(self) -> str:
        try:
            return self.take(self.u32()).decode()
        except UnicodeDecodeError as exc:
            raise Malformed(f"string is not UTF-8: {exc}") from None


def string_map(cur: Cursor) -> dict[str, str]:
    size = cur.u32()
    end = cur.pos + size
    if end > cur.end:
        raise Malformed("map runs past its record")
    inner = Cursor(cur.buf, cur.pos, end)
    values: dict[str, str] = {}
    while inner.pos < end:
        key = inner.text()
        values[key] = inner.text()
    cur.pos = end
    return values


def id_map(cur: Cursor) -> dict[int, int]:
    size = cur.u32()
    if size % 10 or cur.pos + size > cur.end:
        raise Malformed("map of ids is damaged")
    values: dict[int, int] = {}
    for _ in range(size // 10):
        key = cur.u16()
        values[key] = cur.u64()
    return values


@dataclass(frozen=True)
class Channel:
    id: int
    topic: str
    encoding: str
    metadata: dict[str, str]


@dataclass
class Chunk:
    times: tuple[int, int]  # log time of its first and last message, as its header says
    uncompressed_size: int
    crc: int
    compression: str
    data_start: int
    data_end: int
    records: bytes | None = None  # decompressed, once opened
    crc_state: str = ""  # "ok", "none" (no CRC written), "field" (the CRC field is hit), "bad"
    failure: str = ""  # why it could not be opened at all


@dataclass(frozen=True)
class ChunkIndex:
    offset: int
    length: int
    message_index_offsets: dict[int, int]


@dataclass(frozen=True)
class Attachment:
    name: str
    data: bytes
    crc_state: str


def parse_record(opcode: int, cur: Cursor) -> Any:
    """The record ``opcode`` whose body starts at ``cur.pos``, parsed by its own layout."""
    if opcode == HEADER:
        return (cur.text(), cur.text())
    if opcode == FOOTER:
        return (cur.u64(), cur.u64(), cur.u32())
    if opcode == SCHEMA:
        cur.u16(), cur.text(), cur.text()
        return cur.take(cur.u32())
    if opcode == CHANNEL:
        channel_id, _schema = cur.u16(), cur.u16()
        topic, encoding = cur.text(), cur.text()
        return Channel(channel_id, topic, encoding, string_map(cur))
    if opcode == CHUNK:
        times = (cur.u64(), cur.u64())
        size, crc, compression = cur.u64(), cur.u32(), cur.text()
        length = cur.u64()
        start = cur._advance(length)
        return Chunk(times, size, crc, compression, start, start + length)
    if opcode == MESSAGE_INDEX:
        channel_id, size = cur.u16(), cur.u32()
        if size % 16:
            raise Malformed("message index entries are 16 bytes each")
        cur._advance(size)
        return (channel_id, size // 16)
    if opcode == CHUNK_INDEX:
        cur.u64(), cur.u64()
        offset, length = cur.u64(), cur.u64()
        offsets = id_map(cur)
        cur.u64(), cur.text(), cur.u64(), cur.u64()
        return ChunkIndex(offset, length, offsets)
    if opcode == ATTACHMENT:
        start = cur.pos
        cur.u64(), cur.u64()
        name, _media = cur.text(), cur.text()
        data = cur.take(cur.u64())
        crc_end = cur.pos
        stored = cur.u32()
        with memoryview(cur.buf) as view:
            actual = zlib.crc32(view[start:crc_end])
        return Attachment(name, data, crc_state(stored, actual))
    if opcode == ATTACHMENT_INDEX:
        offset = cur.u64()
        cur.u64(), cur.u64(), cur.u64(), cur.u64(), cur.text(), cur.text()
        return offset
    if opcode == STATISTICS:
        count = cur.u64()
        cur.u16(), cur.u32(), cur.u32(), cur.u32(), cur.u32(), cur.u64(), cur.u64()
        return (count, id_map(cur))
    if opcode == METADATA:
        return (cur.text(), string_map(cur))
    if opcode == METADATA_INDEX:
        offset = cur.u64()
        cur.u64(), cur.text()
        return offset
    if opcode == SUMMARY_OFFSET:
        return (cur.u8(), cur.u64(), cur.u64())
    if opcode == DATA_END:
        return cur.u32()
    raise Malformed(f"opcode {opcode:#04x} has no layout of its own")


def chunk_record_at(data: bytes, pos: int) -> bool:
    """Whether a record inside a chunk can start at ``pos`` of its decompressed ``data``."""
    if pos == len(data):
        return True
    if pos + HEAD.size > len(data):
        return False
    opcode, length = HEAD.unpack_from(data, pos)
    return opcode in (SCHEMA, CHANNEL, MESSAGE) and pos + HEAD.size + length <= len(data)
