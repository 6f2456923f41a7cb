"""What every file source shares: replay frames on the file's own clock (or a fixed rate), loop,
and say when the file is done. The frame's capture stamp is the moment it is replayed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from igtflow.stream.messages import Status
from igtflow.stream.node import Source
from igtflow.stream.readers.frames import FileDamage, FileFrame

# The tick rate the runtime falls back to; a tick returns the exact delay to the next frame.
TICKS_PER_FRAME = 2.0
MAX_TICK_HZ = 500.0
# Frames sent in one tick at most: a stalled process catches up without a long burst.
MAX_BURST = 8
# Further behind than this, the replay slips (keeps every frame, shifts the clock).
MAX_LAG_S = 1.0


class FileReplay(Source):
    """Base of file sources: subclasses open their reader in ``setup`` and call ``start_replay``."""

    rate_hz = 0.0
    rate_hz_doc = "frames per second (0 = the file's own timing, times speed)"
    damage: FileDamage | None = None

    def start_replay(
        self,
        path: Path,
        frames: Callable[[], Iterator[FileFrame]],
        file_rate_hz: float | None,
        loop: bool,
        speed: float = 1.0,
        damage: FileDamage | None = None,
    ) -> None:
        """Replay ``frames()`` at ``rate_hz`` if set, else at the file's timing × ``speed``.

        ``file_rate_hz`` is the file's mean rate (None when it has no timing: then rate_hz
        must be given). ``damage``: where the reader found the file cut or padded; it is
        logged now and repeated in the end-of-file status.
        """
        self.damage = damage
        if damage is not None:
            self.log.warning("%s", damage)
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        requested = float(self.rate_hz or 0.0)
        if requested < 0:
            raise ValueError(f"rate_hz must be >= 0, got {requested}")
        if requested == 0 and not file_rate_hz and _at_most_one(frames()):
            file_rate_hz = 1.0  # a single frame has no timing to keep: any pace plays it
        if requested == 0 and not file_rate_hz:
            raise ValueError(
                f"{path}: the file gives no frame timing; set rate_hz to replay it at a fixed rate"
            )
        self.fixed_rate = requested or None
        frame_rate = requested or float(file_rate_hz or 0) * speed
        self.frame_period_s = 1.0 / frame_rate
        self.rate_hz = min(MAX_TICK_HZ, TICKS_PER_FRAME * frame_rate)
        self.path, self.frames, self.loop, self.speed = path, frames, loop, speed
        self.passes = 0
        self.sent = 0
        self.done = False
        self._open_pass()
        self.log.info(
            "replaying %s at %.2f frames/s (%s)%s",
            path.name,
            frame_rate,
            "fixed rate" if self.fixed_rate else f"file timing x{speed:g}",
            ", looping" if loop else "",
        )

    def _open_pass(self) -> None:
        self.iterator = self.frames()
        self.pending = next(self.iterator, None)
        self.first_time_s = self.pending.time_s if self.pending else None
        self.in_pass = 0
        self.base = None if self.passes == 0 else self.base

    def _offset_s(self, frame: FileFrame) -> float:
        """When ``frame`` is due, in seconds after the first frame of its pass."""
        if self.fixed_rate or frame.time_s is None or self.first_time_s is None:
            return self.in_pass * self.frame_period_s
        return max(0.0, frame.time_s - self.first_time_s) / self.speed

    def tick(self) -> float | None:
        """Send every frame now due; return the time until the next one (exact pacing)."""
        now = time.monotonic()
        if self.base is None:
            self.base = now
        for _ in range(MAX_BURST):
            if self.done:
                return None
            if self.pending is None:
                self._end_of_pass()
                continue
            offset = self._offset_s(self.pending)
            due = self.base + offset
            if due > now:
                return due - now
            if now - due > MAX_LAG_S:
                self.base += now - due
            self.emit_frame(self.pending, time.time_ns(), self.passes)
            self.sent += 1
            self.in_pass += 1
            self.last_offset = offset
            self.pending = next(self.iterator, None)
        return 0.0  # a burst was cut short: come back at once for the rest

    def _end_of_pass(self) -> None:
        if self.in_pass == 0:
            self.done = True
            raise RuntimeError(f"{self.path}: no frames could be read")
        if not self.loop:
            self.done = True
            self.finished()  # the launcher may stop once the graph has drained
            text = f"{self.path.name}: all {self.in_pass} frames replayed"
            if self.damage is not None:
                text += f" ({self.damage})"
            self.log.info(text)
            level = "ok" if self.damage is None else "warn"
            self.emit("status", Status(level=level, code="end-of-file", text=text))
            return
        # The next pass starts one frame period after the last frame of this one.
        self.base += self.last_offset + self.frame_period_s
        self.passes += 1
        self._open_pass()

    def emit_frame(self, frame: FileFrame, stamp_ns: int, loop_pass: int) -> None:
        raise NotImplementedError

    def frame_meta(self, frame: FileFrame, loop_pass: int) -> dict:
        """Meta every replayed frame carries: where it came from in the file."""
        meta = {**frame.meta, "frame_index": frame.index, "loop": loop_pass}
        if frame.time_s is not None:
            meta["file_timestamp_s"] = frame.time_s
        return meta


def _at_most_one(frames: Iterator[FileFrame]) -> bool:
    """Whether ``frames`` holds no more than one frame (reads at most two of them)."""
    next(frames, None)
    return next(frames, None) is None
