"""A source that plays a recording back into a graph, live-like or in lockstep.

Each recorded topic becomes an output. A topic ``probe/image`` is the output ``image`` of a
replay node whose id is ``probe``, so a replay can take the place of the node that recorded and
nothing downstream changes; topics of other nodes keep their producer as ``probe.image``.

Live (default): messages leave in the order and with the spacing the recorder received them,
divided by ``rate``; every capture stamp moves by one offset to the replay's clock, so ages and
the lag of a layer behind its frame mean downstream what they meant live. Lockstep: one
message per step, as fast as the graph handles it, with the recorded stamps, so that two replays
produce the same outputs.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from igtflow.stream.messages import KINDS, Message
from igtflow.stream.node import NonNegative, PermanentError, Source
from igtflow.stream.recording import read_info, read_messages
from igtflow.stream.recording_scan import RecordingError, ScanReport

LATE_REANCHOR_S = 0.25  # further behind than this (pause, overload): restart the clock here


def output_name(node_id: str, topic: str) -> str:
    """The replay output that carries recorded ``topic``."""
    producer, _, output = topic.partition("/")
    return output if producer == node_id else topic.replace("/", ".")


def select_topics(available: Sequence[str], patterns: Sequence[str], node_id: str) -> list[str]:
    """Recorded topics matching ``patterns`` (globs; default: the node's own, else all)."""
    if patterns:
        return [t for t in available if any(fnmatch.fnmatchcase(t, p) for p in patterns)]
    own = [t for t in available if t.startswith(f"{node_id}/")]
    return own or list(available)


class Replay(Source):
    """Plays recorded topics back with their timing (or in lockstep, as fast as the graph goes)."""

    rate_hz = 0.0  # paced by the recording, not by a fixed rate

    @classmethod
    def outputs_for(cls, node_id: str, params: dict[str, Any]) -> dict[str, type[Message]]:
        path = params.get("path")
        if not path:
            raise ValueError("needs 'path', the recording to replay")
        try:
            info = read_info(path)
        except RecordingError as exc:
            raise ValueError(str(exc)) from None
        patterns = list(params.get("topics") or ())
        topics = select_topics(sorted(info.topics), patterns, node_id)
        if not topics:
            raise ValueError(
                f"{path} has no topic matching {patterns}; it has {', '.join(sorted(info.topics))}"
            )
        return {output_name(node_id, t): KINDS.get(info.topics[t], Message) for t in topics}

    def setup(
        self,
        path: str,
        rate: Annotated[float, Field(ge=0.1, le=10)] = 1.0,
        loop: bool = False,
        start_s: NonNegative = 0.0,
        topics: tuple[str, ...] = (),
    ) -> None:
        """
        path: MCAP recording to play
        rate: speed factor, 0.1 to 10 (2 = twice as fast as recorded)
        loop: start again from the beginning at the end
        start_s: skip the first seconds of the recording
        topics: recorded topics to play, as globs ('probe/*'); default: this node's own, else all
        """
        if not 0.1 <= rate <= 10:
            raise ValueError(f"rate must be between 0.1 and 10, got {rate}")
        if start_s < 0:
            raise ValueError(f"start_s must be >= 0, got {start_s}")
        self.path = Path(path)
        self.rate = rate
        self.loop = loop
        self.start_s = start_s
        try:
            self.outputs = self.outputs_for(self.id, {"path": path, "topics": topics})
            recorded = sorted(read_info(path).topics)
        except (RecordingError, ValueError) as exc:  # outputs_for says RecordingError as ValueError
            raise PermanentError(f"{exc}; give the path of a readable recording") from None
        self.topics = {
            topic: output_name(self.id, topic)
            for topic in select_topics(recorded, list(topics), self.id)
        }
        self.played = 0
        self._pending: tuple[int, Message] | None = None
        self._messages = self._play()
        # (monotonic s, recorded receive time ns, wall clock ns) of the message the clock starts at
        self._anchor: tuple[float, int, int] | None = None

    def _play(self) -> Iterator[tuple[int, Message]]:
        """``(receive time, message)`` from ``start_s`` on, again and again if ``loop``."""
        while True:
            report = ScanReport(str(self.path))
            first: int | None = None
            sent = 0
            for _, received_ns, message in read_messages(self.path, self.topics, report):
                first = received_ns if first is None else first
                if received_ns - first < self.start_s * 1e9:
                    continue
                sent += 1
                yield received_ns, message
            for problem in report.problems:
                self.log.warning("%s: %s", self.path, problem)
            if not self.loop or not sent:
                return
            self._anchor = None
            self.log.info("%s: from the start again", self.path)

    def tick(self) -> float | None:
        item = self._pending or next(self._messages, None)
        self._pending = None
        if item is None:
            self.finished()
            return None
        received_ns, message = item
        if self.lockstep:
            self._send(message, message.stamp_ns)
            return 0.0
        # Messages leave in the order and with the spacing the recorder received them (a label
        # that came 400 ms after its frame comes 400 ms after it again), and every stamp moves
        # by the same amount, so the lag of a layer behind its frame is what it was live.
        now = time.monotonic()
        if self._anchor is None:
            self._anchor = (now, received_ns, time.time_ns())
        start, recorded_start, wall_start = self._anchor
        due = start + (received_ns - recorded_start) / 1e9 / self.rate
        if due > now:
            self._pending = item
            return due - now
        if now - due > LATE_REANCHOR_S:  # paused or overloaded: no burst of old frames
            self._anchor = (now, received_ns, time.time_ns())
            start, recorded_start, wall_start = self._anchor
        stamp = wall_start + round((message.stamp_ns - recorded_start) / self.rate)
        self._send(message, stamp)
        return 0.0

    def _send(self, message: Message, stamp_ns: int) -> None:
        self.played += 1
        self.emit(self.topics[message.topic], message.restamped(stamp_ns=stamp_ns, trace=[]))
