"""What a perception node says about its frames: bad frames counted, low confidence raised.

Both go out as ``Status`` messages on the node's ``status`` output (and as alarms to the
supervisor, so ``igtflow run``'s table shows them): a bad frame at once and then at most once
a second per kind with the running count, low confidence once when it falls below the threshold
and once when it has clearly recovered, so a 30 fps stream of bad frames is said, counted and
never floods.

Recovery has hysteresis: the alarm clears only after ``CLEAR_FRAMES`` frames in a row at least
``CLEAR_MARGIN`` above the threshold. Without it a confidence hovering at the threshold (a probe
sweeping over the edge of what the tracker can follow) raised and cleared the alarm on alternate
frames. Each frame's own ``low_confidence`` flag stays exact: below the threshold or not.
"""

from __future__ import annotations

import time
from typing import Any

from igtflow.perception.frames import FrameRefused
from igtflow.stream.messages import Status
from igtflow.stream.node import Node

LOW_CONFIDENCE = "low-confidence"
CLEAR_MARGIN = 0.05  # above the threshold, for the alarm to clear
CLEAR_FRAMES = 5  # frames in a row that clear it


class FrameHealth:
    """Counts and reports the frames ``node`` could not use and how sure it is of the rest."""

    def __init__(self, node: Node, every_s: float = 1.0) -> None:
        self.node = node
        self.every_s = every_s
        self.bad: dict[str, int] = {}
        self.low_frames = 0
        self.low: bool | None = None  # the alarm's state (None: no frame yet)
        self.good_run = 0  # frames in a row clearly above the threshold
        self._said_at: dict[str, float] = {}

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())

    def bad_frame(self, problem: FrameRefused) -> None:
        """Count a frame that was refused or could not be trusted; say so now or within
        ``every_s`` with the count so far."""
        self.bad[problem.code] = self.bad.get(problem.code, 0) + 1
        code = f"frame-{problem.code}"
        now = time.monotonic()
        if now - self._said_at.get(code, -1e9) < self.every_s:
            return
        self._said_at[code] = now
        count = self.bad[problem.code]
        self.say(
            "warn",
            code,
            f"{count} bad frame(s) so far; the last: {problem.text}",
            count=count,
            bad_frames=self.bad_total,
        )

    def confidence(self, value: float, threshold: float, what: str) -> bool:
        """Note this frame's confidence in ``what``; True when it is below ``threshold``."""
        low = value < threshold
        if low:
            self.low_frames += 1
        self.good_run = self.good_run + 1 if value >= threshold + CLEAR_MARGIN else 0
        if low and self.low is not True:
            text = (
                f"confidence in the {what} is {value:.2f}, below {threshold:.2f}: "
                "do not trust what is drawn"
            )
            self.say("warn", LOW_CONFIDENCE, text, confidence=round(value, 4))
            self.low = True
        elif self.low is None and not low:
            self.low = False
        elif self.low and self.good_run >= CLEAR_FRAMES:
            text = (
                f"confidence in the {what} is {value:.2f} again, {CLEAR_FRAMES} frames above "
                f"{threshold:.2f}"
            )
            self.say("ok", LOW_CONFIDENCE, text, confidence=round(value, 4))
            self.low = False
        return low

    def say(self, level: str, code: str, text: str, **fields: Any) -> None:
        """A warning as an alarm through the runtime (counted in the status table, published on
        ``status``); a recovery, or any Status outside a running graph, published directly."""
        alarm = getattr(self.node._emitter, "alarm", None)
        if alarm is not None and level != "ok":
            alarm(code, text, level, **fields)
            return
        if level == "ok":
            self.node.log.info("%s: %s", code, text)
        else:
            self.node.log.warning("%s: %s", code, text)
        status = Status(level=level, code=code, text=text, frame=self.node.id, meta=fields)
        self.node.emit("status", status)
