"""A sink that records every message it receives to an MCAP file (see ``recording.py``).

A run makes one recording, however often the recorder restarts: each restarted process writes
the next part (``NAME.part2.mcap``, …), recovers the part its predecessor left unclosed into a
closed, indexed file (in the background, so the recording goes on), and stores in its own part
where the restart left a hole (metadata ``igtflow.gap.<n>``), which it also reports to the run.

When the disk fills up (or a quota or file size limit is hit), the recorder raises a
``disk-full`` alarm (error: the file, the errno's words and the free space), keeps the file as
far as it got (readable like a crashed one), stops writing and goes on taking its inputs, so
the live graph never waits on it and it never crash-loops; a restart starts the next part.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from pathlib import Path
from typing import Any

from igtflow.stream.messages import Message
from igtflow.stream.node import GRAPH_ENV, WILDCARD, Node, Positive
from igtflow.stream.recording import GAP_METADATA, DiskFull, RecordingWriter, recover
from igtflow.stream.recording_scan import RawMessage

UNCLOSED = ("writing", "open")
DISK_FULL_CODE = "disk-full"
FULL_STATE = "stopped: disk full"  # a file state in the run summary


def _free_path(path: Path) -> Path:
    """``path``, or ``<stem>-<n><suffix>`` if taken: a restart must never overwrite a recording."""
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def part_path(first: Path, part: int) -> Path:
    """Where part ``part`` (2, 3, …) of the recording that starts at ``first`` goes."""
    return first.with_name(f"{first.stem}.part{part}{first.suffix}")


def close_part(path: Path) -> dict[str, tuple[int, int]]:
    """Rewrite a part a killed recorder left unclosed as a closed, indexed file (every readable
    message kept, byte for byte); returns per topic the seq and capture time of its last message.
    """
    last: dict[str, tuple[int, int]] = {}

    def note(raw: RawMessage) -> None:
        last[raw.topic] = (raw.sequence, raw.publish_time_ns)

    recover(path, path, force=True, seen=note)
    return last


class Record(Node):
    """Writes every input message, as on the wire, to an MCAP recording with the graph inside."""

    inputs = {WILDCARD: Message}
    reports_own_gaps = True  # the hole is what the file lacks, not what the process missed

    def setup(
        self, path: str, graph: str = "", flush_s: Positive = 0.1, skip: tuple[str, ...] = ()
    ) -> None:
        """
        path: MCAP file to write (an existing file is kept; the next free name-N.mcap is used)
        graph: graph YAML file to store in the recording (default: the copy the launcher wrote)
        flush_s: longest a message waits in memory before its chunk is written to the file,
            which bounds what a crash of the recorder loses
        skip: topics not to write, as globs (e.g. track/field: a dense float field a replay
            makes again); the recording's metadata lists them
        """
        self.skip = tuple(skip)
        self.skipped: dict[str, int] = {}
        graph_path = Path(graph) if graph else self._launcher_graph()
        graph_yaml = graph_path.read_text() if graph_path is not None else ""
        if not graph_yaml:
            self.log.warning("no graph YAML found; the recording will not say what produced it")
        metadata: dict[str, Any] = {"node_id": self.id, "started_ns": time.time_ns()}
        if self.skip:
            metadata["skipped_topics"] = list(self.skip)
        earlier = [Path(f["path"]) for f in self.earlier_files]
        if earlier:
            target = _free_path(part_path(earlier[0], len(earlier) + 1))
            metadata.update(part=len(earlier) + 1, continues=str(earlier[-1]))
        else:
            target = _free_path(Path(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        self.writer = RecordingWriter(target, graph_yaml, metadata, flush_interval_s=flush_s)
        self.full_reported = False
        self.report_file(str(target), "writing")
        self.log.info("recording to %s", target)
        # After a restart: the parts left open, what they kept, and each topic's first message.
        self.kept: dict[str, tuple[int, int]] | None = None
        self.firsts: dict[str, tuple[int, int]] = {}
        self.seen: set[str] = set()
        self.gaps_written = 0
        self.recovery: threading.Thread | None = None
        unclosed = [Path(f["path"]) for f in self.earlier_files if f["state"] in UNCLOSED]
        if self.restart_count:
            self.recovery = threading.Thread(
                target=self._recover, args=(unclosed,), name="recover", daemon=True
            )
            self.recovery.start()

    def _recover(self, parts: list[Path]) -> None:
        kept: dict[str, tuple[int, int]] = {}
        for part in parts:
            try:
                kept.update(close_part(part))
            except Exception as exc:  # a part we cannot read stays as it is, and says so
                self.log.error("could not recover %s: %s", part, exc)
                continue
            self.report_file(str(part), "recovered")
            self.log.info("recovered %s", part)
        self.kept = kept

    @staticmethod
    def _launcher_graph() -> Path | None:
        """The copy of the graph the launcher keeps for this run (``IGTFLOW_GRAPH``), if any."""
        candidate = Path(os.environ.get(GRAPH_ENV, ""))
        return candidate if candidate.name and candidate.is_file() else None

    def on_message(self, input_name: str, message: Message) -> None:
        if self.skip and any(fnmatch.fnmatchcase(message.topic, g) for g in self.skip):
            self.skipped[message.topic] = self.skipped.get(message.topic, 0) + 1
            return
        self.writer.write(message, time.time_ns())
        if self.writer.failed is not None and not self.full_reported:
            self._report_full(self.writer.failed)
        if self.recovery is not None:
            if message.topic not in self.seen:
                self.seen.add(message.topic)
                self.firsts[message.topic] = (message.seq, message.stamp_ns)
            if self.kept is not None:
                self._note_gaps()

    def _report_full(self, full: DiskFull) -> None:
        """Once: the alarm everybody sees (status table, overlay, Slicer) and the file's state."""
        self.full_reported = True
        self.alarm(
            DISK_FULL_CODE,
            str(full),
            "error",
            path=str(full.path),
            free_bytes=full.free_bytes,
            kept=full.written,
            failed_ns=full.failed_ns,
        )
        self.report_file(str(full.path), FULL_STATE)

    def _note_gaps(self) -> None:
        """Store and report the hole in each topic between the last message the earlier parts
        kept and the first one this part holds."""
        assert self.kept is not None
        for topic, (seq, stamp_ns) in list(self.firsts.items()):
            if topic not in self.kept:
                continue  # new since the restart (an alarm): nothing was lost before it
            last_seq, last_ns = self.kept.pop(topic)
            frames = max(0, seq - last_seq - 1)
            self.gaps_written += 1
            self.writer.add_metadata(
                f"{GAP_METADATA}{self.gaps_written}",
                {
                    "node": self.id,
                    "restart": self.restart_count,
                    "topic": topic,
                    "last_seq": last_seq,
                    "first_seq": seq,
                    "frames": frames,
                    "start_ns": last_ns,
                    "end_ns": stamp_ns,
                },
            )
            self.report_gap(topic, last_ns, stamp_ns, frames)
        self.firsts.clear()

    def teardown(self) -> None:
        if self.recovery is not None:
            self.recovery.join()
            self.recovery = None
            self._note_gaps()
        self.writer.close()
        if self.writer.failed is not None:
            if not self.full_reported:
                self._report_full(self.writer.failed)
            self.log.error(
                "disk full: %s keeps at least %d messages; %d not recorded",
                self.writer.path,
                self.writer.failed.written,
                self.writer.dropped,
            )
            return
        self.report_file(str(self.writer.path), "closed")
        self.log.info("recorded %d messages to %s", self.writer.count, self.writer.path)
        if self.skipped:
            self.log.info("not recorded, as asked (skip): %s", self.skipped)
