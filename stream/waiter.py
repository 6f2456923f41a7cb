"""Waiting on all of a node's sockets at once: the one place the node loop sleeps."""

from __future__ import annotations

import select
from typing import Any

import zmq

from igtflow.stream.packets import PacketLink

PRECISE_MAX_MS = 1000.0
SELECT_FD_LIMIT = 1024


class Waiter:
    """Waits on all of a node's sockets at once and says which are ready.

    With only plain files (packet links and hubs: every local graph) this is ``select.poll``,
    which runs far less code per wake-up than ZeroMQ's poller; a ZeroMQ socket (tcp, lockstep)
    needs ``zmq.Poller``. A link's file changes when it (re)connects: the set is rebuilt then.
    """

    def __init__(self, handles: list[Any]) -> None:
        self.handles = handles
        self.uses_zmq = any(isinstance(h, zmq.Socket) for h in handles)
        self.by_fd: dict[int, Any] = {}
        self.poller: Any = None
        self.selectable = False
        for handle in handles:
            if isinstance(handle, PacketLink):
                handle.on_change = self._changed

    def _changed(self) -> None:
        self.poller = None

    @property
    def precise(self) -> bool:
        """Whether ``wait(..., precise=True)`` keeps fractions of a millisecond here."""
        if self.poller is None:
            self._build()
        return self.selectable

    def _build(self) -> Any:
        files = [h for h in self.handles if not isinstance(h, zmq.Socket)]
        self.by_fd = {h.fileno(): h for h in files}
        # select() takes a timeout in µs but only descriptors below FD_SETSIZE
        self.selectable = not self.uses_zmq and max(self.by_fd, default=0) < SELECT_FD_LIMIT
        if self.uses_zmq:
            self.poller = zmq.Poller()
            for handle in self.handles:
                self.poller.register(handle, zmq.POLLIN)
        else:
            self.poller = select.poll()
            for fd in self.by_fd:
                self.poller.register(fd, select.POLLIN)
        return self.poller

    def wait(self, timeout_ms: float, precise: bool = False) -> list[Any]:
        """The handles ready within ``timeout_ms`` (truncated to whole ms, as ZeroMQ does).

        ``precise`` keeps the fraction of a millisecond (``select``, for plain files only), for
        a wake-up that must come neither a millisecond early nor late (a rehearsal's).
        """
        poller = self.poller or self._build()
        by_fd = self.by_fd
        if precise and self.selectable and 0 < timeout_ms < PRECISE_MAX_MS:
            return [by_fd[fd] for fd in select.select(list(by_fd), (), (), timeout_ms / 1e3)[0]]
        return [by_fd[s] if s.__class__ is int else s for s, _ in poller.poll(int(timeout_ms))]
