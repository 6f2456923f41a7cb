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
LATEST_RCVHWM = 4


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
            SlotPool(run_dir / "shm", f"{node_id}.{config.name}") if config.uses_shm else None
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
        hwm = LATEST_RCVHWM if config.policy == LATEST else max(1, config.depth)
        self.socket.setsockopt(zmq.RCVHWM, hwm)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.connect(config.endpoint)
        self.pending: deque[tuple[Message, float]] = deque()
        self._last_error_log = 0.0

    def _decode(self, frames: list[Any]) -> Message | None:
        try:
            return wire.decode(frames, self.reader.open)
        except wire.FrameOverwritten:
            self.stats.overwritten += 1
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
        return None

    def _drain(self, limit: int) -> list[list[Any]]:
        batches: list[list[Any]] = []
        while len(batches) < limit:
            try:
                batches.append(self.socket.recv_multipart(zmq.NOBLOCK, copy=False))
            except zmq.Again:
                break
        return batches

    def receive(self) -> int:
        """Read what is waiting into ``pending``; returns how many new messages are queued."""
        if self.config.policy == LATEST:
            batches = self._drain(1 << 16)
            if not batches:
                return 0
            skipped = len(batches) - 1
            message = self._decode(batches[-1])
            if message is None:
                self.stats.skipped += skipped
                return 0
            skipped += len(self.pending)
            self.pending.clear()
            self.pending.append((message, float(skipped)))
            return 1
        # queue: decode (and so hold shared-memory frames) as soon as they arrive
        room = self.config.depth - len(self.pending)
        added = 0
        for frames in self._drain(max(room, 0)):
            message = self._decode(frames)
            if message is not None:
                self.pending.append((message, 0.0))
                added += 1
        return added

    def pop(self) -> tuple[Message, int] | None:
        """The next message to handle and how many were skipped to get to it."""
        if not self.pending:
            return None
        message, skipped = self.pending.popleft()
        return message, int(skipped)

    def close(self) -> None:
        self.socket.close(linger=0)
