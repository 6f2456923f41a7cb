"""Local packet sockets: framing, subscriber counting, never blocking, large packets via slots."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from igtflow.stream import packets, wire
from igtflow.stream.messages import Points
from igtflow.stream.shm import SlotPool, SlotReader


def connect(hub: packets.PacketHub, link: packets.PacketLink, count: int = 1) -> None:
    deadline = time.monotonic() + 5
    while hub.subscribed < count and time.monotonic() < deadline:
        link.connect()
        hub.accept()
        time.sleep(0.005)
    assert hub.subscribed == count


def receive(link: packets.PacketLink) -> bytes:
    assert link.poll(5000), "nothing arrived"
    packet = link.recv()
    assert packet is not None
    return packet


def test_frames_survive_packing_and_come_back_as_views() -> None:
    frames = [b"src/image", b"\x81\xa1v\x01", memoryview(np.arange(10, dtype=np.uint8)), b""]
    unpacked = packets.unpack(packets.pack(frames))
    assert [bytes(f) for f in unpacked] == [bytes(f) for f in frames]
    assert all(isinstance(f, memoryview) for f in unpacked)


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x01",
        b"\x07\x01\x00",
        b"\x01\x02\x00\x05\x00\x00\x00",
        b"\x01\x01\x00\x05\x00\x00\x00ab",
    ],
    ids=["empty", "short", "unknown-tag", "lengths-cut-off", "frames-shorter-than-said"],
)
def test_a_malformed_packet_is_a_wire_error(packet: bytes) -> None:
    with pytest.raises(wire.WireError):
        packets.unpack(packet)


def test_a_consumer_is_counted_when_it_connects_and_forgotten_when_it_hangs_up(
    tmp_path: Path,
) -> None:
    hub = packets.PacketHub(tmp_path / "a.sock")
    link = packets.PacketLink(tmp_path / "a.sock")
    try:
        connect(hub, link)
        link.close()
        hub.accept()
        assert hub.subscribed == 0
    finally:
        hub.close()
    assert not (tmp_path / "a.sock").exists(), "the socket file goes with its output"


def test_a_consumer_far_behind_costs_the_producer_nothing_and_is_counted(tmp_path: Path) -> None:
    hub = packets.PacketHub(tmp_path / "a.sock")
    link = packets.PacketLink(tmp_path / "a.sock")
    try:
        connect(hub, link)
        started = time.monotonic()
        sent = 0
        while hub.full_drops == 0 and sent < 1_000_000:
            hub.send_multipart([b"t", b"x" * 8000])
            sent += 1
        assert hub.full_drops == 1, "a full connection drops, it never blocks"
        assert time.monotonic() - started < 10
        received, _ = link.drain(sent + 1)
        assert len(received) == sent - 1, "everything that fitted arrives, in order"
    finally:
        link.close()
        hub.close()


def test_a_packet_too_large_for_the_socket_travels_through_shared_memory(tmp_path: Path) -> None:
    pool = SlotPool(tmp_path / "shm", "p.out", slots=2)
    reader = SlotReader(tmp_path / "shm")
    hub = packets.PacketHub(tmp_path / "a.sock", pool.place)
    link = packets.PacketLink(tmp_path / "a.sock")
    points = Points(points=np.random.default_rng(1).random((5000, 3), dtype=np.float32))
    try:
        connect(hub, link)
        frames = wire.encode(points.restamped(topic="p/out"))  # 60 KB inline: too big a packet
        hub.send_multipart(frames)
        packet = receive(link)
        assert len(packet) < 1024, "only the slot reference crossed the socket"
        decoded = wire.decode(packets.unpack(packet, reader.open), reader.open)
        np.testing.assert_array_equal(decoded.points, points.points)
        assert reader.locate(decoded.points) is not None, "a relay forwards it uncopied"
    finally:
        link.close()
        hub.close()
        pool.close()
        reader.close()


def test_a_consumer_reconnects_when_its_producer_restarts(tmp_path: Path) -> None:
    path = tmp_path / "a.sock"
    hub = packets.PacketHub(path)
    link = packets.PacketLink(path)
    changes: list[int] = []
    link.on_change = lambda: changes.append(link.fileno())
    try:
        connect(hub, link)
        hub.close()
        assert link.poll(1000) and link.recv() is None, "the hang-up is seen"
        assert not link.connected
        hub = packets.PacketHub(path)  # the restarted producer binds the same path
        link._next_try = 0.0
        connect(hub, link)
        hub.send_multipart([b"t", b"again"])
        assert [bytes(f) for f in packets.unpack(receive(link))] == [b"t", b"again"]
        assert len(changes) == 2, "the poller is told when the link's file changes"
    finally:
        link.close()
        hub.close()


def claiming_pair(
    tmp_path: Path, budget: int, depth: int
) -> tuple[SlotPool, packets.PacketHub, packets.PacketLink]:
    """A pool behind a hub (as an output has them) and a `queue` consumer connected to it."""
    pool = SlotPool(tmp_path / "shm", "p.out", slots=2, max_slots=2)
    hub = packets.PacketHub(tmp_path / "a.sock", pool.place, pool)
    link = packets.PacketLink(tmp_path / "a.sock", packets.hello(budget, depth))
    connect(hub, link)
    deadline = time.monotonic() + 5
    while not hub.claiming and time.monotonic() < deadline:
        hub.listen()  # its hello may still be on the way
    assert hub.claiming == 1
    return pool, hub, link


def send_slot(pool: SlotPool, hub: packets.PacketHub, n: int) -> None:
    frame = np.full(64 * 1024, n % 256, dtype=np.uint8)
    hub.send_multipart([b"p/out", memoryview(frame)])  # 64 KiB: the packet goes in a slot


def test_a_queue_consumer_claims_every_slot_until_it_acknowledges(tmp_path: Path) -> None:
    pool, hub, link = claiming_pair(tmp_path, budget=64 * 2**20, depth=100)
    reader = SlotReader(tmp_path / "shm")
    try:
        for n in range(20):
            send_slot(pool, hub, n)
        assert pool.claimed == 20 and len(pool.slots) == 20, "claimed slots are never reused"
        taken = [packets.unpack(receive(link), reader.open) for _ in range(20)]
        assert [bytes(t[1][:1])[0] for t in taken] == list(range(20)), "each frame as sent"
        link.ack()
        deadline = time.monotonic() + 5
        while pool.claimed and time.monotonic() < deadline:
            hub.listen()
        assert pool.claimed == 0 and hub.claimed_bytes == 0
        del taken
        for n in range(20, 40):
            send_slot(pool, hub, n)
        assert len(pool.slots) == 20, "freed slots are reused: the pool does not grow"
    finally:
        link.close()
        hub.close()
        pool.close()
        reader.close()


def test_a_queue_consumer_past_its_budget_misses_frames_and_the_producer_goes_on(
    tmp_path: Path,
) -> None:
    budget = 4 * (64 * 1024 + 4096)  # four slots of a 64 KiB packet
    pool, hub, link = claiming_pair(tmp_path, budget=budget, depth=100)
    try:
        for n in range(10):
            send_slot(pool, hub, n)
        assert (hub.budget_drops, pool.claimed, hub.claimed_bytes) == (6, 4, budget)
        assert link.drain(100)[0].__len__() == 4, "the first four were sent, the rest not"
    finally:
        link.close()
        hub.close()
        pool.close()


def test_a_queue_consumer_that_hangs_up_takes_its_claims_with_it(tmp_path: Path) -> None:
    pool, hub, link = claiming_pair(tmp_path, budget=64 * 2**20, depth=100)
    try:
        for n in range(10):
            send_slot(pool, hub, n)
        assert pool.claimed == 10
        link.close()
        deadline = time.monotonic() + 5
        while hub.subscribed and time.monotonic() < deadline:
            hub.listen()
        assert (hub.subscribed, pool.claimed, pool.queue_budget) == (0, 0, 0)
    finally:
        hub.close()
        pool.close()
