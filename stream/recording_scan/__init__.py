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

The package: ``records`` (the MCAP record layout), ``integrity`` (CRCs, bounded decompression,
what an intact igtflow message looks like), ``summary`` (magic, footer and summary),
``scanner`` (the walk) and ``report`` (what a scan hands back).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable, Iterator
from pathlib import Path

from igtflow.stream.recording_scan.integrity import MAX_CHUNK_BYTES
from igtflow.stream.recording_scan.records import (
    ATTACHMENT,
    ATTACHMENT_INDEX,
    CHANNEL,
    CHUNK,
    CHUNK_INDEX,
    DATA_END,
    FOOTER,
    HEAD,
    HEADER,
    MAGIC,
    MESSAGE,
    MESSAGE_ENCODING,
    MESSAGE_INDEX,
    METADATA,
    METADATA_INDEX,
    SCHEMA,
    STATISTICS,
    SUMMARY_OFFSET,
)
from igtflow.stream.recording_scan.report import Loss, RawMessage, RecordingError, ScanReport
from igtflow.stream.recording_scan.scanner import Scanner

__all__ = [
    "ATTACHMENT",
    "ATTACHMENT_INDEX",
    "CHANNEL",
    "CHUNK",
    "CHUNK_INDEX",
    "DATA_END",
    "FOOTER",
    "HEADER",
    "MAGIC",
    "MAX_CHUNK_BYTES",
    "MESSAGE",
    "MESSAGE_ENCODING",
    "MESSAGE_INDEX",
    "METADATA",
    "METADATA_INDEX",
    "SCHEMA",
    "STATISTICS",
    "SUMMARY_OFFSET",
    "Loss",
    "RawMessage",
    "RecordingError",
    "ScanReport",
    "scan",
]


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
            if size < len(MAGIC) + HEAD.size:
                raise RecordingError(path, f"not an MCAP recording (only {size} bytes)")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
                yield from Scanner(view, report, wanted).messages()
    except OSError as exc:
        raise RecordingError(path, f"cannot read: {exc.strerror or exc}") from None
