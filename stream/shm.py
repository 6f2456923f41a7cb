"""Shared-memory frame pool: large frames cross process boundaries without a copy.

Each output owns a pool of slot files under the run directory (tmpfs). A slot is guarded by a
``flock``: the producer writes only while holding it exclusively, consumers hold it shared while
any view of the frame is alive. The kernel drops a dead process's locks, so a killed consumer
leaks no slot, and the producer never waits: it skips held slots, grows the pool, and past its
limit sends the frame inline instead. A generation number in the slot header tells a late
consumer that its frame was reused (counted as a drop, never shown).

Between publication and the moment a consumer maps a frame (and so locks it), only the
reference travels, in the consumer's socket. For a ``latest`` consumer a slot is reused once
``slots`` newer frames have been published after it: a frame that old is one it would skip
anyway. A ``queue`` consumer must get every frame, so each one it is sent is **claimed** for it
until it says it has taken it: the consumer acknowledges over its own connection, after it has
locked what it mapped, with the count of packets it has read (cumulative, so one small packet
covers a batch; see ``packets.PacketHub``). A claimed slot is never reused; the pool grows
instead, up to what the queue consumers' budgets allow. Why acknowledgements rather than a
reader bitmap or refcount in the slot header: the claim then lives and dies with the connection
(a killed consumer's claims go when the kernel closes its socket, with no index to hand out or
reclaim), consumers never write into the producer's memory, and a ``latest`` consumer pays
nothing. The cost is one small send per batch read by a ``queue`` consumer, and one ``poll``
by the producer per slot it takes while claims are out.

A consumer that stops reading is bounded by its budget: past it, a frame is not sent to that
consumer at all (it sees the gap and raises ``queue-loss``). Only if tmpfs itself is full does
the producer take back a claimed slot (the consumer then finds it overwritten, also counted).

Slot file layout: ``[gen u64][nbytes u64][48 reserved][payload…]``.
"""

from __future__ import annotations

import fcntl
import math
import mmap
import os
import resource
import struct
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HEADER_BYTES = 64
_HEADER = struct.Struct("<QQ")
_ALIGN = 4096
# One file (and one descriptor, on each side) per slot: enough for a deep queue of small frames.
MAX_SLOTS = 4096
_MANY_FILES = 256  # past this many slots, ask for the descriptor limit's hard ceiling


def _round_up(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


_pending_callbacks: dict[int, weakref.ref] = {}


def _on_collect(array: np.ndarray, callback: Callable[[], None]) -> None:
    """Run ``callback`` once ``array`` is garbage; a bare weakref is ~5× cheaper than finalize."""

    def fire(ref: weakref.ref) -> None:
        _pending_callbacks.pop(id(ref), None)
        callback()

    ref = weakref.ref(array, fire)
    _pending_callbacks[id(ref)] = ref  # the weakref must outlive the array to fire


def _address(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


def _allow_many_files() -> None:
    """Raise this process's open-file limit to its hard ceiling (a deep pool needs many)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # keep the soft limit; the pool stops growing when it runs out


@dataclass
class _Slot:
    path: Path
    fd: int
    mapping: mmap.mmap
    base: int = 0
    locked: bool = False
    lease: int = 0
    published_at: int = 0
    ino: int = 0  # tells readers a restarted producer's new file from the old one
    claims: int = 0  # queue consumers sent this frame that have not taken it yet
    epoch: int = 0  # bumped when a claimed slot is taken back: older claims no longer count

    @property
    def capacity(self) -> int:
        return len(self.mapping) - HEADER_BYTES

    def remap(self) -> None:
        self.mapping = mmap.mmap(self.fd, os.fstat(self.fd).st_size)
        self.base = _address(np.frombuffer(self.mapping, dtype=np.uint8, count=1))

    def contains(self, address: int, nbytes: int) -> bool:
        start = self.base + HEADER_BYTES
        return start <= address and address + nbytes <= start + self.capacity


class SlotPool:
    """The producer side: hands out writable slots and publishes them as references."""

    def __init__(self, directory: Path, name: str, slots: int = 8, max_slots: int = 32) -> None:
        self.directory = Path(directory)
        self.name = name
        self.initial_slots = min(slots, max_slots)
        self.max_slots = max_slots
        self.slots: list[_Slot] = []
        self.published = 0
        self.inline_fallbacks = 0
        self.taken_back = 0  # claimed slots reused because tmpfs (or MAX_SLOTS) ran out
        self.bytes = 0  # size of all slot files
        self.claimed = 0  # slots with at least one claim
        # Set by whoever sends the references (``packets.PacketHub``): the slots published since
        # its last send, which that send claims; a callback that reads acknowledgements; and
        # what the queue consumers may pin (sum of budgets in bytes, sum of depths in frames).
        self.fresh: list[_Slot] | None = None
        self.listen: Callable[[], None] | None = None
        self.queue_budget = 0
        self.queue_depth = 0
        self._owners: dict[int, _Slot] = {}  # id of a writable frame's owner array → its slot
        self.directory.mkdir(parents=True, exist_ok=True)

    def _grow(self, fd: int, nbytes: int) -> bool:
        """Reserve real tmpfs pages now: a full tmpfs must fail here, not SIGBUS on write."""
        size = _round_up(HEADER_BYTES + nbytes)
        if os.fstat(fd).st_size >= size:
            return True
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError:
            return False
        return True

    def _new_slot(self, nbytes: int) -> _Slot | None:
        """Open (or, after a restart, reopen) the next slot file; None when tmpfs is full."""
        path = self.directory / f"{self.name}.{len(self.slots)}.slot"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None
        if not self._grow(fd, nbytes):
            os.close(fd)
            return None
        slot = _Slot(path, fd, mmap.mmap(fd, 0), ino=os.fstat(fd).st_ino)
        slot.remap()
        self.slots.append(slot)
        self.bytes += len(slot.mapping)
        if len(self.slots) == _MANY_FILES:
            _allow_many_files()
        return slot

    def _try_lock(self, slot: _Slot, nbytes: int) -> bool:
        """Lock ``slot`` for writing unless a consumer holds it (never waits)."""
        if slot.locked:
            return False
        try:
            fcntl.flock(slot.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if slot.capacity < nbytes:
            if not self._grow(slot.fd, nbytes):
                fcntl.flock(slot.fd, fcntl.LOCK_UN)
                return False
            self.bytes -= len(slot.mapping)
            slot.remap()
            self.bytes += len(slot.mapping)
        slot.locked = True
        slot.lease += 1
        return True

    def claim(self, slot: _Slot) -> int:
        """Keep ``slot`` from reuse until ``unclaim``; returns the token ``unclaim`` needs."""
        if slot.claims == 0:
            self.claimed += 1
        slot.claims += 1
        return slot.epoch

    def unclaim(self, slot: _Slot, token: int) -> None:
        if slot.epoch != token:
            return  # taken back meanwhile: that claim is void
        slot.claims -= 1
        if slot.claims == 0:
            self.claimed -= 1

    def _may_grow(self, nbytes: int) -> bool:
        """Whether another slot fits: up to ``max_slots``, or further within the queue
        consumers' allowance (their budgets, the frames their depths let them hold, and the
        rotation ``latest`` consumers rely on)."""
        if len(self.slots) >= MAX_SLOTS:
            return False
        if len(self.slots) < self.max_slots:
            return True
        if not self.queue_budget:
            return False
        size = _round_up(HEADER_BYTES + nbytes)
        allowance = self.queue_budget + (self.queue_depth + self.initial_slots) * size
        return self.bytes + size <= allowance

    def acquire(self, nbytes: int) -> _Slot | None:
        """An exclusively locked slot of at least ``nbytes``, or None when all are held.

        A slot is reused only once ``slots`` newer frames have been published after it, so a
        reference still waiting in a ``latest`` consumer's socket stays valid that long, and
        never while a ``queue`` consumer has a claim on it. When consumers hold or claim so
        many slots that no free one is that old, the pool grows instead (see ``_may_grow``),
        and only then is the oldest free slot reused; a claimed one only when nothing else is
        left.
        """
        if self.claimed and self.listen is not None:
            self.listen()  # acknowledgements waiting free claimed slots
        if len(self.slots) < self.initial_slots:
            slot = self._new_slot(nbytes)
            if slot is not None and self._try_lock(slot, nbytes):
                return slot
        free = sorted(
            (s for s in self.slots if not s.locked and not s.claims), key=lambda s: s.published_at
        )
        old_enough = [s for s in free if self.published - s.published_at >= self.initial_slots]
        for slot in old_enough:
            if self._try_lock(slot, nbytes):
                return slot
        while self._may_grow(nbytes):
            slot = self._new_slot(nbytes)
            if slot is None:
                break
            if self._try_lock(slot, nbytes):
                return slot
        for slot in free:
            if self._try_lock(slot, nbytes):
                return slot
        if self.claimed:
            claimed = (s for s in self.slots if not s.locked and s.claims)
            for slot in sorted(claimed, key=lambda s: s.published_at):
                if self._try_lock(slot, nbytes):
                    slot.epoch += 1
                    slot.claims = 0
                    self.claimed -= 1
                    self.taken_back += 1
                    return slot
        self.inline_fallbacks += 1
        return None

    def writable(self, slot: _Slot, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A writable array over the slot's payload; released if never published."""
        dtype = np.dtype(dtype)
        count = math.prod(shape)
        owner = np.frombuffer(slot.mapping, dtype=dtype, count=count, offset=HEADER_BYTES)
        # Every view of the frame keeps ``owner`` as its base, so this fires after the last one.
        lease = slot.lease  # this frame's lease, not whatever the slot holds when it fires
        key = id(owner)
        self._owners[key] = slot
        _on_collect(owner, lambda: self._release_unpublished(slot, lease, key))
        return owner.reshape(shape)

    def _release_unpublished(self, slot: _Slot, lease: int, key: int) -> None:
        if self._owners.get(key) is slot:
            del self._owners[key]
        if slot.locked and slot.lease == lease:
            self.release(slot)

    def release(self, slot: _Slot) -> None:
        slot.locked = False
        try:
            fcntl.flock(slot.fd, fcntl.LOCK_UN)
        except OSError:
            pass  # pool already closed

    def owned_slot(self, array: np.ndarray) -> _Slot | None:
        """The locked slot whose payload starts at ``array`` (a frame made by ``writable``)."""
        base = array.base
        slot = self._owners.get(id(base)) if base is not None else None
        # The whole frame as ``writable`` made it (the usual case), found without an address.
        if slot is not None and slot.locked and array.nbytes == base.nbytes:
            return slot if array.flags.c_contiguous else None
        address = _address(array)
        for slot in self.slots:
            if (
                slot.locked
                and address == slot.base + HEADER_BYTES
                and slot.contains(address, array.nbytes)
            ):
                return slot
        return None

    def publish(self, slot: _Slot, nbytes: int) -> dict[str, Any]:
        """Bump the slot's generation, unlock it and return the reference consumers need."""
        gen = _HEADER.unpack_from(slot.mapping, 0)[0] + 1
        _HEADER.pack_into(slot.mapping, 0, gen, nbytes)
        self.published += 1
        slot.published_at = self.published
        self.release(slot)
        if self.fresh is not None:
            self.fresh.append(slot)
        return {"path": str(slot.path), "gen": gen, "offset": 0, "ino": slot.ino}

    def place(self, array: np.ndarray) -> dict[str, Any] | None:
        """Wire placer: publish a frame written in place, or copy ``array`` into a free slot."""
        slot = self.owned_slot(array) if array.flags.c_contiguous else None
        if slot is None:
            slot = self.acquire(array.nbytes)
            if slot is None:
                return None
            target = np.frombuffer(
                slot.mapping, dtype=array.dtype, count=array.size, offset=HEADER_BYTES
            )
            np.copyto(target.reshape(array.shape), array)
        return self.publish(slot, array.nbytes)

    def close(self, unlink: bool = True) -> None:
        for slot in self.slots:
            os.close(slot.fd)
            if unlink:
                slot.path.unlink(missing_ok=True)
        self.slots.clear()
        self.bytes = self.claimed = 0


@dataclass
class _HeldFile:
    fd: int
    mapping: mmap.mmap
    base: int
    holds: int = 0
    gen: int = 0
    ino: int = 0
    readonly: memoryview | None = None  # of ``mapping``: arrays made from it are read-only

    def view(self) -> memoryview:
        if self.readonly is None or self.readonly.obj is not self.mapping:
            self.readonly = memoryview(self.mapping).toreadonly()
        return self.readonly


@dataclass
class SlotReader:
    """The consumer side: maps referenced slots, holding each while any view of it lives."""

    root: Path
    opened: int = 0  # references opened (or tried): tells a queue input a batch had some
    files: dict[str, _HeldFile] = field(default_factory=dict)
    # id of a held frame's owner array → (path, file, offset): how ``locate`` finds it fast
    owners: dict[int, tuple[str, _HeldFile, int]] = field(default_factory=dict)

    def _file(self, path: str, needed: int, ino: int | None) -> _HeldFile | None:
        held = self.files.get(path)
        # The reference names its file's inode, which saves a stat() per frame.
        replaced = held is not None and (
            held.ino != ino if isinstance(ino, int) else self._replaced(path, held.fd)
        )
        if held is not None and replaced and held.holds:
            return None  # still holding a frame of the old file: skip this one, never mix them
        if held is not None and held.holds == 0 and replaced:
            os.close(held.fd)  # the producer restarted and made a new file under this name
            del self.files[path]
            held = None
        if held is None:
            if len(self.files) == _MANY_FILES:
                _allow_many_files()
            resolved = Path(path).resolve()
            if self.root.resolve() not in resolved.parents:
                raise PermissionError(f"shared-memory path {path!r} is outside {self.root}")
            fd = os.open(resolved, os.O_RDWR)
            try:
                mapping = mmap.mmap(fd, 0)
            except (OSError, ValueError):
                os.close(fd)
                raise
            base = _address(np.frombuffer(mapping, np.uint8, count=1))
            held = _HeldFile(fd, mapping, base, ino=os.fstat(fd).st_ino)
            self.files[path] = held
        if len(held.mapping) < needed:
            # Views of the old mapping keep it alive; only new views use the larger one.
            held.mapping = mmap.mmap(held.fd, os.fstat(held.fd).st_size)
            held.base = _address(np.frombuffer(held.mapping, np.uint8, count=1))
        return held

    @staticmethod
    def _replaced(path: str, fd: int) -> bool:
        """Whether ``path`` now names another file than ``fd`` (its producer restarted)."""
        try:
            now = os.stat(path)
        except FileNotFoundError:
            return True
        before = os.fstat(fd)
        return (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino)

    def open(
        self, ref: dict[str, Any], dtype: np.dtype, shape: tuple[int, ...]
    ) -> np.ndarray | None:
        """A read-only view of the referenced frame, or None if the producer reused the slot
        or removed it (a frame still in flight when its producer stopped)."""
        self.opened += 1
        path, gen, offset = ref.get("path"), ref.get("gen"), ref.get("offset")
        if not (isinstance(path, str) and isinstance(gen, int) and isinstance(offset, int)):
            raise ValueError(f"bad shared-memory reference {ref!r}")
        nbytes = math.prod(shape) * dtype.itemsize
        if offset < 0 or nbytes < 0:
            raise ValueError(f"bad shared-memory reference {ref!r}")
        try:
            held = self._file(path, HEADER_BYTES + offset + nbytes, ref.get("ino"))
        except FileNotFoundError:
            return None  # the producer removed its pool (it stopped): the frame is gone
        if held is None:
            return None
        if held.holds == 0:
            try:
                fcntl.flock(held.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # the producer is writing a newer frame into this slot
            held.gen = _HEADER.unpack_from(held.mapping, 0)[0]
        if held.gen != gen or HEADER_BYTES + offset + nbytes > len(held.mapping):
            if held.holds == 0:
                fcntl.flock(held.fd, fcntl.LOCK_UN)
            return None
        held.holds += 1
        start = HEADER_BYTES + offset
        # Read-only through the view (no flags call); shaped in place (no second array object).
        owner = np.frombuffer(held.view()[start : start + nbytes], dtype=dtype)
        owner.shape = shape
        key = id(owner)
        self.owners[key] = (path, held, offset)
        # Every view of the frame keeps ``owner`` as its base, so this fires after the last one.
        _on_collect(owner, lambda: self._release(path, key))
        return owner

    def _release(self, path: str, key: int) -> None:
        self.owners.pop(key, None)
        held = self.files.get(path)
        if held is None:
            return
        held.holds -= 1
        if held.holds == 0:
            fcntl.flock(held.fd, fcntl.LOCK_UN)

    def locate(self, array: np.ndarray) -> dict[str, Any] | None:
        """The reference of a held frame ``array`` views, so a relay can forward it uncopied."""
        if not self.files:
            return None
        # The frame as ``open`` returned it (a relay forwarding it), found without an address.
        owner = self.owners.get(id(array))
        if owner is not None:
            path, held, offset = owner
            return {"path": path, "gen": held.gen, "offset": offset, "ino": held.ino}
        if not array.flags.c_contiguous:
            return None
        address = _address(array)
        for path, held in self.files.items():
            start = held.base + HEADER_BYTES
            if (
                held.holds
                and start <= address
                and address + array.nbytes <= held.base + len(held.mapping)
            ):
                return {"path": path, "gen": held.gen, "offset": address - start, "ino": held.ino}
        return None

    def close(self) -> None:
        for held in self.files.values():
            os.close(held.fd)
        self.files.clear()
