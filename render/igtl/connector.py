"""An outgoing OpenIGTLink connection that keeps itself up: reconnects with back-off.

Used to push to a Slicer that listens (``igtl-client``) and to read from a PlusServer
(``igtl-source``). Connecting happens in a thread, so the graph never waits for the peer.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

from igtflow.render.igtl.limits import Limits
from igtflow.render.igtl.outbox import Outgoing
from igtflow.render.igtl.peer import AUTO_VERSION, Peer
from igtflow.render.igtl.protocol import Packet

BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 5.0
CONNECT_TIMEOUT_S = 1.0  # short, so that close() never waits long on a connect in progress


class Connector:
    """Keeps one :class:`Peer` connected to ``host:port``; ``hello`` goes first on each connect."""

    def __init__(
        self,
        host: str,
        port: int,
        log: logging.Logger | None = None,
        depth: int = 256,
        header_version: int = AUTO_VERSION,
        stall_s: float = 5.0,
        on_packet: Callable[[Packet], None] | None = None,
        hello: Callable[[], Outgoing | None] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.log = log or logging.getLogger("igtflow.igtl")
        self.depth = depth
        self.header_version = header_version
        self.stall_s = stall_s
        self.on_packet = on_packet
        self.hello = hello
        self.limits = limits or Limits()  # one connection: its message cap is the total
        self.connects = 0
        self.dropped = 0
        self.peer: Peer | None = None
        self._current: dict[tuple[str, str], Outgoing] = {}
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="igtl-connect", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        peer = self.peer
        return peer is not None and not peer.closed

    def publish(self, item: Outgoing) -> None:
        """Queue ``item`` for the peer; dropped (and counted) while there is none."""
        if item.latest_only:  # sent again after a reconnect: the peer starts from the current frame
            self._current[item.key] = item
        peer = self.peer
        if peer is None or peer.closed:
            self.dropped += 1
            return
        peer.put(item)

    def close(self) -> None:
        self._stop.set()
        self._lost.set()
        self._thread.join(CONNECT_TIMEOUT_S + 0.2)
        peer = self.peer
        if peer is not None:
            peer.close("stopped", logging.INFO)
            peer.join()

    def _loop(self) -> None:
        backoff = BACKOFF_START_S
        failures = 0
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT_S)
            except OSError as exc:
                if failures == 0:
                    self.log.warning(
                        "OpenIGTLink peer %s:%d not reachable (%s); retrying every %.1f-%.0f s",
                        self.host,
                        self.port,
                        exc.strerror or exc,
                        BACKOFF_START_S,
                        BACKOFF_MAX_S,
                    )
                failures += 1
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            if self._stop.is_set():  # close() came while we were connecting: keep nothing open
                sock.close()
                return
            self.connects += 1
            self.log.info("connected to OpenIGTLink peer %s:%d", self.host, self.port)
            failures, backoff = 0, BACKOFF_START_S
            self._lost.clear()
            peer = Peer(
                sock,
                f"{self.host}:{self.port}",
                self.log,
                self.depth,
                self.header_version,
                self.stall_s,
                on_packet=self.on_packet,
                on_closed=lambda _peer: self._lost.set(),
                limits=self.limits,
            )
            greeting = self.hello() if self.hello is not None else None
            if greeting is not None:
                peer.put(greeting)
            for current in list(self._current.values()):
                peer.put(current)
            self.peer = peer
            if self._stop.is_set():  # close() ran before the peer was published
                peer.close("stopped", logging.INFO)
                return
            self._lost.wait()
            if not self._stop.is_set():
                self._stop.wait(backoff)
