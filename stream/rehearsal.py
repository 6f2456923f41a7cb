"""Rehearse a node's message path shortly before the next message is due.

Why: on a shared virtual machine a process that slept through a frame period finds the
interpreter's code and data evicted from the CPU caches, and the first message after the sleep
runs several times slower than a hot one. Message paths of periodic streams
are exactly that case. So shortly before a message is due, a node decodes the previous packet
of the input it is due on and re-encodes its outputs' previous packets, with stand-ins for every
shared-memory frame and nothing sent, held or counted. The real message then finds the path
warm; ``igtflow bench transport --no-rehearsal`` shows what it buys (``IGTFLOW_REHEARSAL=0``
turns it off for any run).

The rehearsal only ever touches copies of packet bytes it already has, never a frame, a lock
or a counter, and every error in it is swallowed: at worst it costs the warm-up time. All of it
sits behind :class:`Rehearsal`, which the node loop asks how long it may sleep and tells when
it is idle; nothing else knows that rehearsals exist.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from igtflow.stream import packets, wire

if TYPE_CHECKING:
    from igtflow.stream.transport import Input, Output

# Rehearse twice before a due message: the first absorbs most of the cold start and still
# lands in time when the wake-up is late (a VM's timer wake-up is now and then 1–2 ms late);
# the second, short, keeps the path warm up to the message.
LEADS_S = (0.0025, 0.0008)
SKIP_WITHIN_S = 0.0003  # a rehearsal this close to the message would only delay it
EARLY_S = 0.0002  # a wake-up this much early still counts
# Only streams slower than this are rehearsed: faster ones keep the path warm by themselves.
MIN_PERIOD_S = 0.004
MAX_PERIOD_S = 1.0
ENV_SWITCH = "IGTFLOW_REHEARSAL"  # "0" turns it off (benchmarks compare both)
_STAND_IN_REF = {"path": "", "gen": 0, "offset": 0, "ino": 0}


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1") != "0"


def rehearsable(packet: Any) -> bool:
    """Whether ``packet`` can be rehearsed: small inline packets only (a slot packet needs its
    slot, and copying a big one would evict more from the caches than it warms)."""
    return (
        isinstance(packet, bytes)
        and len(packet) <= packets.PACKET_INLINE_MAX
        and packet[:1] == b"\x01"
    )


def _stand_in(_ref: Any, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only array of the right dtype and shape that maps no memory and holds nothing."""
    return np.broadcast_to(np.zeros((), dtype=dtype), shape)


def _place_nowhere(_array: np.ndarray) -> dict[str, Any]:
    return _STAND_IN_REF


def decode(packet: bytes) -> wire.Message | None:
    """Decode ``packet`` as an input would, with stand-ins for shared-memory frames."""
    try:
        return wire.decode(packets.unpack(packet), _stand_in)
    except Exception:  # a rehearsal must never fail the node
        return None


def encode(packet: bytes) -> None:
    """Decode ``packet`` and encode it again as an output would, sending nothing."""
    message = decode(packet)
    if message is None:
        return
    try:
        packets.pack(wire.encode(message, _place_nowhere))
    except Exception:
        return


class Cadence:
    """When the next message of a periodic stream is due, from its last two arrivals."""

    __slots__ = ("last", "period")

    def __init__(self) -> None:
        self.last: float | None = None
        self.period: float | None = None

    def arrived(self, now: float) -> None:
        if self.last is not None:
            self.period = now - self.last
        self.last = now

    def due(self, now: float) -> float | None:
        """When the next message should arrive, or None for no steady period (or a stream
        that has missed a whole period since: stopped or slowed down)."""
        period, last = self.period, self.last
        if period is None or last is None or not MIN_PERIOD_S <= period <= MAX_PERIOD_S:
            return None
        return last + period if now <= last + 2 * period else None


def next_rehearsal(due: float | None, done_until: float) -> float | None:
    """The next rehearsal time before a message ``due``, after those up to ``done_until``."""
    if due is None:
        return None
    for lead in LEADS_S:
        if due - lead > done_until:
            return due - lead
    return None


class _Watched:
    """What a rehearsal keeps of one input: when its messages come and the newest packet."""

    __slots__ = ("cadence", "clock", "last_packet")

    def __init__(self, clock: Callable[[], float]) -> None:
        self.cadence = Cadence()
        self.clock = clock
        self.last_packet: bytes | None = None

    def taken(self, packet: bytes) -> None:
        self.cadence.arrived(self.clock())
        self.last_packet = packet


class Rehearsal:
    """Rehearses one node's message path before each due message: the node loop's only contact.

    Each turn, the loop asks :meth:`plan` how long it may sleep and, when it woke with nothing
    to do, calls :meth:`idle`. The inputs are watched through their ``on_taken`` tap, the outputs
    read through their ``last_packet``; ``count`` is how many rehearsals ran. ``clock`` is the
    monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        inputs: Iterable[Input],
        outputs: Iterable[Output],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.watched: list[_Watched] = []
        for inp in inputs:
            watched = _Watched(clock)
            inp.on_taken = watched.taken
            self.watched.append(watched)
        self.outputs = list(outputs)
        self.count = 0
        self.done_until = 0.0  # rehearsal times up to this one are done (or skipped)
        self._planned: tuple[float, float, _Watched | None] | None = None

    @classmethod
    def for_node(
        cls, inputs: Iterable[Input], outputs: Iterable[Output], lockstep: bool
    ) -> Rehearsal | None:
        """A rehearsal for a node, or None when switched off or in lockstep (nothing is due)."""
        return cls(inputs, outputs) if enabled() and not lockstep else None

    def plan(self, next_tick: float | None, tick_gap: float) -> float | None:
        """Milliseconds the loop may sleep before the next rehearsal; None when none is planned.

        ``next_tick``: when the node ticks next (None when it does not), ``tick_gap`` its last
        wait between ticks; only a slow enough ticker is rehearsed for.
        """
        steady_tick = next_tick if next_tick is not None and tick_gap >= MIN_PERIOD_S else None
        due, due_on = self._message_due(steady_tick)
        at = next_rehearsal(due, self.done_until)
        if at is None or due is None:
            self._planned = None
            return None
        self._planned = (at, due, due_on)
        return max(0.0, (at - self.clock()) * 1e3)

    def _message_due(self, next_tick: float | None) -> tuple[float | None, _Watched | None]:
        """When the next message is due, and on which input (None: the node's next tick)."""
        due, due_on = next_tick, None
        now = self.clock()
        for watched in self.watched:
            at = watched.cadence.due(now)
            if at is not None and (due is None or at < due):
                due, due_on = at, watched
        return due, due_on

    def idle(self) -> None:
        """The loop woke with nothing to do: rehearse if the planned time has come and the
        message is not too near."""
        if self._planned is None:
            return
        at, due, due_on = self._planned
        now = self.clock()
        if now < at - EARLY_S:
            return
        self.done_until = at
        if now < due - SKIP_WITHIN_S:
            self._rehearse(due_on)
            self.count += 1

    def _rehearse(self, due_on: _Watched | None) -> None:
        """Rehearse the input a message is due on (if any) and every output it may lead to."""
        if due_on is not None and rehearsable(due_on.last_packet):
            decode(due_on.last_packet)
        for output in self.outputs:
            if rehearsable(output.last_packet):
                encode(output.last_packet)
