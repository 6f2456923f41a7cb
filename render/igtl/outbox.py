"""What one peer still has to send: images latest-only per device, everything else in order.

A frame that a slow peer has not taken yet is replaced by the next one from the same device (the
peer sees fewer frames, never old ones); transforms, points, status and strings queue in order up
to ``depth`` and a peer that falls that far behind is dropped instead of holding memory.
"""

from __future__ import annotations

import threading
from collections import deque

from igtflow.render.igtl.codec import Content, encode
from igtflow.render.igtl.protocol import Buffer


class Outgoing:
    """One message for every peer, packed once per header version when a peer first needs it."""

    def __init__(
        self,
        device: str,
        content: Content,
        stamp_ns: int,
        metadata: dict[str, str] | None = None,
        latest_only: bool = False,
    ) -> None:
        self.device = device
        self.content = content
        self.stamp_ns = stamp_ns
        self.metadata = metadata or {}
        self.latest_only = latest_only
        self._packed: dict[int, list[Buffer]] = {}
        self._lock = threading.Lock()

    @property
    def key(self) -> tuple[str, str]:
        return self.content.TYPE, self.device

    def buffers(self, version: int) -> list[Buffer]:
        with self._lock:
            packed = self._packed.get(version)
            if packed is None:
                packed = encode(self.content, self.device, self.stamp_ns, version, self.metadata)
                self._packed[version] = packed
            return packed


class Outbox:
    """Thread-safe per-peer queue with the latest-only rule for frames."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.replaced = 0
        self._cond = threading.Condition()
        self._latest: dict[tuple[str, str], Outgoing] = {}
        self._queue: deque[Outgoing] = deque()
        self._closed = False

    def put(self, item: Outgoing) -> bool:
        """Queue ``item``; False when the ordered queue is full (the peer is too slow)."""
        with self._cond:
            if self._closed:
                return True
            if item.latest_only:
                if self._latest.pop(item.key, None) is not None:
                    self.replaced += 1
                self._latest[item.key] = item
            elif len(self._queue) >= self.depth:
                return False
            else:
                self._queue.append(item)
            self._cond.notify()
            return True

    def take(self, timeout: float) -> Outgoing | None:
        """The next item to send (ordered messages first), or None on timeout or close."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._closed or self._queue or self._latest, timeout
            ):
                return None
            if self._closed:
                return None
            if self._queue:
                return self._queue.popleft()
            key = next(iter(self._latest))
            return self._latest.pop(key)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._latest.clear()
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
