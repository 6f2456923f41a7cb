"""One TCP connection to an OpenIGTLink peer: a sender thread and a reader thread.

The sender drains the peer's :class:`Outbox`; a send that makes no progress for ``stall_s``
drops the peer, so a client that stops reading costs one blocked thread for a few seconds and
nothing else. The reader parses what the peer sends (CRC checked): a header v2 message switches
this peer to header v2 (PlusServer's rule), bad bytes close the connection with a log line, and a
message over a cap (:mod:`igtflow.render.igtl.limits`) cuts the peer before its body is allocated.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

from igtflow.render.igtl.limits import Budget, Limits, OverLimit
from igtflow.render.igtl.outbox import Outbox, Outgoing
from igtflow.render.igtl.protocol import Buffer, IgtlError, Packet
from igtflow.render.igtl.reader import Parser

AUTO_VERSION = 0


def send_all(sock: socket.socket, buffers: list[Buffer]) -> None:
    """Send every buffer with scatter-gather writes, no joining of large pixel buffers."""
    views = [memoryview(b).cast("B") for b in buffers if memoryview(b).nbytes]
    while views:
        sent = sock.sendmsg(views)
        while sent:
            if sent >= len(views[0]):
                sent -= len(views.pop(0))
            else:
                views[0] = views[0][sent:]
                sent = 0


class Peer:
    """A connected peer; ``close`` is idempotent and safe from any thread."""

    def __init__(
        self,
        sock: socket.socket,
        name: str,
        log: logging.Logger,
        depth: int = 256,
        header_version: int = AUTO_VERSION,
        stall_s: float = 5.0,
        on_packet: Callable[[Packet], None] | None = None,
        on_closed: Callable[[Peer], None] | None = None,
        limits: Limits | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.sock = sock
        self.name = name
        self.log = log
        self.outbox = Outbox(depth)
        self.auto_version = header_version == AUTO_VERSION
        self.version = 1 if self.auto_version else header_version
        self.sent = 0
        self.received = 0
        self.close_reason = ""
        self._on_packet = on_packet
        self._on_closed = on_closed
        self._limits = limits or Limits()
        self._budget = budget
        self._closed = threading.Event()
        self._finished = threading.Event()
        self._close_lock = threading.Lock()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(stall_s)
        self._threads = [
            threading.Thread(target=self._send_loop, name=f"igtl-send-{name}", daemon=True),
            threading.Thread(target=self._read_loop, name=f"igtl-read-{name}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def finished(self) -> bool:
        """Closed, and what its reader held is back in the budget."""
        return self._finished.is_set()

    def put(self, item: Outgoing) -> None:
        """Queue ``item``; a peer whose ordered queue overflows is disconnected."""
        if not self.outbox.put(item):
            self.close(
                f"fell {self.outbox.depth} messages behind (it reads too slowly); disconnected"
            )

    def close(self, reason: str = "closed", level: int = logging.WARNING) -> None:
        with self._close_lock:
            if self._closed.is_set():
                return
            self._closed.set()
        self.close_reason = reason
        self.log.log(level, "OpenIGTLink peer %s: %s", self.name, reason)
        self.outbox.close()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def join(self, timeout: float = 1.0) -> None:
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _send_loop(self) -> None:
        while not self._closed.is_set():
            item = self.outbox.take(0.5)
            if item is None:
                continue
            try:
                buffers = item.buffers(self.version)
            except IgtlError as exc:
                self.log.warning("cannot send %s %r: %s", item.content.TYPE, item.device, exc)
                continue
            try:
                send_all(self.sock, buffers)
            except TimeoutError:
                self.close(f"stalled (a send made no progress for {self.sock.gettimeout()} s)")
                return
            except OSError as exc:
                self.close(f"connection lost ({exc})", logging.INFO)
                return
            self.sent += 1

    def _read_loop(self) -> None:
        parser = Parser(self._limits, self._budget)
        try:
            self._read(parser)
        finally:
            self.close("reader stopped")  # a no-op when a reason was already given
            # Whoever waits for this peer to go (the server's list, a connector's reconnect)
            # hears it only once its buffer is back in the budget.
            parser.close()
            self._finished.set()
            if self._on_closed is not None:
                self._on_closed(self)

    def _read(self, parser: Parser) -> None:
        while not self._closed.is_set():
            try:
                count = self.sock.recv_into(parser.buffer())
            except TimeoutError:
                if not parser.idle:  # a body that stops arriving holds its buffer: let it go
                    self.close(
                        f"cut: sent nothing for {self.sock.gettimeout()} s in the middle of a "
                        f"message ({parser.held} bytes held)"
                    )
                    return
                continue
            except OSError as exc:
                self.close(f"connection lost ({exc})", logging.INFO)
                return
            if count == 0:
                how = "disconnected" if parser.idle else "disconnected in the middle of a message"
                self.close(how, logging.INFO)
                return
            try:
                packet = parser.advance(count)
            except OverLimit as exc:
                self.close(f"cut before its body was allocated: {exc}")
                return
            except IgtlError as exc:
                self.close(f"sent a bad message, closing its connection: {exc}")
                return
            if packet is None:
                continue
            self.received += 1
            if self.auto_version and packet.header.version >= 2 and self.version < 2:
                self.version = 2
                self.log.info("OpenIGTLink peer %s speaks header v2; answering in v2", self.name)
            if self._on_packet is not None:
                try:
                    self._on_packet(packet)
                except IgtlError as exc:
                    self.log.warning("peer %s: dropped %s: %s", self.name, packet.type, exc)
                except Exception as exc:  # content we decode but cannot use: drop it, stay alive
                    self.log.warning(
                        "peer %s: dropped %s (%s: %s)", self.name, packet.type,
                        type(exc).__name__, exc,
                    )  # fmt: skip
