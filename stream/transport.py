"""Sockets of one node: one per output, one per input, and the two input policies.

On one host (ipc) an output is a :class:`~igtflow.stream.packets.PacketHub` (a unix packet
connection per consumer, no ZeroMQ I/O threads in the way) and large payloads go through its
shared-memory pool; across hosts (tcp) it is a ZeroMQ XPUB and payloads travel inline. Either way
a producer counts its subscribers before the graph starts, so no message is lost to a
slow-joiner race.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from igtflow.stream import curve, packets, wire
from igtflow.stream.messages import Message
from igtflow.stream.node_stats import InputStats
from igtflow.stream.shm import SlotPool, SlotReader

LATEST = "latest"
QUEUE = "queue"
LATEST_RCVHWM_IPC = 1024
LATEST_RCVHWM_TCP = 8
DEFAULT_BUDGET_MIB = 256  # shared memory a `queue` input may leave unread at its producer


def ipc_endpoint(run_dir: Path, node_id: str, output: str) -> str:
    """The ipc address of ``node_id/output`` inside a run directory."""
    return f"ipc://{run_dir}/{node_id}.{output}.sock"


@dataclass(frozen=True)
class OutputConfig:
    name: str
    topic: str
    endpoint: str
    subscribers: int
    sndhwm: int = 16
    slots: int = 8  # shared-memory slots rotated before one is reused
    # tcp under CURVE (see igtflow.stream.curve): this host's secret key file, and the public
    # key files of the clients let in; empty: plain tcp (loopback, or a graph marked insecure)
    curve_secret: str = ""
    curve_allow: tuple[str, ...] = ()

    @property
    def uses_shm(self) -> bool:
        return self.endpoint.startswith("ipc://")


@dataclass(frozen=True)
class InputConfig:
    name: str
    topic: str
    endpoint: str
    policy: str = LATEST
    depth: int = 1
    budget_mib: int = DEFAULT_BUDGET_MIB
    # tcp under CURVE: this host's secret key file and the producer host's public key file
    curve_secret: str = ""
    curve_server: str = ""


class Output:
    """One output: on ipc a packet hub plus a shared-memory pool for large frames; on tcp an
    XPUB socket."""

    def __init__(self, ctx: zmq.Context, config: OutputConfig, run_dir: Path, node_id: str) -> None:
        self.config = config
        self.subscribed = 0
        self.seq = 0
        self.pool = (
            SlotPool(
                run_dir / "shm",
                f"{node_id}.{config.name}",
                slots=config.slots,
                max_slots=max(32, 2 * config.slots),
            )
            if config.uses_shm
            else None
        )
        self.hub: packets.PacketHub | None = None
        self.socket: Any
        if config.uses_shm:
            assert self.pool is not None
            self.hub = packets.PacketHub(
                packets.socket_path(config.endpoint), self.pool.place, self.pool
            )
            self.socket = self.hub
        else:
            self.socket = ctx.socket(zmq.XPUB)
            self.socket.setsockopt(zmq.LINGER, 0)
            self.socket.setsockopt(zmq.SNDHWM, config.sndhwm)
            self.socket.setsockopt(zmq.XPUB_VERBOSE, 1)
            if config.curve_secret:
                curve.make_server(self.socket, config.curve_secret)
            self.socket.bind(config.endpoint)

    @property
    def send_drops(self) -> int:
        """Messages not sent to a consumer whose connection was full (local outputs only)."""
        if self.hub is None:
            return 0
        return self.hub.full_drops + self.hub.oversize_drops + self.hub.budget_drops

    @property
    def claiming(self) -> bool:
        """Whether a `queue` consumer reads this output (its slots are then claimed for it)."""
        return self.hub is not None and self.hub.claiming > 0

    def pool_stats(self) -> dict[str, Any] | None:
        """The shared-memory pool at a glance (local outputs only), for the heartbeat."""
        if self.hub is None or self.pool is None:
            return None
        return {
            "slots": len(self.pool.slots),
            "pool_mib": round(self.pool.bytes / 2**20, 2),
            "claimed_mib": round(self.hub.claimed_bytes / 2**20, 2),
            "budget_drops": self.hub.budget_drops,
            "taken_back": self.pool.taken_back,
        }

    @property
    def last_packet(self) -> bytes | None:
        """The last message sent as one small inline packet (local outputs only), or None."""
        return self.hub.last_packet if self.hub is not None else None

    def read_subscriptions(self) -> None:
        """Take in who is listening: new and departed connections, or (un)subscription notices."""
        if self.hub is not None:
            self.hub.accept()
            self.subscribed = self.hub.subscribed
            return
        while True:
            try:
                event = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if event[:1] == b"\x01":
                self.subscribed += 1
            elif event[:1] == b"\x00":
                self.subscribed = max(0, self.subscribed - 1)

    def send(
        self, message: Message, place: Callable[[np.ndarray], dict[str, Any] | None] | None
    ) -> None:
        frames = wire.encode(message, place if self.pool is not None else None)
        if self.hub is not None:
            self.hub.send_multipart(frames)
            return
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            # Small parts are cheaper copied; large inline buffers go zero-copy.
            big = len(frame) >= wire.BIG_BUFFER_BYTES
            self.socket.send(frame, zmq.SNDMORE if i < last else 0, copy=not big)

    def close(self) -> None:
        if self.hub is not None:
            self.hub.close()
        else:
            self.socket.close(linger=0)
        if self.pool is not None:
            self.pool.close(unlink=True)


class Arrival:
    """A decoded message and what was taken off the socket but not delivered before it."""

    __slots__ = ("accounted", "message", "overwritten")

    def __init__(self, message: Message, accounted: int, overwritten: int) -> None:
        self.message = message
        self.accounted = accounted  # skipped, overwritten or malformed since the last delivery
        self.overwritten = overwritten  # of which frames reused by their producer: a real loss


class Input:
    """One input: a packet link (ipc) or SUB socket (tcp) and its policy (``latest`` keeps the
    newest, ``queue`` keeps all)."""

    def __init__(
        self,
        ctx: zmq.Context,
        config: InputConfig,
        reader: SlotReader,
        stats: InputStats,
        log: logging.Logger,
    ) -> None:
        self.config = config
        self.reader = reader
        self.stats = stats
        self.log = log
        self.link: packets.PacketLink | None = None
        self.socket: Any
        if config.endpoint.startswith("ipc://"):
            queue = config.policy == QUEUE
            said = packets.hello(config.budget_mib * 2**20, config.depth) if queue else None
            self.link = packets.PacketLink(packets.socket_path(config.endpoint), said)
            self.socket = self.link
        else:
            self.socket = ctx.socket(zmq.SUB)
            self.socket.setsockopt(zmq.LINGER, 0)
            self.socket.setsockopt(zmq.RCVHWM, self._rcvhwm(config))
            self.socket.setsockopt(zmq.SUBSCRIBE, b"")
            if config.curve_secret:
                curve.make_client(self.socket, config.curve_secret, config.curve_server)
            self.socket.connect(config.endpoint)
        self.pending: deque[Arrival] = deque()
        # Called with the newest packet each time packets are taken (local inputs only): a tap
        # for whoever watches the stream's timing without touching its messages.
        self.on_taken: Callable[[bytes], None] | None = None
        self._accounted = 0
        self._overwritten = 0
        self._last_error_log = 0.0

    @staticmethod
    def _rcvhwm(config: InputConfig) -> int:
        if config.policy == QUEUE:
            return max(1, config.depth)
        # ZeroMQ drops the *newest* messages at the high-water mark, so a `latest` input must
        # have room for everything that arrives while its handler runs; over ipc a message is
        # a small header (frames live in shared memory), over tcp it is the whole frame.
        return LATEST_RCVHWM_IPC if config.endpoint.startswith("ipc://") else LATEST_RCVHWM_TCP

    @property
    def connected(self) -> bool:
        """False while a local input waits for its producer (ZeroMQ reconnects by itself)."""
        return self.link is None or self.link.connect()

    def _decode(self, item: Any) -> Message | None:
        try:
            frames = item if self.link is None else packets.unpack(item, self.reader.open)
            return wire.decode(frames, self.reader.open)
        except wire.FrameOverwritten:
            self.stats.overwritten += 1
            self._overwritten += 1
        except (wire.WireError, ValueError, PermissionError, OSError) as exc:
            self.stats.malformed += 1
            now = time.monotonic()
            if now - self._last_error_log > 1.0:  # one line a second, not a flood
                self._last_error_log = now
                self.log.warning(
                    "input %r: dropped malformed message (%d so far): %s",
                    self.config.name,
                    self.stats.malformed,
                    exc,
                )
        self._accounted += 1
        return None

    def _drain(self, limit: int, newest_only: bool = False) -> tuple[list[Any], int]:
        """Up to ``limit`` waiting messages, undecoded (packets, or ZeroMQ frame lists), and
        how many were read and passed over before them (only with ``newest_only``)."""
        if self.link is not None:
            taken, skipped = self.link.drain(limit, newest_only)
            if taken and self.on_taken is not None:
                self.on_taken(taken[-1])
            return taken, skipped
        batches: list[Any] = []
        while len(batches) < limit:
            try:
                batches.append(self.socket.recv_multipart(zmq.NOBLOCK, copy=False))
            except zmq.Again:
                break
        return batches, 0

    def _deliver(self, message: Message) -> None:
        self.pending.append(Arrival(message, self._accounted, self._overwritten))
        self._accounted = 0
        self._overwritten = 0

    def receive(self) -> int:
        """Read what is waiting into ``pending``; returns how many new messages are queued."""
        if self.config.policy == LATEST:
            batches, passed = self._drain(1 << 16, newest_only=True)
            if not batches:
                return 0
            # Only the newest is decoded: skipped frames are never mapped, let alone held.
            skipped = passed + len(batches) - 1 + len(self.pending)
            for replaced in self.pending:  # delivered to nobody: fold into the next delivery
                self._accounted += replaced.accounted
                self._overwritten += replaced.overwritten
            self.pending.clear()
            self.stats.skipped += skipped
            self._accounted += skipped
            message = self._decode(batches[-1])
            if message is None:
                return 0
            self._deliver(message)
            return 1
        # queue: decode (and so hold shared-memory frames) as soon as they arrive
        room = self.config.depth - len(self.pending)
        added = 0
        opened = self.reader.opened
        for frames in self._drain(max(room, 0))[0]:
            message = self._decode(frames)
            if message is not None:
                self._deliver(message)
                added += 1
        if self.link is not None and self.reader.opened != opened:
            self.link.ack()  # held now (or found gone): the producer may stop keeping them
        return added

    def take(self, topic: str, seq: int, peek: bool = False) -> Arrival | None:
        """The waiting message ``topic``/``seq`` (lockstep grants name them), taken unless
        ``peek``; None while it has not arrived."""
        for arrival in self.pending:
            if arrival.message.seq == seq and arrival.message.topic == topic:
                if not peek:
                    self.pending.remove(arrival)
                return arrival
        return None

    def pop(self) -> Arrival | None:
        """The next message to handle, with what was dropped on purpose or by fault before it."""
        return self.pending.popleft() if self.pending else None

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
        else:
            self.socket.close(linger=0)
