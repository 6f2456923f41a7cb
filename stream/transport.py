"""Sockets of one node: a PUB per output, a SUB per input, and the two input policies.

Outputs are XPUB sockets so a producer can count its subscribers before the graph starts (no
message is lost to ZeroMQ's slow-joiner race). Large payloads on ipc go through the output's
shared-memory pool; on tcp they travel inline.
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
from igtflow.stream import wire
from igtflow.stream.messages import Message
from igtflow.stream.shm import SlotPool, SlotReader
from igtflow.stream.stats import InputStats

LATEST = "latest"
QUEUE = "queue"
LATEST_RCVHWM_IPC = 1024
LATEST_RCVHWM_TCP = 8


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


class Output:
    """One output: an XPUB socket plus, on ipc, a shared-memory pool for large frames."""

    def __init__(self, ctx: zmq.Context, config: OutputConfig, run_dir: Path, node_id: str) -> None:
        self.config = config
        self.socket = ctx.socket(zmq.XPUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, config.sndhwm)
        self.socket.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.socket.bind(config.endpoint)
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

    def read_subscriptions(self) -> None:
        """Consume (un)subscription notices; they tell us who is listening."""
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
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            # Small parts are cheaper copied; large inline buffers go zero-copy.
            big = len(frame) >= wire.ZERO_COPY_MIN_BYTES
            self.socket.send(frame, zmq.SNDMORE if i < last else 0, copy=not big)

    def close(self) -> None:
        self.socket.close(linger=0)
        if self.pool is not None:
            self.pool.close(unlink=True)


@dataclass(frozen=True)
class Arrival:
    """A decoded message and what was taken off the socket but not delivered before it."""

    message: Message
    accounted: int  # skipped, overwritten or malformed since the previous delivery
    overwritten: int  # of which frames reused by their producer: a real loss for a queue


class Input:
    """One input: a SUB socket and its policy (``latest`` keeps the newest, ``queue`` keeps all)."""

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
        self.socket = ctx.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, self._rcvhwm(config))
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.connect(config.endpoint)
        self.pending: deque[Arrival] = deque()
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

    def _decode(self, frames: list[Any]) -> Message | None:
        try:
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

    def _drain(self, limit: int) -> list[list[Any]]:
        batches: list[list[Any]] = []
        while len(batches) < limit:
            try:
                batches.append(self.socket.recv_multipart(zmq.NOBLOCK, copy=False))
            except zmq.Again:
                break
        return batches

    def _deliver(self, message: Message) -> None:
        self.pending.append(Arrival(message, self._accounted, self._overwritten))
        self._accounted = 0
        self._overwritten = 0

    def receive(self) -> int:
        """Read what is waiting into ``pending``; returns how many new messages are queued."""
        if self.config.policy == LATEST:
            batches = self._drain(1 << 16)
            if not batches:
                return 0
            # Only the newest is decoded: skipped frames are never mapped, let alone held.
            skipped = len(batches) - 1 + len(self.pending)
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
        for frames in self._drain(max(room, 0)):
            message = self._decode(frames)
            if message is not None:
                self._deliver(message)
                added += 1
        return added

    def pop(self) -> Arrival | None:
        """The next message to handle, with what was dropped on purpose or by fault before it."""
        return self.pending.popleft() if self.pending else None

    def close(self) -> None:
        self.socket.close(linger=0)
