"""A listening OpenIGTLink server: any number of clients, each with its own :class:`Peer`.

What clients send is read within caps (:mod:`igtflow.render.igtl.limits`): ``limits.message``
per message (and so per connection) and ``max_in_flight`` for the unfinished bodies of all
clients together; a client over either is cut before anything is allocated for it.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading

from igtflow.render.igtl.allow import AddressRule
from igtflow.render.igtl.limits import MIB, Budget, Limits
from igtflow.render.igtl.outbox import Outgoing
from igtflow.render.igtl.peer import AUTO_VERSION, Peer

DEFAULT_PORT = 18944
# Clients send queries, status, transforms and now and then an image or a mesh: 16 MiB passes a
# 2048² RGBA frame; 64 MiB in flight lets four such messages arrive at once and costs a node
# little, where eight hostile clients once cost it 2 GB.
DEFAULT_MAX_MESSAGE = 16 * MIB
DEFAULT_MAX_IN_FLIGHT = 64 * MIB


class PortInUse(OSError):
    """The port is taken by another program; the message says how to fix it."""


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; PortInUse names the port and the fix."""
    try:
        return socket.create_server((host, port), backlog=16)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                exc.errno,
                f"port {port} on {host} is already in use (another igtl-server, a PlusServer or "
                f"Slicer listening there?); stop that program or give this node another port, "
                f"e.g. params: {{port: {port + 1}}}",
            ) from None
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None


class IgtlServer:
    """Accepts clients in a thread; :meth:`publish` hands a message to every connected client."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        log: logging.Logger | None = None,
        depth: int = 256,
        header_version: int = AUTO_VERSION,
        stall_s: float = 5.0,
        limits: Limits | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        allow: AddressRule | None = None,
    ) -> None:
        self.log = log or logging.getLogger("igtflow.igtl")
        self.depth = depth
        self.header_version = header_version
        self.stall_s = stall_s
        self.limits = limits or Limits(message=DEFAULT_MAX_MESSAGE)
        self.budget = Budget(max_in_flight)
        self.listener = listen(host, port)
        self.listener.settimeout(0.2)
        self.host, self.port = self.listener.getsockname()[:2]
        self.allow = allow or AddressRule()
        self.accepted = 0
        self.refused = 0  # connections closed at once: their address is not on the allow-list
        self._peers: list[Peer] = []
        self._current: dict[tuple[str, str], Outgoing] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="igtl-accept", daemon=True)
        self._thread.start()

    @property
    def peers(self) -> list[Peer]:
        with self._lock:
            return list(self._peers)

    def publish(self, item: Outgoing) -> None:
        """Queue ``item`` for every client; never blocks on a slow one."""
        with self._lock:
            if item.latest_only:  # a client that connects later starts from the current frame
                self._current[item.key] = item
            peers = list(self._peers)
        for peer in peers:
            peer.put(item)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        self.listener.close()
        for peer in self.peers:
            peer.close("server stopped", logging.INFO)
            peer.join()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, address = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            name = f"{address[0]}:{address[1]}"
            if not self.allow.allows(address[0]):
                self.refused += 1
                sock.close()  # before a byte is read or sent
                self.log.warning(
                    "OpenIGTLink client %s refused: its address is not on the server's allow "
                    "list (%d refused so far)",
                    name,
                    self.refused,
                )
                continue
            self.accepted += 1
            self.log.info("OpenIGTLink client %s connected", name)
            peer = Peer(
                sock,
                name,
                self.log,
                self.depth,
                self.header_version,
                self.stall_s,
                on_closed=self._forget,
                limits=self.limits,
                budget=self.budget,
            )
            with self._lock:
                self._peers.append(peer)
                current = list(self._current.values())
            if peer.finished:  # it went before it was listed: _forget found nothing to remove
                self._forget(peer)
                continue
            for item in current:
                peer.put(item)

    def _forget(self, peer: Peer) -> None:
        with self._lock:
            if peer in self._peers:
                self._peers.remove(peer)
