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
or a counter, and every error in it is swallowed: at worst it costs the warm-up time.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from igtflow.stream import packets, wire

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
