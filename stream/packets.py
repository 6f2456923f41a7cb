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

A consumer talks back on its connection, in packets of their own tags: on connecting it says
whether it reads as a ``queue`` and with what budget (``hello``), and a ``queue`` consumer then
acknowledges, with the count of packets it has read, every batch that referenced shared memory
(``PacketLink.ack``). Until then the slots those packets reference stay claimed for it
(``shm.SlotPool``); a consumer whose unacknowledged slots would pass its budget, or its depth in
messages, is not sent the next one (counted in ``budget_drops``; it sees the gap as a loss). At
least one is always let through, so a budget smaller than a frame still delivers some.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from igtflow.stream.shm import SlotPool, _Slot
from igtflow.stream.wire import FrameOverwritten, WireError

INLINE = 1
IN_SLOT = 2
HELLO = 3  # consumer → producer: [tag][budget u64 (0: not a queue)][depth u64]
ACK = 4  # consumer → producer: [tag][packets read on this connection u64]
_HEAD = struct.Struct("<BH")
_HELLO = struct.Struct("<BQQ")
_ACK = struct.Struct("<BQ")
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


def hello(budget: int = 0, depth: int = 0) -> bytes:
    """What a consumer says on connecting: a ``queue`` consumer's budget in bytes (0 for a
    ``latest`` one, which claims nothing) and depth in messages."""
    return _HELLO.pack(HELLO, budget, depth)


_LATEST_HELLO = hello()


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


class _Peer:
    """One consumer's connection, and what the producer keeps for it while it is a queue."""

    __slots__ = ("budget", "claimed_bytes", "claims", "depth", "known", "sent", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.known = False  # said hello
        self.budget = 0  # bytes of slots it may leave unread; 0: a `latest` consumer
        self.depth = 0
        self.sent = 0  # packets sent on this connection
        # (packet number, [(slot, claim token)], bytes) for each packet it has not acknowledged
        self.claims: deque[tuple[int, list[tuple[_Slot, int]], int]] = deque()
        self.claimed_bytes = 0


class PacketHub:
    """The producer end of a local output: one connection per consumer, sends never block."""

    def __init__(
        self, path: Path, place: SlotPlacer | None = None, pool: SlotPool | None = None
    ) -> None:
        self.path = path
        self.place = place
        self.pool = pool
        self.peers: list[_Peer] = []
        self.full_drops = 0  # messages a consumer was too far behind to take
        self.oversize_drops = 0  # packets too large for the socket with no slot free
        self.budget_drops = 0  # messages a queue consumer had no budget left for
        self.claiming = 0  # queue consumers connected
        self._strangers = 0  # consumers that have not said what they are yet
        self._ears = select.poll()  # every connection: hellos, acknowledgements, hang-ups
        self._by_fd: dict[int, _Peer] = {}
        if pool is not None:
            pool.fresh = []
            pool.listen = self.listen
        # The last packet sent, for a reader that re-runs the message path without sending:
        # small ones only (a big one is not kept alive for that).
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

    @property
    def claimed_bytes(self) -> int:
        """Bytes of shared memory sent to queue consumers and not yet taken by them."""
        return sum(p.claimed_bytes for p in self.peers)

    def accept(self) -> None:
        """Take new consumers and forget those that hung up."""
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF_BYTES)
            peer = _Peer(sock)
            self.peers.append(peer)
            self._by_fd[sock.fileno()] = peer
            self._ears.register(sock, select.POLLIN)
            self._strangers += 1
        self.listen()

    def listen(self) -> None:
        """Read what consumers said (hellos, acknowledgements) and drop those that hung up."""
        for fd, _ in self._ears.poll(0):
            peer = self._by_fd.get(fd)
            while peer is not None:
                try:
                    said = peer.sock.recv(64, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError:
                    said = b""
                if not said:
                    self._drop(peer)  # orderly hang-up: the consumer closed or died
                    break
                self._heard(peer, said)

    def _heard(self, peer: _Peer, said: bytes) -> None:
        """Take one packet from a consumer; anything unexpected is ignored (it cannot harm us)."""
        if said[0] == ACK and len(said) == _ACK.size:
            count = _ACK.unpack(said)[1]
            claims = peer.claims
            while claims and claims[0][0] <= count:
                _, slots, nbytes = claims.popleft()
                peer.claimed_bytes -= nbytes
                for slot, token in slots:
                    self.pool.unclaim(slot, token)  # type: ignore[union-attr]
        elif said[0] == HELLO and len(said) == _HELLO.size and not peer.known:
            _, budget, depth = _HELLO.unpack(said)
            peer.known = True
            self._strangers -= 1
            if budget and self.pool is not None:
                peer.budget, peer.depth = budget, depth
                self.claiming += 1
                self.pool.queue_budget += budget
                self.pool.queue_depth += depth

    def _drop(self, peer: _Peer) -> None:
        """Forget a consumer, and with it its claims."""
        self.peers.remove(peer)
        self._by_fd.pop(peer.sock.fileno(), None)
        try:
            self._ears.unregister(peer.sock)
        except (KeyError, ValueError):
            pass
        peer.sock.close()
        if not peer.known:
            self._strangers -= 1
        if peer.budget and self.pool is not None:
            self.claiming -= 1
            self.pool.queue_budget -= peer.budget
            self.pool.queue_depth -= peer.depth
            for _, slots, _ in peer.claims:
                for slot, token in slots:
                    self.pool.unclaim(slot, token)
            peer.claims.clear()
            peer.claimed_bytes = 0

    def send_multipart(self, frames: Frames) -> None:
        """Send one message (its wire frames) to every consumer."""
        pool = self.pool
        if not self.peers:
            if pool is not None and pool.fresh:
                pool.fresh.clear()
            return
        if self._strangers:
            self.listen()  # a queue consumer's hello must be heard before it is sent a slot
        packet = pack(frames)
        self.last_packet = packet if len(packet) <= PACKET_INLINE_MAX else None
        if len(packet) > PACKET_INLINE_MAX and self.place is not None:
            ref = self.place(np.frombuffer(packet, dtype=np.uint8))
            if ref is not None:
                body = msgpack.packb({**ref, "nbytes": len(packet)}, use_bin_type=True)
                packet = _HEAD.pack(IN_SLOT, 0) + body
        fresh: list[_Slot] = []
        claim_bytes = 0
        if pool is not None and pool.fresh:
            fresh = pool.fresh.copy()  # what this message published: each queue claims it
            pool.fresh.clear()
            if self.claiming:
                claim_bytes = sum(len(slot.mapping) for slot in fresh)
        for peer in list(self.peers):
            claims = claim_bytes and peer.budget
            if (
                claims
                and peer.claims
                and (
                    peer.claimed_bytes + claim_bytes > peer.budget or len(peer.claims) >= peer.depth
                )
            ):
                self.budget_drops += 1  # past its budget or depth: lost for this consumer only
                continue
            try:
                peer.sock.send(packet, _SEND_FLAGS)
            except BlockingIOError:
                self.full_drops += 1
                continue
            except OSError as exc:
                if exc.errno == errno.EMSGSIZE:
                    self.oversize_drops += 1
                elif exc.errno in _GONE:
                    self._drop(peer)
                else:
                    raise
                continue
            peer.sent += 1
            if claims:
                assert pool is not None
                peer.claims.append((peer.sent, [(s, pool.claim(s)) for s in fresh], claim_bytes))
                peer.claimed_bytes += claim_bytes

    def close(self) -> None:
        for peer in self.peers:
            peer.sock.close()
        self.peers.clear()
        self._by_fd.clear()
        self.listener.close()
        self.path.unlink(missing_ok=True)


class PacketLink:
    """The consumer end: connects to its producer's path and reconnects when it goes away.

    Poll it as a file: ``fileno()`` names the current connection, or while the producer is not
    there a pipe that never polls ready (an unconnected socket would poll as hung up).
    """

    def __init__(self, path: Path, hello: bytes | None = None) -> None:
        self.path = path
        self.hello = hello if hello is not None else _LATEST_HELLO  # said on every connection
        self.taken = 0  # packets read on this connection: what ``ack`` says
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
        self.taken = 0
        try:
            self.sock.send(self.hello, _SEND_FLAGS)
        except OSError:
            pass  # it hung up already: recv notices and we reconnect
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
        self.taken += 1
        return bytes(self._view[:n])

    def ack(self) -> None:
        """Tell the producer that every packet read so far is taken: its slots are unclaimed.
        Best effort: a lost acknowledgement is covered by the next (the count is cumulative)."""
        if self.connected:
            try:
                self.sock.send(_ACK.pack(ACK, self.taken), _SEND_FLAGS)
            except OSError:
                pass  # full or gone: recv notices a hang-up

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
