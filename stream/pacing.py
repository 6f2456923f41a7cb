"""When a ticking node ticks next: every ``1 / rate_hz`` seconds, or when its ``tick()`` asks.

A node that falls behind does not fire a burst of ticks to catch up: a tick more than a whole
period late is counted (``late_ticks``) and the schedule starts again from now. A ``tick()`` that
returns a delay (a replay following the recorded timing) sets the next tick itself.
"""

from __future__ import annotations


class TickClock:
    """The tick times of one node; callers pass the monotonic time, so tests need no sleep."""

    __slots__ = ("gap", "late_ticks", "next_tick", "period")

    def __init__(self, rate_hz: float) -> None:
        self.period = 1.0 / rate_hz if rate_hz > 0 else 0.0  # 0: as fast as possible
        self.next_tick = 0.0
        self.gap = self.period  # the last wait between ticks (rehearsals skip fast tickers)
        self.late_ticks = 0

    def start(self, now: float) -> None:
        """The first tick is due at once."""
        self.next_tick = now

    def due(self, now: float) -> bool:
        return now >= self.next_tick

    def wait_ms(self, now: float, longest_ms: float) -> float:
        """How long the loop may wait for messages before the next tick, at most ``longest_ms``."""
        return max(0.0, min(longest_ms, (self.next_tick - now) * 1e3))

    def ticked(self, delay: float | None, now: float) -> None:
        """Plan the next tick after one that ended at ``now`` and returned ``delay``."""
        if delay is not None:
            self.next_tick = now + max(0.0, delay)
            self.gap = delay
        elif self.period:
            self.next_tick += self.period
            if now - self.next_tick > self.period:
                self.late_ticks += 1
                self.next_tick = now + self.period
