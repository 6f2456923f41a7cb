"""The two ends of a recording: the magic bytes, the footer (found even with garbage after it)
and the summary it points to, whose chunk index tells the walk where records start.

The summary is trusted only as far as its CRC and its own layout go; what it says is handed to
the scanner as hints, and the records themselves still have to prove them.
"""

from __future__ import annotations

import mmap
import zlib
from dataclasses import dataclass, field

from igtflow.stream.recording_scan.records import (
    ATTACHMENT,
    ATTACHMENT_INDEX,
    CHANNEL,
    CHUNK,
    CHUNK_INDEX,
    FOOTER,
    FOOTER_HEAD,
    FOOTER_SIZE,
    HEAD,
    HEADER,
    MAGIC,
    METADATA,
    METADATA_INDEX,
    STATISTICS,
    Channel,
    ChunkIndex,
    Cursor,
    Malformed,
    parse_record,
)
from igtflow.stream.recording_scan.report import GARBAGE_LOSS, Loss, RecordingError, ScanReport


@dataclass
class Summary:
    """What the footer and the summary of a file say, as far as they could be read."""

    footer_at: int | None = None  # where the records end, when the footer is found
    ok: bool = False  # the summary's CRC holds and it was read up to the footer
    channels: list[Channel] = field(default_factory=list)
    index: dict[int, ChunkIndex] = field(default_factory=dict)  # chunk offset → its index entry
    hints: dict[int, int] = field(default_factory=dict)  # offset → opcode said to start there


def check_magic(view: mmap.mmap, report: ScanReport) -> None:
    """Note damaged magic bytes on a file that is MCAP all the same; refuse any other file."""
    if view[: len(MAGIC)] == MAGIC:
        return
    opcode, length = HEAD.unpack_from(view, len(MAGIC))
    if opcode == HEADER and length < 1 << 16 and find_footer(view) is not None:
        report.note("the magic bytes at the start of the file are damaged")
        return
    raise RecordingError(report.path, "not an MCAP recording (it does not start with MCAP)")


def find_footer(view: mmap.mmap) -> int | None:
    """Offset of the footer: before the closing magic, or before garbage appended after it."""
    end = len(view)
    while True:
        at = view.rfind(MAGIC, len(MAGIC) + FOOTER_SIZE, end)
        if at < 0:
            return None
        if view[at - FOOTER_SIZE : at - 20] == FOOTER_HEAD:
            return at - FOOTER_SIZE
        end = at + len(MAGIC) - 1


def read_summary(view: mmap.mmap, report: ScanReport, all_topics: bool) -> Summary:
    """The footer and summary of ``view``; problems go to ``report``. With ``all_topics`` the
    summary's message count becomes ``report.expected_messages``.
    """
    summary = Summary()
    size = len(view)
    footer = find_footer(view)
    if footer is None:
        return summary
    summary.footer_at = footer
    tail = footer + FOOTER_SIZE + len(MAGIC)
    if tail < size:
        report.note(
            f"{size - tail} bytes of garbage follow the end of the recording "
            f"(bytes {tail}–{size}); they are ignored"
        )
        report.losses.append(Loss(tail, size, GARBAGE_LOSS, 0))
    start, _offsets, crc = parse_record(FOOTER, Cursor(view, footer + 9, footer + 29))
    if start == 0:
        return summary
    if not len(MAGIC) < start < footer:
        report.note(f"the footer is damaged: it puts the summary at byte {start}")
        return summary
    crc_holds = False
    if crc:
        with memoryview(view) as memory:
            crc_holds = zlib.crc32(memory[start : footer + 9 + 16]) == crc
        if not crc_holds:
            report.note(
                "the summary (index) fails its CRC: it is used only where the data confirm it"
            )
    pos, index, hints, stats = start, {}, {}, None
    while pos < footer:
        opcode, length = HEAD.unpack_from(view, pos) if pos + 9 <= footer else (0, 0)
        cur = Cursor(view, pos + 9, footer)
        try:
            value = parse_record(opcode, cur)
        except Malformed:
            value = None
        if value is None or cur.pos != pos + 9 + length:
            report.note(f"the summary is damaged at byte {pos}; read up to there")
            break
        if opcode == CHANNEL:
            summary.channels.append(value)
        elif opcode == CHUNK_INDEX:
            index[value.offset] = value
        elif opcode == ATTACHMENT_INDEX:
            hints[value] = ATTACHMENT
        elif opcode == METADATA_INDEX:
            hints[value] = METADATA
        elif opcode == STATISTICS:
            stats = value
        pos = cur.pos
    summary.index = {o: c for o, c in index.items() if len(MAGIC) <= o < start}
    hints.update(dict.fromkeys(summary.index, CHUNK))
    summary.hints = {h: op for h, op in hints.items() if len(MAGIC) <= h < start}
    summary.hints[start] = view[start]  # the summary's first record
    summary.ok = crc_holds and pos == footer
    if summary.ok and stats is not None and all_topics:
        report.expected_messages = stats[0]
    return summary
