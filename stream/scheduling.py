"""What a node's loop handles next and when it may tick: live, or in lockstep with the graph.

Live, a node handles whatever has arrived, one message per input per turn, and ticks on its own
clock. In lockstep (an offline, deterministic replay; ``launch/lockstep.py`` is the other half)
the supervisor decides: a node handles only the deliveries it was granted, in the order granted,
reports each one with what it sent meanwhile, and after a tick that sent anything it ticks again
only on NEXT. The loop asks its :class:`Schedule` and never checks which one it has.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from igtflow.stream import control
from igtflow.stream.transport import QUEUE, Arrival, Input

Handle = Callable[[Input, Arrival], None]  # the runtime's: run the handler, keep the books


class Schedule(Protocol):
    """The loop's questions about order and timing; answered by ``LiveSchedule`` or
    ``LockstepSchedule``."""

    # Sockets of the schedule's own that the loop waits on beside its inputs and outputs.
    handles: list[Any]
    # Where the runtime notes ``[topic, seq]`` of each message it sends to a consumer; None when
    # the schedule does not need them (live).
    sent: list[list[Any]] | None

    def take(self, handle: Any) -> None:
        """One of ``handles`` is ready to read."""

    def work_waiting(self) -> bool:
        """Whether a message can be handled right now (the loop then does not sleep)."""

    def handle_waiting(self) -> None:
        """Handle every message that may be handled now, in the schedule's order."""

    def may_tick(self) -> bool:
        """Whether a tick that is due may run (in lockstep: not while waiting for NEXT)."""

    def ticked(self) -> None:
        """A tick has returned; whatever it sent is on its way."""

    def finished(self) -> None:
        """The source has sent everything: tell the supervisor (EOS)."""

    def close(self) -> None:
        """Release the schedule's own sockets."""


class LiveSchedule:
    """Handle what arrives as it arrives, one message per input per turn of the loop."""

    def __init__(self, inputs: Sequence[Input], handle: Handle, link: control.ControlLink) -> None:
        self.inputs = inputs
        self.handle = handle
        self.link = link
        self.handles: list[Any] = []
        self.sent: list[list[Any]] | None = None

    def take(self, handle: Any) -> None:
        raise AssertionError(f"a live schedule waits on no socket of its own, got {handle!r}")

    def work_waiting(self) -> bool:
        return any(inp.pending for inp in self.inputs)

    def handle_waiting(self) -> None:
        for inp in self.inputs:
            arrival = inp.pop()
            if arrival is not None:
                self.handle(inp, arrival)
                if inp.config.policy == QUEUE:
                    inp.receive()  # hold newly arrived frames before the producer reuses them

    def may_tick(self) -> bool:
        return True

    def ticked(self) -> None:
        pass

    def finished(self) -> None:
        self.link.send(control.EOS)

    def close(self) -> None:
        pass


class LockstepSchedule:
    """Handle granted deliveries in the order granted; tick again only on NEXT.

    Every handled message and every tick that sent something is reported (DONE) with the
    ``[topic, seq]`` it sent, so that the supervisor knows when the graph is idle.
    """

    def __init__(
        self, link: control.LockstepLink, inputs: dict[str, Input], handle: Handle
    ) -> None:
        self.link = link
        self.inputs = inputs  # by name, in the node's order; filled once the sockets are open
        self.handle = handle
        self.handles: list[Any] = [link.socket]
        self.sent: list[list[Any]] | None = []
        self.grants: deque[list[Any]] = deque()  # [input, topic, seq] to handle next, in order
        self.awaiting_next = False

    def take(self, handle: Any) -> None:
        got_next, granted = self.link.take()
        self.awaiting_next = self.awaiting_next and not got_next
        self.grants.extend(granted)

    def work_waiting(self) -> bool:
        return bool(self.grants) and self._granted_arrival(peek=True) is not None

    def _granted_arrival(self, peek: bool = False) -> tuple[Input, Arrival] | None:
        """The arrival the oldest grant names, once it is here (taken unless ``peek``)."""
        input_name, topic, seq = self.grants[0]
        inp = self.inputs.get(input_name)
        if inp is None:
            return None
        arrival = inp.take(topic, seq, peek)
        return None if arrival is None else (inp, arrival)

    def handle_waiting(self) -> None:
        while self.grants:
            found = self._granted_arrival()
            if found is None:
                for inp in self.inputs.values():
                    inp.receive()  # it may be in the socket already
                found = self._granted_arrival()
                if found is None:
                    return  # not here yet: its arrival wakes the loop
            self.grants.popleft()
            inp, arrival = found
            self.handle(inp, arrival)
            message = arrival.message
            self._report([inp.config.name, message.topic, message.seq])

    def _report(self, handled: list[Any] | None) -> None:
        assert self.sent is not None
        self.link.done(handled, self.sent)  # packed at once: the list may be reused
        self.sent.clear()

    def may_tick(self) -> bool:
        return not self.awaiting_next

    def ticked(self) -> None:
        if self.sent:
            self._report(None)
            self.awaiting_next = True

    def finished(self) -> None:
        self.link.end()  # after the DONE on the same socket: it cannot overtake it

    def close(self) -> None:
        self.link.close()
