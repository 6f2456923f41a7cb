"""The control channel between a node process and its supervisor.

A background thread owns the node's DEALER socket: it sends a heartbeat with the node's stats
every ``HEARTBEAT_S`` (even while a handler runs long, so the supervisor can tell slow from dead)
and turns the supervisor's commands into events the main loop polls.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import zmq

HEARTBEAT_S = 0.5

# node → supervisor
READY = "ready"
STATS = "stats"
ALARM = "alarm"
FAILED = "failed"
BYE = "bye"
EOS = "eos"  # a source has sent everything it has (end of its file)
DONE = "done"  # lockstep: one message handled (or one tick), with what it emitted
FILE = "file"  # a file the node writes, and its state (writing, closed, recovered)
# supervisor → node
GO = "go"
STOP = "stop"
PAUSE = "pause"
RESUME = "resume"
NEXT = "next"  # lockstep: the graph is idle, a source may release its next message
GRANT = "grant"  # lockstep: handle these deliveries ([input, topic, seq]), in this order
LOCKSTEP_SUFFIX = "#lockstep"
# A node's exit code when setup raised PermanentError: the supervisor does not restart it.
EXIT_PERMANENT = 3


def pack(kind: str, **fields: Any) -> bytes:
    """A control message: a msgpack map with a ``type``."""
    return msgpack.packb({"type": kind, **fields}, use_bin_type=True)


def unpack(data: bytes) -> dict[str, Any]:
    message = msgpack.unpackb(data, raw=False)
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ValueError("control message without a type")
    return message


class ControlLink:
    """The node's side of the control channel."""

    def __init__(
        self, ctx: zmq.Context, endpoint: str, node_id: str, stats: Callable[[], dict]
    ) -> None:
        self.ctx = ctx
        self.endpoint = endpoint
        self.node_id = node_id
        self.stats = stats
        self.go = threading.Event()
        self.go_fields: dict[str, Any] = {}
        self.stop = threading.Event()
        self.paused = threading.Event()
        self._outbox: list[bytes] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)
        self._closed = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def send(self, kind: str, **fields: Any) -> None:
        """Queue a message for the supervisor (thread-safe)."""
        with self._lock:
            self._outbox.append(pack(kind, node=self.node_id, pid=os.getpid(), **fields))

    def _run(self) -> None:
        socket = self.ctx.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 100)
        socket.setsockopt_string(zmq.IDENTITY, self.node_id)
        socket.connect(self.endpoint)
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        next_beat = 0.0
        while not self._closed.is_set():
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + HEARTBEAT_S
                self.send(STATS, stats=self.stats())
            with self._lock:
                outbox, self._outbox = self._outbox, []
            for data in outbox:
                self._send_now(socket, data)
            if dict(poller.poll(50)).get(socket):
                try:
                    command = unpack(socket.recv())
                except ValueError:
                    continue
                if command["type"] == GO:
                    self.go_fields = command
                    self.go.set()
                elif command["type"] == STOP:
                    self.stop.set()
                    self.go.set()
                elif command["type"] == PAUSE:
                    self.paused.set()
                elif command["type"] == RESUME:
                    self.paused.clear()
        with self._lock:
            for data in self._outbox:
                self._send_now(socket, data)
        socket.close()

    @staticmethod
    def _send_now(socket: zmq.Socket, data: bytes) -> None:
        # A DEALER with no peer blocks on send; with the supervisor gone, drop instead of hanging.
        try:
            socket.send(data, zmq.NOBLOCK)
        except zmq.Again:
            pass

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=1.0)


class LockstepLink:
    """The main thread's own line to the supervisor in lockstep mode.

    The control thread wakes every 50 ms; lockstep needs each DONE and NEXT to travel at once,
    so the node's main loop owns this second DEALER and polls it beside its inputs.
    """

    def __init__(self, ctx: zmq.Context, endpoint: str, node_id: str) -> None:
        self.node_id = node_id
        self.socket = ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt_string(zmq.IDENTITY, node_id + LOCKSTEP_SUFFIX)
        self.socket.connect(endpoint)

    def done(self, handled: list[Any] | None, emitted: list[list[Any]]) -> None:
        """Report one handled message (``[input, topic, seq]``; None for a tick) and its output."""
        ControlLink._send_now(
            self.socket,
            pack(DONE, node=self.node_id, pid=os.getpid(), handled=handled, emitted=emitted),
        )

    def end(self) -> None:
        """Say the source has sent everything, in order behind its last DONE."""
        ControlLink._send_now(self.socket, pack(EOS, node=self.node_id, pid=os.getpid()))

    def take(self) -> tuple[bool, list[list[Any]]]:
        """Whether a NEXT arrived, and the deliveries granted since (drains everything waiting)."""
        got_next = False
        granted: list[list[Any]] = []
        while True:
            try:
                message = unpack(self.socket.recv(zmq.NOBLOCK))
            except zmq.Again:
                return got_next, granted
            except ValueError:
                continue
            if message["type"] == NEXT:
                got_next = True
            elif message["type"] == GRANT:
                granted.extend(message.get("handle") or [])

    def close(self) -> None:
        self.socket.close()
