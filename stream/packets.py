"""Local outputs without ZeroMQ: one unix ``SOCK_SEQPACKET`` connection per consumer.

ZeroMQ routes every message through an I/O thread on each side (sender thread → I/O thread →
socket → I/O thread → receiver thread), which on a 2-core machine costs about 0.3 ms of wake-ups
per hop. On one host a node writes each message straight into every consumer's connection, and
the consumer's poll wakes on it: one kernel hop. ZeroMQ stays for tcp (nodes on other hosts).

A packet holds one message's wire frames: ``[tag u8][count u16][length u32 × count][frames…]``.
A packet too large to travel well in a socket buffer goes whole through the output's
shared-memory pool instead (``tag`` 2, the slot reference in msgpack), so any size gets through.

The producer listens on ``<run dir>/<node>.<output>.sock``; each accepted connection is one
subscriber. Sends never block: a full connection (its consumer is far behind) drops the message
for that consumer only, which sees the gap and counts it, as it would a ZeroMQ high-water mark.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from igtflow.stream.wire import FrameOverwritten, WireError

INLINE = 1
IN_SLOT = 2
_HEAD = struct.Struct("<BH")
# Above this a packet goes through shared memory: the socket buffer then holds many messages.
PACKET_INLINE_MAX = 16 * 1024
# Ask for a deep socket buffer per consumer (the kernel caps it at net.core.wmem_max × 2).
SNDBUF_BYTES = 4 * 1024 * 1024
RECV_BUFFER_BYTES = 8 * 1024 * 1024  # the largest packet a consumer can take (untouched pages)
RECONNECT_S = 0.01
_SEND_FLAGS = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL
_GONE = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ECONNREFUSED)

Frames = Sequence[bytes | memoryview]
SlotPlacer = Callable[[np.ndarray], dict[str, Any] | None]
SlotOpener = Callable[[dict[str, Any], np.dtype, tuple[int, ...]], np.ndarray | None]


def pack(frames: Frames) -> bytes:
    """One packet holding ``frames`` inline."""
    lengths = [len(f) if isinstance(f, bytes) else memoryview(f).nbytes for f in frames]
    head = _HEAD.pack(INLINE, len(frames)) + struct.pack(f"<{len(frames)}I", *lengths)
    return b"".join((head, *frames))


def unpack(packet: Any, open_ref: SlotOpener | None = None) -> list[memoryview]:
    """The frames of ``packet`` as views (no copy); ``open_ref`` maps a packet sent in a slot.

    Raises ``WireError`` when the packet is malformed and ``FrameOverwritten`` when its slot was
    reused before it could be held.
    """
    view = memoryview(packet)
    if view.nbytes < _HEAD.size:
        raise WireError(f"packet of {view.nbytes} bytes is too short")
    tag, count = _HEAD.unpack_from(view, 0)
    if tag == IN_SLOT:
        return _unpack_slot(view[_HEAD.size :], open_ref)
    if tag != INLINE:
        raise WireError(f"unknown packet tag {tag}")
    offset = _HEAD.size + 4 * count
    if view.nbytes < offset:
        raise WireError(f"packet of {view.nbytes} bytes cannot hold {count} frame lengths")
    frames = []
    for length in struct.unpack_from(f"<{count}I", view, _HEAD.size):
        frames.append(view[offset : offset + length])
        offset += length
    if offset != view.nbytes:
        raise WireError(f"packet frame lengths add up to {offset} bytes, not {view.nbytes}")
    return frames


def _unpack_slot(body: memoryview, open_ref: SlotOpener | None) -> list[memoryview]:
    try:
        ref = msgpack.unpackb(body, raw=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise WireError(f"unreadable packet slot reference: {exc}") from exc
    nbytes = ref.get("nbytes") if isinstance(ref, dict) else None
    if open_ref is None or not isinstance(nbytes, int) or not 0 < nbytes < 2**40:
        raise WireError(f"bad packet slot reference {ref!r}")
    try:
        array = open_ref(ref, np.dtype(np.uint8), (nbytes,))
    except (ValueError, OSError) as exc:
        raise WireError(f"unusable packet slot reference: {exc}") from exc
    if array is None:
        raise FrameOverwritten("a packet in shared memory was overwritten before it was held")
    # Views of the slot keep it held while any frame of this message is alive.
    packet = memoryview(array)
    if packet.nbytes >= _HEAD.size and _HEAD.unpack_from(packet, 0)[0] == IN_SLOT:
        raise WireError("a packet in shared memory points to another one")
    return unpack(packet)


_idle: list[int] = []


def _idle_fd() -> int:
    """A file descriptor that never polls ready: the read end of a pipe nobody writes to."""
    if not _idle:
        _idle.extend(os.pipe())
    return _idle[0]


def socket_path(endpoint: str) -> Path:
    """The filesystem path of an ``ipc://`` endpoint."""
    return Path(endpoint.removeprefix("ipc://"))


class PacketHub:
    """The producer end of a local output: one connection per consumer, sends never block."""

    def __init__(self, path: Path, place: SlotPlacer | None = None) -> None:
        self.path = path
        self.place = place
        self.peers: list[socket.socket] = []
        self.full_drops = 0  # messages a consumer was too far behind to take
        self.oversize_drops = 0  # packets too large for the socket with no slot free
        # The last packet sent, for rehearsals: small ones only (a big one is never rehearsed,
        # so it is not kept alive for one either).
        self.last_packet: bytes | None = None
        path.unlink(missing_ok=True)  # a previous run of this node left it behind
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(str(path))
        self.listener.listen(64)
        self.listener.setblocking(False)

    def fileno(self) -> int:
        return self.listener.fileno()

    @property
    def subscribed(self) -> int:
        return len(self.peers)

    def accept(self) -> None:
        """Take new consumers and forget those that hung up."""
        while True:
            try:
                peer, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF_BYTES)
            self.peers.append(peer)
        for peer in list(self.peers):
            try:
                if peer.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b"":
                    self._drop(peer)  # orderly hang-up: the consumer closed or died
            except BlockingIOError:
                pass
            except OSError:
                self._drop(peer)

    def _drop(self, peer: socket.socket) -> None:
        self.peers.remove(peer)
        peer.close()

    def send_multipart(self, frames: Frames) -> None:
        """Send one message (its wire frames) to every consumer."""
        if not self.peers:
            return
        packet = pack(frames)
        self.last_packet = packet if len(packet) <= PACKET_INLINE_MAX else None
        if len(packet) > PACKET_INLINE_MAX and self.place is not None:
            ref = self.place(np.frombuffer(packet, dtype=np.uint8))
            if ref is not None:
                body = msgpack.packb({**ref, "nbytes": len(packet)}, use_bin_type=True)
                packet = _HEAD.pack(IN_SLOT, 0) + body
        for peer in list(self.peers):
            try:
                peer.send(packet, _SEND_FLAGS)
            except BlockingIOError:
                self.full_drops += 1
            except OSError as exc:
                if exc.errno == errno.EMSGSIZE:
                    self.oversize_drops += 1
                elif exc.errno in _GONE:
                    self._drop(peer)
                else:
                    raise

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
        self.peers.clear()
        self.listener.close()
        self.path.unlink(missing_ok=True)


class PacketLink:
    """The consumer end: connects to its producer's path and reconnects when it goes away.

    Poll it as a file: ``fileno()`` names the current connection, or while the producer is not
    there a pipe that never polls ready (an unconnected socket would poll as hung up).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = self._fresh()
        self.connected = False
        self.on_change: Callable[[], None] | None = None  # told when ``fileno()`` changes
        self._next_try = 0.0
        self._buffer = bytearray(RECV_BUFFER_BYTES)
        self._view = memoryview(self._buffer)
        self._waiting = select.poll()  # "is another packet there?" without raising EAGAIN
        self.connect()

    @staticmethod
    def _fresh() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.setblocking(False)
        return sock

    def fileno(self) -> int:
        return self.sock.fileno() if self.connected else _idle_fd()

    def connect(self) -> bool:
        """Try to connect (at most every ``RECONNECT_S``); True once connected."""
        if self.connected:
            return True
        now = time.monotonic()
        if now < self._next_try:
            return False
        self._next_try = now + RECONNECT_S
        try:
            self.sock.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        except OSError:  # busy or interrupted: start over with a clean socket
            self.sock.close()
            self.sock = self._fresh()
            return False
        self.connected = True
        self._waiting = select.poll()
        self._waiting.register(self.sock, select.POLLIN)
        if self.on_change is not None:
            self.on_change()
        return True

    def _hang_up(self) -> None:
        """The producer stopped (or restarted): reconnect to its next incarnation."""
        self.sock.close()
        self.sock = self._fresh()
        self.connected = False
        if self.on_change is not None:
            self.on_change()

    def recv(self) -> bytes | None:
        """The next packet, or None when nothing is waiting (or the producer went away)."""
        if not self.connected:
            return None
        try:
            n = self.sock.recv_into(self._buffer, 0, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        except OSError:
            n = 0
        if n == 0:
            self._hang_up()
            return None
        return bytes(self._view[:n])

    def more(self) -> bool:
        """Whether another packet is waiting (a hang-up counts: ``recv`` then notices it)."""
        return self.connected and bool(self._waiting.poll(0))

    def drain(self, limit: int, newest_only: bool = False) -> tuple[list[bytes], int]:
        """Up to ``limit`` waiting packets, oldest first; with ``newest_only`` just the newest
        one, and how many were read before it. Asks ``more()`` between reads rather than
        reading until EAGAIN: an exception per drain costs more than a poll.
        """
        packets: list[bytes] = []
        skipped = 0
        while len(packets) < limit or (newest_only and packets):
            packet = self.recv()  # the first read follows a poll that said one is there
            if packet is None:
                break
            if newest_only and packets:
                skipped += 1
                packets[0] = packet
            else:
                packets.append(packet)
            if not self.more():
                break
        return packets, skipped

    def poll(self, timeout_ms: int = 0) -> bool:
        """Whether a packet is waiting (waits up to ``timeout_ms``)."""
        deadline = time.monotonic() + timeout_ms / 1e3
        while True:
            if self.connect():
                poller = select.poll()
                poller.register(self.sock, select.POLLIN)
                remaining = max(0.0, deadline - time.monotonic())
                if poller.poll(min(remaining, RECONNECT_S) * 1e3):
                    return True
            if time.monotonic() >= deadline:
                return False
            if not self.connected:
                time.sleep(RECONNECT_S)

    def close(self) -> None:
        self.sock.close()
