"""Shared-memory frame pool: a consumer maps a frame without a copy and never sees it change, a
dead consumer leaks nothing, and the producer never waits for anybody.

Consumers in other processes are ``python -c`` children (``HOLDER``) that open a reference, keep a
slice of it and answer on stdin/stdout. In one process, a ``SlotReader`` has its own file
descriptions, so its ``flock`` locks conflict with the pool's exactly as another process's would.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from igtflow.stream.messages import Image
from igtflow.stream.shm import SlotPool, SlotReader
from igtflow.stream.wire import decode, encode

SHAPE = (480, 640)
DTYPE = np.dtype(np.uint8)
NBYTES = SHAPE[0] * SHAPE[1]
NAME = "probe.image"


def pattern(seed: int) -> np.ndarray:
    """A frame that differs from every other seed's in almost every byte."""
    return np.random.default_rng(seed).integers(0, 256, SHAPE, dtype=np.uint8)


def publish(pool: SlotPool, seed: int) -> dict[str, Any]:
    """Write ``pattern(seed)`` straight into a slot, as a producer does, and publish it."""
    slot = pool.acquire(NBYTES)
    assert slot is not None, "the pool had no free slot"
    frame = pool.writable(slot, SHAPE, DTYPE)
    frame[:] = pattern(seed)
    return pool.publish(slot, NBYTES)


def sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def slot_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.slot"))


@pytest.fixture
def shm(tmp_path: Path) -> Path:
    return tmp_path / "run" / "shm"


@pytest.fixture
def pool(shm: Path) -> Iterator[SlotPool]:
    pool = SlotPool(shm, NAME, max_slots=4)
    yield pool
    pool.close(unlink=True)


@pytest.fixture
def reader(shm: Path) -> Iterator[SlotReader]:
    reader = SlotReader(shm)
    yield reader
    reader.close()


HOLDER = """
import hashlib, json, sys
from pathlib import Path
import numpy as np
from igtflow.stream.shm import SlotReader

def sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()

args = json.loads(sys.argv[1])
reader = SlotReader(Path(args["root"]))
frame = reader.open(args["ref"], np.dtype(args["dtype"]), tuple(args["shape"]))
if frame is None:
    print(json.dumps({"opened": False}), flush=True)
    sys.exit()
mapping = np.frombuffer(reader.files[args["ref"]["path"]].mapping, np.uint8)
held = frame[args["rows"][0] : args["rows"][1]]  # only this slice outlives the report
report = {
    "opened": True,
    "sha": sha(frame),
    "held_sha": sha(held),
    "no_copy": bool(np.shares_memory(frame, mapping)),
    "writeable": bool(frame.flags.writeable),
}
del frame, mapping
print(json.dumps(report), flush=True)
for _ in sys.stdin:
    print(json.dumps({"held_sha": sha(held)}), flush=True)
"""


class Holder:
    """A consumer process holding (a slice of) one frame until its stdin closes."""

    def __init__(self, root: Path, ref: dict[str, Any], rows: tuple[int, int], log: Path) -> None:
        args = {"root": str(root), "ref": ref, "dtype": DTYPE.str, "shape": SHAPE, "rows": rows}
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )
        self.report = self._answer()

    def _answer(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        assert line, f"consumer process died: {self.log.read_text()}"
        return json.loads(line)

    def held_sha(self) -> str:
        self.proc.stdin.write("check\n")
        self.proc.stdin.flush()
        return self._answer()["held_sha"]

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def holder(tmp_path: Path, shm: Path) -> Iterator[Callable[..., Holder]]:
    started: list[Holder] = []

    def start(ref: dict[str, Any], rows: tuple[int, int] = (0, SHAPE[0])) -> Holder:
        started.append(Holder(shm, ref, rows, tmp_path / f"holder{len(started)}.log"))
        return started[-1]

    yield start
    for h in started:
        h.stop()


# -- a frame arrives whole, uncopied, and read-only -------------------------------------------


def test_reader_gets_identical_bytes_without_a_copy(pool: SlotPool, reader: SlotReader) -> None:
    ref = publish(pool, seed=1)
    frame = reader.open(ref, DTYPE, SHAPE)
    assert frame is not None
    assert frame.tobytes() == pattern(1).tobytes()
    mapping = np.frombuffer(reader.files[ref["path"]].mapping, np.uint8)
    assert np.shares_memory(frame, mapping), "the frame is the slot's memory, not a copy"
    assert not frame.flags.writeable


@pytest.mark.timeout(60)
def test_frame_crosses_processes_identical_and_without_a_copy(
    pool: SlotPool, holder: Callable[..., Holder]
) -> None:
    consumer = holder(publish(pool, seed=2))
    assert consumer.report["opened"]
    assert consumer.report["sha"] == sha(pattern(2))
    assert consumer.report["no_copy"]
    assert not consumer.report["writeable"]


def test_frame_written_in_place_is_published_from_its_own_slot(
    pool: SlotPool, reader: SlotReader
) -> None:
    slot = pool.acquire(NBYTES)
    assert slot is not None
    frame = pool.writable(slot, SHAPE, DTYPE)
    frame[:] = pattern(3)
    ref = pool.place(frame)
    assert ref == {"path": str(slot.path), "gen": ref["gen"], "offset": 0, "ino": slot.ino}
    assert len(pool.slots) == 1, "no second slot, so no copy"
    received = reader.open(ref, DTYPE, SHAPE)
    assert received is not None and received.tobytes() == pattern(3).tobytes()


# -- a held frame never changes; the slot comes back when the last view goes --------------------


def test_held_frame_never_changes_under_consumer(pool: SlotPool, reader: SlotReader) -> None:
    held_ref = publish(pool, seed=10)
    frame = reader.open(held_ref, DTYPE, SHAPE)
    assert frame is not None
    held = frame[100:200, 50:600]  # the consumer keeps only a slice view
    del frame
    before = held.copy()

    refs = [publish(pool, seed=11 + i) for i in range(50)]

    assert all(ref["path"] != held_ref["path"] for ref in refs), "producer reused a held slot"
    assert np.array_equal(held, before)
    assert reader.open(held_ref, DTYPE, SHAPE) is not None, "the held generation is still current"


@pytest.mark.timeout(60)
def test_held_frame_never_changes_under_consumer_in_another_process(
    shm: Path, holder: Callable[..., Holder]
) -> None:
    pool = SlotPool(shm, NAME, max_slots=2)
    try:
        held_ref = publish(pool, seed=20)
        consumer = holder(held_ref, rows=(240, 480))
        assert consumer.report["held_sha"] == sha(pattern(20)[240:480])

        refs = [publish(pool, seed=21 + i) for i in range(50)]

        assert all(ref["path"] != held_ref["path"] for ref in refs)
        assert consumer.held_sha() == sha(pattern(20)[240:480])
    finally:
        pool.close(unlink=True)


def test_slot_is_reused_only_after_the_last_view_is_dropped(shm: Path, reader: SlotReader) -> None:
    pool = SlotPool(shm, NAME, max_slots=1)
    try:
        ref = publish(pool, seed=30)
        frame = reader.open(ref, DTYPE, SHAPE)
        assert frame is not None
        row = frame[7]
        del frame
        assert pool.acquire(NBYTES) is None, "a slice view still holds the slot"

        del row

        slot = pool.acquire(NBYTES)
        assert slot is not None and str(slot.path) == ref["path"]
    finally:
        pool.close(unlink=True)


def test_stale_reference_returns_none_instead_of_a_newer_frame(
    shm: Path, reader: SlotReader
) -> None:
    pool = SlotPool(shm, NAME, max_slots=1)
    try:
        old = publish(pool, seed=40)
        new = publish(pool, seed=41)  # the only slot, reused
        assert new["path"] == old["path"] and new["gen"] != old["gen"]

        assert reader.open(old, DTYPE, SHAPE) is None
        frame = reader.open(new, DTYPE, SHAPE)
        assert frame is not None and frame.tobytes() == pattern(41).tobytes()
    finally:
        pool.close(unlink=True)


def test_reference_waiting_in_a_socket_survives_slots_newer_frames(
    shm: Path, reader: SlotReader
) -> None:
    pool = SlotPool(shm, NAME, slots=3, max_slots=8)
    try:
        first = publish(pool, seed=45)
        newer = [publish(pool, seed=46 + i) for i in range(3)]
        assert all(ref["path"] != first["path"] for ref in newer)
        frame = reader.open(first, DTYPE, SHAPE)  # a consumer three frames behind
        assert frame is not None and frame.tobytes() == pattern(45).tobytes()
        del frame

        fifth = publish(pool, seed=49)

        assert fifth["path"] == first["path"], "past that the oldest slot is reused, not grown"
        assert reader.open(first, DTYPE, SHAPE) is None
    finally:
        pool.close(unlink=True)


def test_reference_to_a_slot_being_rewritten_returns_none(shm: Path, reader: SlotReader) -> None:
    pool = SlotPool(shm, NAME, max_slots=1)
    try:
        ref = publish(pool, seed=50)
        slot = pool.acquire(NBYTES)  # the producer is writing the next frame into it
        assert slot is not None

        assert reader.open(ref, DTYPE, SHAPE) is None
    finally:
        pool.close(unlink=True)


@pytest.mark.timeout(60)
def test_killed_consumer_leaks_no_slot(shm: Path, holder: Callable[..., Holder]) -> None:
    pool = SlotPool(shm, NAME, max_slots=1)
    try:
        ref = publish(pool, seed=60)
        consumer = holder(ref)
        assert consumer.report["opened"]
        assert pool.acquire(NBYTES) is None, "the consumer process holds the only slot"

        consumer.kill()

        slot = pool.acquire(NBYTES)
        assert slot is not None and str(slot.path) == ref["path"]
    finally:
        pool.close(unlink=True)


# -- the producer never waits ------------------------------------------------------------------


def test_producer_never_blocks_when_every_slot_is_held(shm: Path, reader: SlotReader) -> None:
    pool = SlotPool(shm, NAME, max_slots=3)
    try:
        held = [reader.open(publish(pool, seed=70 + i), DTYPE, SHAPE) for i in range(3)]
        assert all(frame is not None for frame in held)
        assert pool.inline_fallbacks == 0

        started = time.monotonic()
        slots = [pool.acquire(NBYTES) for _ in range(5)]
        elapsed = time.monotonic() - started

        assert slots == [None] * 5
        assert elapsed < 0.5, f"acquire took {elapsed:.3f} s with every slot held"
        assert pool.inline_fallbacks == 5
        assert len(pool.slots) == 3, "the pool stops growing at max_slots"

        image = Image(topic="probe/image", data=pattern(79))
        assert pool.place(image.data) is None
        assert pool.inline_fallbacks == 6
        frames = encode(image, place=pool.place)
        assert len(frames) == 3, "topic, header (with ijk_to_ras) and data all travel inline"
        assert decode([bytes(f) for f in frames]).data.tobytes() == pattern(79).tobytes()
        assert all(frame.tobytes() == pattern(70 + i).tobytes() for i, frame in enumerate(held))
    finally:
        pool.close(unlink=True)


# -- references are checked; the pool cleans up after itself ----------------------------------


@pytest.mark.parametrize("where", ["sibling", "dot-dot", "symlink"])
def test_reader_refuses_a_reference_outside_its_root(tmp_path: Path, where: str) -> None:
    elsewhere = SlotPool(tmp_path / "elsewhere", NAME, max_slots=1)
    root = tmp_path / "run" / "shm"
    root.mkdir(parents=True)
    try:
        ref = publish(elsewhere, seed=80)
        target = Path(ref["path"])
        if where == "dot-dot":
            ref["path"] = f"{root}/../../elsewhere/{target.name}"
        elif where == "symlink":
            (root / target.name).symlink_to(target)
            ref["path"] = str(root / target.name)
        reader = SlotReader(root)

        with pytest.raises(PermissionError, match="outside"):
            reader.open(ref, DTYPE, SHAPE)
        assert reader.files == {}
    finally:
        elsewhere.close(unlink=True)


def test_reference_to_a_removed_pool_returns_none(shm: Path, reader: SlotReader) -> None:
    # A frame still in flight when its producer stopped: gone, like an overwritten one.
    pool = SlotPool(shm, NAME, max_slots=2)
    ref = publish(pool, seed=50)
    pool.close(unlink=True)
    assert reader.open(ref, DTYPE, SHAPE) is None
    assert reader.files == {}


def test_close_with_unlink_removes_every_slot_file(shm: Path, reader: SlotReader) -> None:
    pool = SlotPool(shm, NAME, max_slots=4)
    held = [reader.open(publish(pool, seed=90 + i), DTYPE, SHAPE) for i in range(3)]
    assert len(slot_files(shm)) == 3
    assert all(frame is not None for frame in held)

    pool.close(unlink=True)

    assert slot_files(shm) == []


def test_close_without_unlink_keeps_slot_files(shm: Path) -> None:
    pool = SlotPool(shm, NAME, max_slots=4)
    publish(pool, seed=95)

    pool.close(unlink=False)

    assert slot_files(shm) == [f"{NAME}.0.slot"]


# -- forwarding --------------------------------------------------------------------------------


def test_locate_finds_a_held_frame_and_not_an_unrelated_array(
    pool: SlotPool, reader: SlotReader
) -> None:
    ref = publish(pool, seed=100)
    frame = reader.open(ref, DTYPE, SHAPE)
    assert frame is not None

    assert reader.locate(frame) == ref
    rows = frame[5:10]
    located = reader.locate(rows)
    assert located == {**ref, "offset": 5 * SHAPE[1]}
    forwarded = reader.open(located, DTYPE, rows.shape)
    assert forwarded is not None and np.shares_memory(forwarded, frame)
    assert forwarded.tobytes() == pattern(100)[5:10].tobytes()

    assert reader.locate(frame.copy()) is None
    assert reader.locate(pattern(100)) is None
    assert reader.locate(np.zeros(SHAPE, DTYPE)) is None
    assert reader.locate(frame[:, 3]) is None, "a strided view is not one contiguous frame"


def test_locate_forgets_a_frame_once_released(pool: SlotPool, reader: SlotReader) -> None:
    frame = reader.open(publish(pool, seed=110), DTYPE, SHAPE)
    assert frame is not None
    stale = frame.copy()
    del frame
    assert reader.locate(stale) is None


# -- restarts and hostile references ---------------------------------------------------------


def test_reader_never_shows_a_previous_producers_frame_after_restart(
    shm: Path, reader: SlotReader
) -> None:
    before = SlotPool(shm, NAME, max_slots=1)
    frame = reader.open(publish(before, seed=120), DTYPE, SHAPE)
    assert frame is not None
    del frame
    before.close(unlink=True)

    after = SlotPool(shm, NAME, max_slots=1)
    try:
        frame = reader.open(publish(after, seed=121), DTYPE, SHAPE)
        assert frame is not None and frame.tobytes() == pattern(121).tobytes()
    finally:
        after.close(unlink=True)


@pytest.mark.timeout(60)
def test_restarted_producer_never_blocks_on_a_slot_held_from_its_previous_run(
    shm: Path, reader: SlotReader
) -> None:
    crashed = SlotPool(shm, NAME, max_slots=2)
    frame = reader.open(publish(crashed, seed=130), DTYPE, SHAPE)
    assert frame is not None
    crashed.close(unlink=False)  # killed: its slot files stay behind
    restarted = SlotPool(shm, NAME, max_slots=2)
    acquired = threading.Event()
    thread = threading.Thread(
        target=lambda: (restarted.acquire(NBYTES), acquired.set()), daemon=True
    )
    try:
        thread.start()
        returned = acquired.wait(timeout=1.0)
    finally:
        del frame  # lets a blocked acquire finish
        thread.join(timeout=10)
        restarted.close(unlink=True)
    assert returned, "acquire waited for a consumer"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_malformed_reference_leaks_no_file_descriptor(shm: Path, reader: SlotReader) -> None:
    shm.mkdir(parents=True)
    (shm / "empty.slot").touch()
    ref = {"path": str(shm / "empty.slot"), "gen": 1, "offset": 0}
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises((ValueError, OSError)):
            reader.open(ref, DTYPE, SHAPE)
    assert len(os.listdir("/proc/self/fd")) == before
