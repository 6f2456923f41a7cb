"""What a scan hands back besides the messages: each message as stored, what was lost where, and
the problems found, in words a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What a Loss held; losing these costs nothing a recovery keeps.
GARBAGE_LOSS = "garbage after the end"
SUMMARY_LOSS = "summary"
HARMLESS_LOSSES = (GARBAGE_LOSS, SUMMARY_LOSS)


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
        data_losses = [loss for loss in self.losses if loss.what not in HARMLESS_LOSSES]
        return bool(data_losses or self.unverified or self.bad_attachments)

    @property
    def lost_messages(self) -> int | None:
        """Messages the file held that were not read (None: unknown, though bytes were lost)."""
        known = [loss.messages for loss in self.losses]
        counted = sum(n for n in known if n is not None)
        if self.expected_messages is not None:
            return max(self.expected_messages - self.messages, counted)
        return None if None in known else counted
