"""The walk over a recording's records, from its start to its footer, that hands out every
message it can read and accounts for every byte range it cannot (strategy: the package docstring).

Why one file of over 500 lines: the walk is one idea held in one :class:`Scanner`. Its parts (the
top-level walk, trying a record by its contents, resynchronising, opening a chunk and walking its
records, accounting for losses) all read and update the same state: where the records end, the
summary's chunk index and offset hints, the channels seen so far and which of them came from a
chunk that failed its CRC, and the lost chunk whose messages may still be read. Splitting them
into modules would pass that state around or spread one class over mixins, making each decision
harder to follow; the record layout, integrity checks, summary and report already live beside it.
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import re
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import msgpack

from igtflow.stream.recording_scan.integrity import crc_state, decompress, looks_intact
from igtflow.stream.recording_scan.records import (
    ATTACHMENT,
    CHANNEL,
    CHUNK,
    DATA_END,
    FOOTER,
    HEAD,
    MAGIC,
    MESSAGE,
    MESSAGE_ENCODING,
    MESSAGE_INDEX,
    METADATA,
    OPCODE_NAMES,
    U32,
    Channel,
    Chunk,
    ChunkIndex,
    Cursor,
    Malformed,
    chunk_record_at,
    parse_record,
)
from igtflow.stream.recording_scan.report import (
    GARBAGE_LOSS,
    SUMMARY_LOSS,
    Loss,
    RawMessage,
    ScanReport,
)
from igtflow.stream.recording_scan.summary import Summary, check_magic, read_summary

# A record header whose length fits in 40 bits (a terabyte): where a resynchronisation may land.
_CANDIDATE = re.compile(rb"(?=[\x01-\x0f\x80-\xff][\x00-\xff]{5}\x00\x00\x00)", re.DOTALL)


class Scanner:
    """One pass over one file; see the package docstring for the strategy."""

    def __init__(self, view: mmap.mmap, report: ScanReport, wanted: set[str] | None) -> None:
        self.view = view
        self.size = len(view)
        self.report = report
        self.wanted = wanted
        self.channels: dict[int, Channel] = {}
        self.doubtful_channels: set[int] = set()  # read from the chunk now open, which failed
        self.limit = self.size  # where the records end: the footer, once it is found
        self.footer_at: int | None = None
        self.summary_ok = False
        self.index: dict[int, ChunkIndex] = {}  # chunk offset → its index entry
        self.hints: dict[int, int] = {}  # offset → opcode the summary says starts there
        self.hint_list: list[int] = []  # the same offsets, sorted
        self.data_end: int | None = None
        self.lost_chunk: Loss | None = None  # a lost chunk whose message indexes may follow
        self.lost_kept = 0  # messages of that chunk that were read all the same
        self.parsed_whole = True  # the last chunk's records all parsed

    # -- the walk ----------------------------------------------------------------------------

    def messages(self) -> Iterator[RawMessage]:
        check_magic(self.view, self.report)
        self._use(read_summary(self.view, self.report, all_topics=self.wanted is None))
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

    def _use(self, summary: Summary) -> None:
        """Take in what the footer and summary say: where records end, where chunks start."""
        if summary.footer_at is not None:
            self.footer_at = self.limit = summary.footer_at
        for channel in summary.channels:
            self._add_channel(channel)
        self.index = summary.index
        self.hints = summary.hints
        self.hint_list = sorted(summary.hints)
        self.summary_ok = summary.ok

    def _record(self, pos: int, strict: bool = False) -> tuple[int, int, Any] | None:
        """``(opcode, end, value)`` of the record at ``pos``, or None if none proves itself.

        ``strict`` (a resynchronisation candidate): the length field and the contents must agree.
        Otherwise a damaged length or opcode is overruled by contents that check out.
        """
        if pos + HEAD.size > self.limit:
            return None
        opcode, length = HEAD.unpack_from(self.view, pos)
        tries = [opcode] if opcode in OPCODE_NAMES or opcode >= 0x80 else []
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
        outer_end = pos + HEAD.size + length
        if op == MESSAGE or op >= 0x80:  # extent known only from the length field
            if not from_header or outer_end > self.limit or not self._plausible(outer_end):
                return None
            if op >= 0x80:
                return op, outer_end, None
            try:
                return op, outer_end, self._message(Cursor(self.view, pos + 9, outer_end))
            except Malformed:
                return None
        cur = Cursor(self.view, pos + HEAD.size, self.limit)
        try:
            value = parse_record(op, cur)
        except Malformed:
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
            cur = Cursor(self.view, pos + HEAD.size, end)
            try:
                times = (cur.u64(), cur.u64())
                size, crc, compression = cur.u64(), cur.u32(), cur.text()
                cur.u64()
            except Malformed:
                continue
            chunk = Chunk(times, size, crc, compression, cur.pos, end)
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
            f"the {OPCODE_NAMES[op]} record at byte {pos} has a damaged {field} (it declares "
            f"{length} bytes, its contents {end - pos - HEAD.size}): read by its contents"
        )

    def _spans_hint(self, pos: int, end: int) -> bool:
        at = bisect.bisect_right(self.hint_list, pos)
        return at < len(self.hint_list) and self.hint_list[at] < end

    def _plausible(self, pos: int) -> bool:
        """Whether a record can start at ``pos``: the end, a known offset, or a sane header."""
        if pos == self.limit or pos in self.hints:
            return True
        if pos + HEAD.size > self.limit:
            return False
        opcode, length = HEAD.unpack_from(self.view, pos)
        known = opcode in OPCODE_NAMES or opcode >= 0x80
        return known and pos + HEAD.size + length <= self.limit

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

    def _message(self, cur: Cursor) -> tuple[int, int, int, int, bytes]:
        return (cur.u16(), cur.u32(), cur.u64(), cur.u64(), cur.take(cur.end - cur.pos))

    def _top_level_message(self, value: tuple[int, int, int, int, bytes]) -> RawMessage | None:
        raw = self._raw(value, verified=False)
        if raw is not None:
            self.report.messages += 1
        return raw

    def _open(self, chunk: Chunk, need: bool) -> None:
        """Decompress and check ``chunk`` (unless nothing is wanted and nothing needs proof)."""
        if chunk.records is not None or chunk.failure or not need:
            return
        data, error = decompress(chunk.compression, self.view[chunk.data_start : chunk.data_end])
        if error:
            chunk.failure = f"does not decompress ({error[:120]})"
            chunk.records = data  # whatever came out before the damage
            return
        chunk.records = data
        chunk.crc_state = crc_state(chunk.crc, zlib.crc32(data))

    def _chunk_messages(self, pos: int, end: int, chunk: Chunk) -> Iterator[RawMessage]:
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
            if isinstance(record, Channel):
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

    def _check_chunk_header(self, chunk: Chunk, pos: int, log_times: list[int]) -> None:
        """Its header's sizes and times against its contents (the CRC covers neither)."""
        times = (min(log_times), max(log_times)) if log_times else chunk.times
        if chunk.times != times or chunk.uncompressed_size != len(chunk.records or b""):
            self.report.note(
                f"the header of the chunk at byte {pos} is damaged (its times or size disagree "
                "with its contents); its messages check out and are kept"
            )

    def _chunk_records(self, chunk: Chunk, pos: int) -> Iterator[Any]:
        """Channels and messages of ``chunk``; a malformed one is skipped by its length, a length
        that runs past the data ends the chunk.
        """
        data = chunk.records or b""
        cur = Cursor(data, 0, len(data))
        while cur.pos < len(data):
            if data[cur.pos] == CHANNEL and cur.pos + 9 <= len(data):
                # a channel delimits itself: a flipped length field costs nothing
                content = Cursor(data, cur.pos + 9, len(data))
                with contextlib.suppress(Malformed):
                    channel = parse_record(CHANNEL, content)
                    if chunk_record_at(data, content.pos):
                        cur.pos = content.pos
                        yield channel
                        continue
            try:
                opcode, length = cur.u8(), cur.u64()
            except Malformed:
                self.parsed_whole = False
                return
            try:
                body = Cursor(data, cur._advance(length), cur.pos)
            except Malformed:
                self.parsed_whole = False
                if opcode == MESSAGE:  # a damaged length on the last record: the rest is it
                    with contextlib.suppress(Malformed):
                        yield self._message(Cursor(data, cur.pos, len(data)))
                return
            try:
                record = self._message(body) if opcode == MESSAGE else None
            except Malformed:
                self.parsed_whole = False
                if chunk.crc_state in ("ok", "field"):
                    self.report.note(f"the chunk at byte {pos} holds a malformed record; skipped")
                continue
            if record is not None:
                yield record

    def _add_channel(self, channel: Channel, keep: bool = True) -> None:
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
        if not checked and not looks_intact(data, channel.topic):
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

    def _channel_from_message(self, channel_id: int, data: bytes) -> Channel | None:
        """The channel of a message whose Channel record was lost (it lives only in the first
        chunk that used it): every igtflow message names its own topic (frame 0) and kind.
        """
        try:
            (topic_len,) = U32.unpack_from(data, 4)
            topic = data[8 : 8 + topic_len].decode()
        except (struct.error, UnicodeDecodeError):
            return None
        if not topic or not looks_intact(data, topic):
            return None
        header_len = U32.unpack_from(data, 8 + topic_len)[0]
        start = 12 + topic_len
        kind = msgpack.unpackb(data[start : start + header_len], raw=False)["kind"]
        self.report.note(
            f"channel {channel_id} ({topic}) was described only in a damaged chunk; "
            "its later messages are read by the topic and kind they carry"
        )
        channel = Channel(channel_id, topic, MESSAGE_ENCODING, {"kind": kind})
        self.channels[channel_id] = channel
        self.report.channels.setdefault(topic, kind)
        return channel

    # -- the end --------------------------------------------------------------------------

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
            what = SUMMARY_LOSS
        elif end >= self.size and start + HEAD.size <= self.size:
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
                    cur = Cursor(self.view, at + 9, self.limit)
                    if self.view[at] != MESSAGE_INDEX:
                        raise Malformed("no message index there")
                    found_id, count = parse_record(MESSAGE_INDEX, cur)
                    if found_id != channel_id:
                        raise Malformed("message index of another channel")
                except (Malformed, IndexError):
                    total = None
                    continue
                if total is not None:
                    total += count
        return total, sorted(topics)

    def _count_losses(self) -> None:
        for loss in self.report.losses:
            if loss.what != GARBAGE_LOSS:
                self.report.note(loss.describe())
        lost = self.report.lost_messages
        expected = self.report.expected_messages
        if expected is not None and lost:
            self.report.note(f"{lost} of the {expected} messages in the file could not be read")
