"""The frozen-source watchdog: a source that sends the same frame again and again (a stuck
capture card) or no frame at all is flagged within two frame periods, for every source.

It lives in the runtime, beside ``emit``, so that no source has to remember it. For each Image
output of a :class:`~igtflow.stream.node.Source` it keeps a fingerprint of the last frame (a
CRC of a strided subsample of the pixels, ~4 k samples: about 10 µs at p50 on a 1024×1024
frame, 40 times less than a CRC of every byte; ``igtflow bench frozen`` measures it). A frame
whose fingerprint equals the last one's is *frozen*: it is sent with ``meta['frozen']`` naming
the topic (downstream nodes keep the meta, the overlay draws a ``FROZEN SOURCE`` banner) and a
``frozen-source`` alarm (error) goes out once: the status table, the node's ``status`` output
(OpenIGTLink STATUS to Slicer where the graph wires it). No frame two typical periods after
the first missing one was due (the median of the recent intervals, so a 5 Hz source is not
judged by a 30 Hz clock; one skipped frame is not a fault) raises the same alarm. A changed
frame clears it (``ok``). A source whose frames may rightly repeat (a fixed test scene) sets
``repeats_frames``.

Sensor noise makes two real captures differ in almost every pixel, so an exact match of ~4 k
samples is a stuck device, not a still scene. Label maps and fields are not watched: a
network's output may rightly repeat. Off in lockstep (offline replay) and while paused.
"""

from __future__ import annotations

import statistics
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from igtflow.stream.messages import Image

FROZEN_CODE = "frozen-source"
FROZEN_META = "frozen"  # meta key of a repeated frame: the topic that froze
SAMPLES = 4096  # pixels fingerprinted per frame
WATCHED_MODALITIES = ("US", "XA", "RF")
# periods since the last frame before a source counts as frozen: the next was due after one,
# and two more are the watchdog's limit
SILENT_PERIODS = 3.0
INTERVALS = 16  # recent frame intervals the typical period is the median of
# intervals seen before silence is judged: a file source's first frames may come in a burst
MIN_INTERVALS = 8

Alarm = Callable[..., None]  # alarm(code, text, level, **fields), as NodeRuntime.alarm


def fingerprint(data: np.ndarray) -> int:
    """CRC-32 of about ``SAMPLES`` pixels spread over the whole frame, with its shape and type.

    An odd stride, so that the samples do not fall on the same column of every row.
    """
    flat = data.reshape(-1)
    step = max(1, flat.size // SAMPLES) | 1
    sample = np.ascontiguousarray(flat[::step])
    return zlib.crc32(sample.view(np.uint8), zlib.crc32(f"{data.shape}{data.dtype}".encode()))


@dataclass
class _Output:
    """What the watchdog remembers about one watched output."""

    topic: str
    last_print: int | None = None
    last_ns: int | None = None
    repeats: int = 0
    intervals: deque[int] = field(default_factory=lambda: deque(maxlen=INTERVALS))
    flagged: str = ""  # "" (live), "repeat" or "silent"


class FrozenWatch:
    """Watches the Image outputs of one source; ``alarm`` is the runtime's."""

    def __init__(self, topics: dict[str, str], rate_hz: float, alarm: Alarm) -> None:
        self.outputs = {name: _Output(topic) for name, topic in topics.items()}
        self.nominal_ns = int(1e9 / rate_hz) if rate_hz > 0 else 0
        self.alarm = alarm

    def sent(self, output: str, image: Image, now_ns: int) -> bool:
        """Note a frame about to go out on ``output``; True if it repeats the last one."""
        state = self.outputs.get(output)
        if state is None or image.modality not in WATCHED_MODALITIES:
            return False
        printed = fingerprint(image.data)
        if state.last_ns is not None:
            state.intervals.append(now_ns - state.last_ns)
        state.last_ns = now_ns
        repeated = printed == state.last_print
        state.last_print = printed
        if repeated:
            state.repeats += 1
            if state.flagged != "repeat":
                self._flag(state, "repeat", f"{state.topic} sends the same frame again")
        else:
            state.repeats = 0
            if state.flagged:
                self._clear(state)
        return repeated

    def poll(self, now_ns: int) -> None:
        """Flag an output whose next frame is two typical periods overdue."""
        for state in self.outputs.values():
            deadline = self._silent_at(state)
            if deadline is not None and now_ns >= deadline:
                quiet = now_ns - (state.last_ns or now_ns)
                self._flag(state, "silent", f"no frame on {state.topic} for {quiet / 1e6:.0f} ms")

    def due_in_ms(self, now_ns: int) -> float | None:
        """Milliseconds until an output turns silent, so the runtime can wake for it."""
        deadlines = [d for s in self.outputs.values() if (d := self._silent_at(s)) is not None]
        return max(0.0, (min(deadlines) - now_ns) / 1e6) if deadlines else None

    def _silent_at(self, state: _Output) -> int | None:
        """When an output counts as silent; None while it is flagged or its period unknown."""
        if state.last_ns is None or state.flagged or len(state.intervals) < MIN_INTERVALS:
            return None
        return state.last_ns + int(SILENT_PERIODS * self.period_ns(state)) + 1

    def rest(self) -> None:
        """The source is paused (or done): silence from now on is no fault."""
        for state in self.outputs.values():
            state.last_ns = None

    def period_ns(self, state: _Output) -> float:
        """The typical interval between frames: the median of the recent ones, else the rate's."""
        if state.intervals:
            return statistics.median(state.intervals)
        return float(self.nominal_ns)

    def _flag(self, state: _Output, how: str, text: str) -> None:
        state.flagged = how
        period_ms = self.period_ns(state) / 1e6
        self.alarm(
            FROZEN_CODE,
            f"{text} (frame period {period_ms:.0f} ms): the source is frozen; what it shows "
            "is not live",
            "error",
            topic=state.topic,
            how=how,
        )

    def _clear(self, state: _Output) -> None:
        state.flagged = ""
        self.alarm(FROZEN_CODE, f"{state.topic} is live again", "ok", topic=state.topic, how="")
