"""Reading recordings record by record, so that a crashed or damaged file gives back what it holds.

The ``mcap`` package's readers stop at the first bad byte: its seeking reader needs an intact
footer and summary, its stream reader an intact chain of record lengths. Here no single field is
trusted on its own:

- The summary (found through the footer, even with garbage appended after it) is used when its
  CRC holds: its chunk index says where every chunk starts, and its message indexes how many
  messages of which topics each chunk held, so a loss can be counted and named.
- The records are walked from the start. Every record whose layout delimits itself (all but a
  top-level Message) is parsed by its contents, and its length field is only a cross-check: a
  flipped bit in a length costs nothing when the contents (a chunk's or attachment's CRC, or the
  next record's header) confirm where the record really ends.
- Where neither holds, the walk resynchronises on the next offset that the chunk index names or
  that holds a record proving itself: a known opcode, a length that fits, the same extent by its
  contents, and a CRC that matches (chunk, attachment) or a plausible record right after it.
- A chunk whose CRC fails is still opened: its messages that decode are handed out marked
  ``verified=False`` (the stock reader, which checks no CRC by default, would hand them out as
  good), the ones that do not decode are dropped, and the report says so.

Nothing allocates what a length field declares: every read is bounded by the file's size, and a
chunk is decompressed as a stream, so a damaged size costs only what the data really expands to.
Every byte range that could not be read is a ``Loss`` in the report, with the messages and topics
it held when the index says.
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

MAGIC = b"\x89MCAP0\r\n"
MESSAGE_ENCODING = "igtflow-msgpack"
MAX_CHUNK_BYTES = 1 << 27  # largest decompressed chunk (zstd's own default window limit)

_HEAD = struct.Struct("<BQ")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_FOOTER_HEAD = b"\x02" + (20).to_bytes(8, "little")
_FOOTER_SIZE = 9 + 20

HEADER, FOOTER, SCHEMA, CHANNEL, MESSAGE, CHUNK, MESSAGE_INDEX, CHUNK_INDEX = range(1, 9)
ATTACHMENT, ATTACHMENT_INDEX, STATISTICS, METADATA, METADATA_INDEX = range(9, 14)
SUMMARY_OFFSET, DATA_END = 14, 15
_OPCODE_NAMES = {
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
# A record header whose length fits in 40 bits (a terabyte): where a resynchronisation may land.
_CANDIDATE = re.compile(rb"(?=[\x01-\x0f\x80-\xff][\x00-\xff]{5}\x00\x00\x00)", re.DOTALL)


_GARBAGE = "garbage after the end"
_SUMMARY = "summary"
_HARMLESS = (_GARBAGE, _SUMMARY)


class RecordingError(Exception):
    """A recording cannot be read (or only partly); the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass(frozen=True)
class RawMessage:
    """One recorded message as stored: wire frames packed by ``recording.pack_frames``.

    ``verified`` is False for a message from a chunk whose CRC failed: it decodes, but its bytes
    may differ from what was recorded.
    """

    topic: str
    kind: str
    encoding: str
    log_time_ns: int
    publish_time_ns: int
    sequence: int
    data: bytes
    verified: bool = True


@dataclass
class Loss:
    """Bytes ``start`` to ``end`` (exclusive) that could not be read, and what they held."""

    start: int
    end: int
    what: str
    messages: int | None = None  # None: the index that would say is gone too
    topics: list[str] = field(default_factory=list)

    def describe(self) -> str:
        held = (
            "an unknown number of messages"
            if self.messages is None
            else f"{self.messages} message{'s' if self.messages != 1 else ''}"
        )
        topics = f" ({', '.join(self.topics)})" if self.topics else ""
        return f"bytes {self.start}–{self.end} ({self.what}) could not be read: lost {held}{topics}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "what": self.what,
            "messages": self.messages,
            "topics": self.topics,
        }


@dataclass
class ScanReport:
    """What a scan found besides the messages: file state, attachments, metadata, problems."""

    path: str
    complete: bool = False  # footer and closing magic are there: the recorder closed the file
    messages: int = 0
    chunks: int = 0
    bad_chunks: int = 0  # chunks lost, or read without a matching CRC
    unverified: int = 0  # messages handed out from chunks whose CRC failed
    expected_messages: int | None = None  # what the summary says the file holds, when intact
    attachments: dict[str, bytes] = field(default_factory=dict)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)  # topic → kind
    problems: list[str] = field(default_factory=list)
    losses: list[Loss] = field(default_factory=list)
    bad_attachments: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        self.problems.append(problem)

    @property
    def lost_anything(self) -> bool:
        """Whether data were lost or are suspect: messages, attachments, metadata (garbage after
        the end and a damaged index are problems too, but cost nothing a recovery keeps).
        """
        data_losses = [loss for loss in self.losses if loss.what not in _HARMLESS]
        return bool(data_losses or self.unverified or self.bad_attachments)

    @property
    def lost_messages(self) -> int | None:
        """Messages the file held that were not read (None: unknown, though bytes were lost)."""
        known = [loss.messages for loss in self.losses]
        counted = sum(n for n in known if n is not None)
        if self.expected_messages is not None:
            return max(self.expected_messages - self.messages, counted)
        return None if None in known else counted


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
            size = Path(path).stat().st_size
            if size < len(MAGIC) + _HEAD.size:
                raise RecordingError(path, f"not an MCAP recording (only {size} bytes)")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
                yield from _Scanner(view, report, wanted).messages()
    except OSError as exc:
        raise RecordingError(path, f"cannot read: {exc.strerror or exc}") from None


class _Bad(Exception):
    """The bytes at hand do not hold the record they should."""


class _Cursor:
    """Reads little-endian fields from ``buf`` between ``pos`` and ``end``, never past ``end``."""

    def __init__(self, buf: Any, pos: int, end: int) -> None:
        self.buf, self.pos, self.end = buf, pos, end

    def _advance(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.end:
            raise _Bad(f"field of {n} bytes runs past byte {self.end}")
        self.pos = start + n
        return start

    def u8(self) -> int:
        return self.buf[self._advance(1)]

    def u16(self) -> int:
        return _U16.unpack_from(self.buf, self._advance(2))[0]

    def u32(self) -> int:
        return _U32.unpack_from(self.buf, self._advance(4))[0]

    def u64(self) -> int:
        return _U64.unpack_from(self.buf, self._advance(8))[0]

    def take(self, n: int) -> bytes:
        start = self._advance(n)
        return bytes(self.buf[start : start + n])

    def text(self) -> str:
        try:
            return self.take(self.u32()).decode()
        except UnicodeDecodeError as exc:
            raise _Bad(f"string is not UTF-8: {exc}") from None


def _string_map(cur: _Cursor) -> dict[str, str]:
    size = cur.u32()
    end = cur.pos + size
    if end > cur.end:
        raise _Bad("map runs past its record")
    inner = _Cursor(cur.buf, cur.pos, end)
    values: dict[str, str] = {}
    while inner.pos < end:
        key = inner.text()
        values[key] = inner.text()
    cur.pos = end
    return values


def _id_map(cur: _Cursor) -> dict[int, int]:
    size = cur.u32()
    if size % 10 or cur.pos + size > cur.end:
        raise _Bad("map of ids is damaged")
    values: dict[int, int] = {}
    for _ in range(size // 10):
        key = cur.u16()
        values[key] = cur.u64()
    return values


@dataclass(frozen=True)
class _Channel:
    id: int
    topic: str
    encoding: str
    metadata: dict[str, str]


@dataclass
class _Chunk:
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
class _ChunkIndex:
    offset: int
    length: int
    message_index_offsets: dict[int, int]


@dataclass(frozen=True)
class _Attachment:
    name: str
    data: bytes
    crc_state: str


def _parse(opcode: int, cur: _Cursor) -> Any:
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
        return _Channel(channel_id, topic, encoding, _string_map(cur))
    if opcode == CHUNK:
        times = (cur.u64(), cur.u64())
        size, crc, compression = cur.u64(), cur.u32(), cur.text()
        length = cur.u64()
        start = cur._advance(length)
        return _Chunk(times, size, crc, compression, start, start + length)
    if opcode == MESSAGE_INDEX:
        channel_id, size = cur.u16(), cur.u32()
        if size % 16:
            raise _Bad("message index entries are 16 bytes each")
        cur._advance(size)
        return (channel_id, size // 16)
    if opcode == CHUNK_INDEX:
        cur.u64(), cur.u64()
        offset, length = cur.u64(), cur.u64()
        offsets = _id_map(cur)
        cur.u64(), cur.text(), cur.u64(), cur.u64()
        return _ChunkIndex(offset, length, offsets)
    if opcode == ATTACHMENT:
        start = cur.pos
        cur.u64(), cur.u64()
        name, _media = cur.text(), cur.text()
        data = cur.take(cur.u64())
        crc_end = cur.pos
        stored = cur.u32()
        with memoryview(cur.buf) as view:
            actual = zlib.crc32(view[start:crc_end])
        return _Attachment(name, data, _crc_state(stored, actual))
    if opcode == ATTACHMENT_INDEX:
        offset = cur.u64()
        cur.u64(), cur.u64(), cur.u64(), cur.u64(), cur.text(), cur.text()
        return offset
    if opcode == STATISTICS:
        count = cur.u64()
        cur.u16(), cur.u32(), cur.u32(), cur.u32(), cur.u32(), cur.u64(), cur.u64()
        return (count, _id_map(cur))
    if opcode == METADATA:
        return (cur.text(), _string_map(cur))
    if opcode == METADATA_INDEX:
        offset = cur.u64()
        cur.u64(), cur.text()
        return offset
    if opcode == SUMMARY_OFFSET:
        return (cur.u8(), cur.u64(), cur.u64())
    if opcode == DATA_END:
        return cur.u32()
    raise _Bad(f"opcode {opcode:#04x} has no layout of its own")


def _crc_state(stored: int, actual: int) -> str:
    """``ok``, ``none`` (no CRC written), ``field`` or ``bad``.

    ``field``: the stored CRC differs from the data's in one bit, or only in bytes that read
    zero. A damaged payload changes a CRC32 in about half its bits, so this is the CRC field
    itself that was hit and the data are intact (a false match has odds of about 2**-27).
    """
    if stored == 0:
        return "none"
    if stored == actual:
        return "ok"
    if (stored ^ actual).bit_count() == 1:
        return "field"
    pairs = zip(stored.to_bytes(4, "little"), actual.to_bytes(4, "little"), strict=True)
    if all(s in (a, 0) for s, a in pairs):
        return "field"
    return "bad"


def _decompress(compression: str, data: bytes) -> tuple[bytes, str]:
    """``(output, error)``: as much as decompresses, bounded by ``MAX_CHUNK_BYTES``."""
    if compression == "":
        return data, ""
    parts: list[bytes] = []
    total = 0
    try:
        if compression == "zstd":
            import zstandard

            decoder = zstandard.ZstdDecompressor(max_window_size=MAX_CHUNK_BYTES).decompressobj()
            for start in range(0, len(data), 1 << 16):
                part = decoder.decompress(data[start : start + (1 << 16)])
                parts.append(part)
                total += len(part)
                if total > MAX_CHUNK_BYTES:
                    return b"".join(parts), f"expands past {MAX_CHUNK_BYTES} bytes"
                if decoder.eof:
                    break
            if not decoder.eof:
                return b"".join(parts), "the compressed data end too early"
        elif compression == "lz4":
            import lz4.frame

            lz4_decoder = lz4.frame.LZ4FrameDecompressor()
            rest = data
            while not lz4_decoder.eof:
                part = lz4_decoder.decompress(rest, max_length=1 << 20)
                rest = lz4_decoder.unused_data if lz4_decoder.eof else b""
                if not part and not lz4_decoder.needs_input:
                    continue
                parts.append(part)
                total += len(part)
                if total > MAX_CHUNK_BYTES:
                    return b"".join(parts), f"expands past {MAX_CHUNK_BYTES} bytes"
                if lz4_decoder.needs_input:
                    return b"".join(parts), "the compressed data end too early"
        else:
            return b"", f"unknown compression {compression[:20]!r}"
    except Exception as exc:  # zstd and lz4 raise their own types for corrupt frames
        return b"".join(parts), f"{type(exc).__name__}: {exc}"
    return b"".join(parts), ""


def _chunk_record_at(data: bytes, pos: int) -> bool:
    """Whether a record inside a chunk can start at ``pos`` of its decompressed ``data``."""
    if pos == len(data):
        return True
    if pos + _HEAD.size > len(data):
        return False
    opcode, length = _HEAD.unpack_from(data, pos)
    return opcode in (SCHEMA, CHANNEL, MESSAGE) and pos + _HEAD.size + length <= len(data)


def _looks_intact(data: bytes, topic: str) -> bool:
    """Whether ``data`` holds an igtflow message of ``topic``: framing, topic and header."""
    try:
        (count,) = _U32.unpack_from(data, 0)
        offset, frames = 4, []
        for _ in range(min(count, 2)):
            (length,) = _U32.unpack_from(data, offset)
            frames.append(data[offset + 4 : offset + 4 + length])
            offset += 4 + length
        for _ in range(count - 2):
            (length,) = _U32.unpack_from(data, offset)
            offset += 4 + length
        if count < 2 or offset != len(data) or frames[0] != topic.encode():
            return False
        header = msgpack.unpackb(frames[1], raw=False)
    except Exception:  # any damage in the framing or the msgpack header: not intact
        return False
    return isinstance(header, dict) and header.get("v") == 1 and isinstance(header.get("kind"), str)


class _Scanner:
    """One pass over one file; see the module docstring for the strategy."""

    def __init__(self, view: mmap.mmap, report: ScanReport, wanted: set[str] | None) -> None:
        self.view = view
        self.size = len(view)
        self.report = report
        self.wanted = wanted
        self.channels: dict[int, _Channel] = {}
        self.doubtful_channels: set[int] = set()  # read from the chunk now open, which failed
        self.limit = self.size  # where the records end: the footer, once it is found
        self.footer_at: int | None = None
        self.summary_start: int | None = None
        self.summary_ok = False
        self.index: dict[int, _ChunkIndex] = {}  # chunk offset → its index entry
        self.hints: dict[int, int] = {}  # offset → opcode the summary says starts there
        self.hint_list: list[int] = []  # the same offsets, sorted
        self.data_end: int | None = None
        self.lost_chunk: Loss | None = None  # a lost chunk whose message indexes may follow
        self.lost_kept = 0  # messages of that chunk that were read all the same
        self.parsed_whole = True  # the last chunk's records all parsed

    # -- the walk ----------------------------------------------------------------------------

    def messages(self) -> Iterator[RawMessage]:
        self._check_magic()
        self._read_summary()
        pos = len(MAGIC)
        while pos < self.limit:
            record = self._record(pos)
            if record is None:
                nxt = self._resync(pos + 1)
                self._lose(pos, nxt)
                pos = nxt
                continue
            opcode, end, value = record
            if opcode == CHUNK:
                yield from self._chunk_messages(pos, end, value)
            elif opcode == MESSAGE:
                raw = self._top_level_message(value)
                if raw is not None:
                    yield raw
            else:
                self._take(opcode, pos, value)
            if opcode == DATA_END and self.summary_ok and self.footer_at is not None:
                end = self.footer_at  # the summary was read already, and it checks out
            if opcode == FOOTER:
                self._closing_magic(end)
                return
            pos = end
        if self.footer_at is not None:
            self.report.complete = True
        else:
            self.report.note(
                f"the file ends at byte {self.size} without the MCAP footer: the recorder did not "
                "close it (crash or kill) or the file was cut; everything readable was read"
            )
        self._count_losses()

    def _record(self, pos: int, strict: bool = False) -> tuple[int, int, Any] | None:
        """``(opcode, end, value)`` of the record at ``pos``, or None if none proves itself.

        ``strict`` (a resynchronisation candidate): the length field and the contents must agree.
        Otherwise a damaged length or opcode is overruled by contents that check out.
        """
        if pos + _HEAD.size > self.limit:
            return None
        opcode, length = _HEAD.unpack_from(self.view, pos)
        tries = [opcode] if opcode in _OPCODE_NAMES or opcode >= 0x80 else []
        if pos in self.index and CHUNK not in tries:
            tries.insert(0, CHUNK)  # the index says a chunk starts here: the opcode is damaged
        if not strict:
            tries += [op for op in (CHUNK, ATTACHMENT) if op not in tries]
        for op in tries:
            found = self._try(op, pos, length, strict, from_header=op == opcode)
            if found is not None:
                return found
        return None

    def _try(
        self, op: int, pos: int, length: int, strict: bool, from_header: bool
    ) -> tuple[int, int, Any] | None:
        outer_end = pos + _HEAD.size + length
        if op == MESSAGE or op >= 0x80:  # extent known only from the length field
            if not from_header or outer_end > self.limit or not self._plausible(outer_end):
                return None
            if op >= 0x80:
                return op, outer_end, None
            try:
                return op, outer_end, self._message(_Cursor(self.view, pos + 9, outer_end))
            except _Bad:
                return None
        cur = _Cursor(self.view, pos + _HEAD.size, self.limit)
        try:
            value = _parse(op, cur)
        except _Bad:
            return self._chunk_by_extent(pos, outer_end, from_header) if op == CHUNK else None
        inner_end = cur.pos
        agree = from_header and inner_end == outer_end
        if op == CHUNK and pos in self.index:  # the index's length is a second witness
            agree = agree or inner_end - pos == self.index[pos].length
        if op == CHUNK:
            self._open(value, need=not agree or strict or self.wanted != set())
            if value.failure or value.crc_state == "bad":
                # a damaged chunk whose extent two fields agree on is lost alone
                return (op, inner_end, value) if agree and not strict else None
            proven = value.records is not None and value.crc_state in ("ok", "field")
        elif op == ATTACHMENT:
            proven = value.crc_state in ("ok", "field")
        else:
            proven = False
        hinted = self.hints.get(pos) == op
        if not proven and self._spans_hint(pos, max(inner_end, outer_end if agree else 0)):
            return None  # a record the index places inside this one: the bytes lie
        if strict:
            ok = agree and (proven or hinted or self._plausible(inner_end))
            return (op, inner_end, value) if ok else None
        if agree or proven or hinted:
            if agree:
                return op, inner_end, value
            if op == CHUNK and from_header and self._plausible(outer_end) and proven:
                # the data's own length is hit, and the decompressor ignored the bytes it added
                self._note_length(op, pos, length, inner_end, field="data length")
                return op, outer_end, value
            self._note_length(op, pos, length, inner_end)
            return op, inner_end, value
        weak_ok = op not in (CHUNK, ATTACHMENT) and from_header
        if weak_ok and self._plausible(inner_end) and not self._plausible(outer_end):
            self._note_length(op, pos, length, inner_end)
            return op, inner_end, value
        return None

    def _chunk_by_extent(self, pos: int, outer_end: int, from_header: bool) -> Any:
        """The chunk at ``pos`` whose data-length field is damaged, bounded instead by its record
        length or its index entry; only if its CRC then holds.
        """
        ends = [outer_end] if from_header else []
        ends += [pos + self.index[pos].length] if pos in self.index else []
        for end in ends:
            if end > self.limit:
                continue
            cur = _Cursor(self.view, pos + _HEAD.size, end)
            try:
                times = (cur.u64(), cur.u64())
                size, crc, compression = cur.u64(), cur.u32(), cur.text()
                cur.u64()
            except _Bad:
                continue
            chunk = _Chunk(times, size, crc, compression, cur.pos, end)
            self._open(chunk, need=True)
            if chunk.records and chunk.crc_state == "ok" and not chunk.failure:
                self.report.note(
                    f"the chunk at byte {pos} has a damaged data-length field: read to the end "
                    "its record length gives, and its CRC holds"
                )
                return CHUNK, end, chunk
        return None

    def _note_length(self, op: int, pos: int, length: int, end: int, field: str = "header") -> None:
        self.report.note(
            f"the {_OPCODE_NAMES[op]} record at byte {pos} has a damaged {field} (it declares "
            f"{length} bytes, its contents {end - pos - _HEAD.size}): read by its contents"
        )

    def _spans_hint(self, pos: int, end: int) -> bool:
        at = bisect.bisect_right(self.hint_list, pos)
        return at < len(self.hint_list) and self.hint_list[at] < end

    def _plausible(self, pos: int) -> bool:
        """Whether a record can start at ``pos``: the end, a known offset, or a sane header."""
        if pos == self.limit or pos in self.hints:
            return True
        if pos + _HEAD.size > self.limit:
            return False
        opcode, length = _HEAD.unpack_from(self.view, pos)
        known = opcode in _OPCODE_NAMES or opcode >= 0x80
        return known and pos + _HEAD.size + length <= self.limit

    def _resync(self, start: int) -> int:
        """The first offset from ``start`` where a record proves itself, else the end."""
        hints = [h for h in self.hint_list if start <= h < self.limit]
        for match in _CANDIDATE.finditer(self.view, start, self.limit):  # type: ignore[call-overload]
            at = match.start()
            while hints and hints[0] < at:
                hint = hints.pop(0)
                if self._record(hint, strict=True) is not None:
                    return hint
            if self._record(at, strict=True) is not None:
                return at
        for hint in hints:
            if self._record(hint, strict=True) is not None:
                return hint
        return self.limit

    # -- records -----------------------------------------------------------------------------

    def _take(self, opcode: int, pos: int, value: Any) -> None:
        """Take in a record that is neither a chunk nor a message."""
        report = self.report
        if opcode == CHANNEL:
            self._add_channel(value)
        elif opcode == ATTACHMENT:
            if value.crc_state in ("ok", "none", "field"):
                report.attachments[value.name] = value.data
            else:
                report.bad_attachments.append(value.name)
                report.note(
                    f"attachment {value.name[:40]!r} at byte {pos} fails its CRC: its contents "
                    "are damaged and are not used"
                )
        elif opcode == METADATA:
            report.metadata[value[0]] = value[1]
        elif opcode == MESSAGE_INDEX and self.lost_chunk is not None and not self.index:
            channel = self.channels.get(value[0])
            loss = self.lost_chunk
            base = -self.lost_kept if loss.messages is None else loss.messages
            loss.messages = max(base + value[1], 0)
            if channel is not None and channel.topic not in loss.topics:
                loss.topics.append(channel.topic)
        elif opcode == DATA_END:
            self.data_end = pos
            if value:
                with memoryview(self.view) as view:
                    actual = zlib.crc32(view[:pos])
                if actual != value:
                    report.note(
                        f"the data section's CRC does not match: bytes before byte {pos} differ "
                        "from what was written"
                    )
        if opcode not in (MESSAGE_INDEX, CHUNK):
            self.lost_chunk = None

    def _message(self, cur: _Cursor) -> tuple[int, int, int, int, bytes]:
        return (cur.u16(), cur.u32(), cur.u64(), cur.u64(), cur.take(cur.end - cur.pos))

    def _top_level_message(self, value: tuple[int, int, int, int, bytes]) -> RawMessage | None:
        raw = self._raw(value, verified=False)
        if raw is not None:
            self.report.messages += 1
        return raw

    def _open(self, chunk: _Chunk, need: bool) -> None:
        """Decompress and check ``chunk`` (unless nothing is wanted and nothing needs proof)."""
        if chunk.records is not None or chunk.failure or not need:
            return
        data, error = _decompress(chunk.compression, self.view[chunk.data_start : chunk.data_end])
        if error:
            chunk.failure = f"does not decompress ({error[:120]})"
            chunk.records = data  # whatever came out before the damage
            return
        chunk.records = data
        chunk.crc_state = _crc_state(chunk.crc, zlib.crc32(data))

    def _chunk_messages(self, pos: int, end: int, chunk: _Chunk) -> Iterator[RawMessage]:
        report = self.report
        report.chunks += 1
        if self.wanted is not None and not self.wanted and not chunk.failure:
            return  # nothing asked for (attachments and metadata only)
        self._open(chunk, need=True)
        if chunk.failure or chunk.crc_state == "bad":
            report.bad_chunks += 1
        if chunk.crc_state == "field":
            report.note(f"the CRC field of the chunk at byte {pos} is damaged; its data check out")
        verified = chunk.crc_state in ("ok", "field")
        self.lost_chunk = None
        self.parsed_whole = True
        kept = dropped = 0
        log_times: list[int] = []
        for record in self._chunk_records(chunk, pos):
            if isinstance(record, _Channel):
                if verified or record.id not in self.channels:
                    self._add_channel(record, keep=verified)
                continue
            log_times.append(record[2])
            raw = self._raw(record, verified=verified)
            if raw is None:
                dropped += 1
                continue
            kept += 1
            if self.wanted is None or raw.topic in self.wanted:
                report.messages += 1
                report.unverified += not verified
                yield raw
        for channel_id in self.doubtful_channels:
            del self.channels[channel_id]
        self.doubtful_channels.clear()
        if not chunk.failure and verified:
            self._check_chunk_header(chunk, pos, log_times)
            return
        why = chunk.failure or "fails its CRC"
        if kept:
            report.note(
                f"the chunk at bytes {pos}–{end} {why}: {kept} messages that decode are kept "
                "but unverified (their bytes may differ from what was recorded)"
            )
        whole = self.parsed_whole and not chunk.failure
        loss = Loss(pos, end, f"chunk that {why}", dropped if whole else None)
        if pos in self.index:
            counted, loss.topics = self._indexed_contents([pos])
            if counted is not None:
                loss.messages = max(counted - kept, 0)
        if loss.messages == 0:
            return
        report.losses.append(loss)
        if loss.messages is None:
            self.lost_chunk, self.lost_kept = loss, kept

    def _check_chunk_header(self, chunk: _Chunk, pos: int, log_times: list[int]) -> None:
        """Its header's sizes and times against its contents (the CRC covers neither)."""
        times = (min(log_times), max(log_times)) if log_times else chunk.times
        if chunk.times != times or chunk.uncompressed_size != len(chunk.records or b""):
            self.report.note(
                f"the header of the chunk at byte {pos} is damaged (its times or size disagree "
                "with its contents); its messages check out and are kept"
            )

    def _chunk_records(self, chunk: _Chunk, pos: int) -> Iterator[Any]:
        """Channels and messages of ``chunk``; a malformed one is skipped by its length, a length
        that runs past the data ends the chunk.
        """
        data = chunk.records or b""
        cur = _Cursor(data, 0, len(data))
        while cur.pos < len(data):
            if data[cur.pos] == CHANNEL and cur.pos + 9 <= len(data):
                # a channel delimits itself: a flipped length field costs nothing
                content = _Cursor(data, cur.pos + 9, len(data))
                with contextlib.suppress(_Bad):
                    channel = _parse(CHANNEL, content)
                    if _chunk_record_at(data, content.pos):
                        cur.pos = content.pos
                        yield channel
                        continue
            try:
                opcode, length = cur.u8(), cur.u64()
            except _Bad:
                self.parsed_whole = False
                return
            try:
                body = _Cursor(data, cur._advance(length), cur.pos)
            except _Bad:
                self.parsed_whole = False
                if opcode == MESSAGE:  # a damaged length on the last record: the rest is it
                    with contextlib.suppress(_Bad):
                        yield self._message(_Cursor(data, cur.pos, len(data)))
                return
            try:
                record = self._message(body) if opcode == MESSAGE else None
            except _Bad:
                self.parsed_whole = False
                if chunk.crc_state in ("ok", "field"):
                    self.report.note(f"the chunk at byte {pos} holds a malformed record; skipped")
                continue
            if record is not None:
                yield record

    def _add_channel(self, channel: _Channel, keep: bool = True) -> None:
        """Use ``channel`` from now on; ``keep=False`` (a channel read from a chunk whose CRC
        failed): only until the current chunk ends, and not listed among the file's topics.
        """
        self.channels[channel.id] = channel
        if keep:
            self.report.channels[channel.topic] = channel.metadata.get("kind", "")
        else:
            self.doubtful_channels.add(channel.id)

    def _raw(self, value: tuple[int, int, int, int, bytes], verified: bool) -> RawMessage | None:
        channel_id, sequence, log_time, publish_time, data = value
        channel = self.channels.get(channel_id) or self._channel_from_message(channel_id, data)
        if channel is None:
            return None
        checked = verified or channel.encoding != MESSAGE_ENCODING
        if not checked and not _looks_intact(data, channel.topic):
            return None
        return RawMessage(
            topic=channel.topic,
            kind=channel.metadata.get("kind", ""),
            encoding=channel.encoding,
            log_time_ns=log_time,
            publish_time_ns=publish_time,
            sequence=sequence,
            data=data,
            verified=verified,
        )

    def _channel_from_message(self, channel_id: int, data: bytes) -> _Channel | None:
        """The channel of a message whose Channel record was lost (it lives only in the first
        chunk that used it): every igtflow message names its own topic (frame 0) and kind.
        """
        try:
            (topic_len,) = _U32.unpack_from(data, 4)
            topic = data[8 : 8 + topic_len].decode()
        except (struct.error, UnicodeDecodeError):
            return None
        if not topic or not _looks_intact(data, topic):
            return None
        header_len = _U32.unpack_from(data, 8 + topic_len)[0]
        start = 12 + topic_len
        kind = msgpack.unpackb(data[start : start + header_len], raw=False)["kind"]
        self.report.note(
            f"channel {channel_id} ({topic}) was described only in a damaged chunk; "
            "its later messages are read by the topic and kind they carry"
        )
        channel = _Channel(channel_id, topic, MESSAGE_ENCODING, {"kind": kind})
        self.channels[channel_id] = channel
        self.report.channels.setdefault(topic, kind)
        return channel

    # -- start, summary, end -----------------------------------------------------------------

    def _check_magic(self) -> None:
        if self.view[: len(MAGIC)] == MAGIC:
            return
        opcode, length = _HEAD.unpack_from(self.view, len(MAGIC))
        if opcode == HEADER and length < 1 << 16 and self._find_footer() is not None:
            self.report.note("the magic bytes at the start of the file are damaged")
            return
        raise RecordingError(
            self.report.path, "not an MCAP recording (it does not start with MCAP)"
        )

    def _find_footer(self) -> int | None:
        """Offset of the footer: before the closing magic, or before garbage appended after it."""
        end = self.size
        while True:
            at = self.view.rfind(MAGIC, len(MAGIC) + _FOOTER_SIZE, end)
            if at < 0:
                return None
            if self.view[at - _FOOTER_SIZE : at - 20] == _FOOTER_HEAD:
                return at - _FOOTER_SIZE
            end = at + len(MAGIC) - 1

    def _read_summary(self) -> None:
        footer = self._find_footer()
        if footer is None:
            return
        self.footer_at = self.limit = footer
        tail = footer + _FOOTER_SIZE + len(MAGIC)
        if tail < self.size:
            self.report.note(
                f"{self.size - tail} bytes of garbage follow the end of the recording "
                f"(bytes {tail}–{self.size}); they are ignored"
            )
            self.report.losses.append(Loss(tail, self.size, _GARBAGE, 0))
        start, _offsets, crc = _parse(FOOTER, _Cursor(self.view, footer + 9, footer + 29))
        if start == 0:
            return
        if not len(MAGIC) < start < footer:
            self.report.note(f"the footer is damaged: it puts the summary at byte {start}")
            return
        self.summary_start = start
        crc_holds = False
        if crc:
            with memoryview(self.view) as view:
                crc_holds = zlib.crc32(view[start : footer + 9 + 16]) == crc
            if not crc_holds:
                self.report.note(
                    "the summary (index) fails its CRC: it is used only where the data confirm it"
                )
        pos, index, stats = start, {}, None
        while pos < footer:
            opcode, length = _HEAD.unpack_from(self.view, pos) if pos + 9 <= footer else (0, 0)
            cur = _Cursor(self.view, pos + 9, footer)
            try:
                value = _parse(opcode, cur)
            except _Bad:
                value = None
            if value is None or cur.pos != pos + 9 + length:
                self.report.note(f"the summary is damaged at byte {pos}; read up to there")
                break
            if opcode == CHANNEL:
                self._add_channel(value)
            elif opcode == CHUNK_INDEX:
                index[value.offset] = value
            elif opcode == ATTACHMENT_INDEX:
                self.hints[value] = ATTACHMENT
            elif opcode == METADATA_INDEX:
                self.hints[value] = METADATA
            elif opcode == STATISTICS:
                stats = value
            pos = cur.pos
        self.index = {o: c for o, c in index.items() if len(MAGIC) <= o < start}
        self.hints.update(dict.fromkeys(self.index, CHUNK))
        self.hints = {h: op for h, op in self.hints.items() if len(MAGIC) <= h < start}
        self.hints[start] = self.view[start]  # the summary's first record
        self.hint_list = sorted(self.hints)
        self.summary_ok = crc_holds and pos == footer
        if self.summary_ok and stats is not None and self.wanted is None:
            self.report.expected_messages = stats[0]

    def _closing_magic(self, end: int) -> None:
        magic = self.view[end : end + len(MAGIC)]
        if magic == MAGIC:
            self.report.complete = True
            if self.footer_at is None and end + len(MAGIC) < self.size:
                self.report.note(f"bytes after {end + len(MAGIC)} follow the end; ignored")
        else:
            self.report.note(
                f"the closing magic after the footer is {'cut' if len(magic) < 8 else 'damaged'}"
                f" (the file is {self.size} bytes): it was cut or changed after it was closed"
            )
        self._count_losses()

    def _lose(self, start: int, end: int) -> None:
        """Bytes ``start``–``end`` hold no readable record."""
        self.lost_chunk = None
        in_summary = self.data_end is not None and start >= self.data_end
        if in_summary:
            what = _SUMMARY
        elif end >= self.size and start + _HEAD.size <= self.size:
            what = "record cut short by the end of the file"
        else:
            what = "unreadable bytes"
        loss = Loss(start, end, what)
        if in_summary:
            loss.messages = 0
        else:
            chunks = [o for o in self.index if start <= o < end]
            if chunks:
                loss.messages, loss.topics = self._indexed_contents(chunks)
            elif self.summary_ok:
                loss.messages = 0  # the index knows every chunk; none started here
        self.report.losses.append(loss)
        if end >= self.size and what.startswith("record cut"):
            self.report.note(
                f"the record at byte {start} is cut short by the end of the file: the file is "
                "cut there (crash or copy); everything before it was read"
            )

    def _indexed_contents(self, offsets: list[int]) -> tuple[int | None, list[str]]:
        """Messages and topics the chunks at ``offsets`` held, from their message indexes."""
        total: int | None = 0
        topics: set[str] = set()
        for offset in offsets:
            for channel_id, at in self.index[offset].message_index_offsets.items():
                channel = self.channels.get(channel_id)
                if channel is not None:
                    topics.add(channel.topic)
                try:
                    cur = _Cursor(self.view, at + 9, self.limit)
                    if self.view[at] != MESSAGE_INDEX:
                        raise _Bad("no message index there")
                    found_id, count = _parse(MESSAGE_INDEX, cur)
                    if found_id != channel_id:
                        raise _Bad("message index of another channel")
                except (_Bad, IndexError):
                    total = None
                    continue
                if total is not None:
                    total += count
        return total, sorted(topics)

    def _count_losses(self) -> None:
        for loss in self.report.losses:
            if loss.what != _GARBAGE:
                self.report.note(loss.describe())
        lost = self.report.lost_messages
        expected = self.report.expected_messages
        if expected is not None and lost:
            self.report.note(f"{lost} of the {expected} messages in the file could not be read")
