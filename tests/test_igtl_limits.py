"""OpenIGTLink peers that declare more than they send, or more than a type can hold.

The server runs in its own process (the igtl-server node's logic) so that its memory is measured
alone; every connection stays on 127.0.0.1.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import psutil
import pytest

from igtflow.render.igtl.codec import decode, encode
from igtflow.render.igtl.connector import Connector
from igtflow.render.igtl.image import IMAGE_HEADER, ImageContent
from igtflow.render.igtl.limits import Limits, OverLimit
from igtflow.render.igtl.polydata import POLY_HEADER
from igtflow.render.igtl.protocol import HEADER, Header, Packet
from igtflow.render.igtl.reader import Parser
from igtflow.render.igtl.server import IgtlServer
from igtflow.render.igtl.transform import TransformContent
from igtflow.render.nodes.igtl_source import IgtlSource
from igtflow.stream.testing import NodeHarness
from tests.helpers.cli import REPO
from tests.helpers.igtl_peers import RawClient

LOG = logging.getLogger("test.igtl.hostile")
MIB = 1024 * 1024
RATE_HZ = 30.0


def header(kind: str, body_size: int, version: int = 1) -> bytes:
    return HEADER.pack(version, kind.encode(), b"Hostile", 0, body_size, 0)


def image_header(size: tuple[int, int, int], scalar: int = 3, ncomp: int = 1) -> bytes:
    matrix = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0, 0, 0, 0]
    return IMAGE_HEADER.pack(1, ncomp, scalar, 1, 1, *size, *matrix, 0, 0, 0, *size)


def hostile_openings() -> list[bytes]:
    """Eight messages that each declare a 255 MiB body; each connection sends 1 KiB of it."""
    declared = 255 * MIB
    dims = (1024, 1024, 255)  # an image header that agrees with its 255 MiB + 72 byte body
    consistent = header("IMAGE", 72 + dims[0] * dims[1] * dims[2]) + image_header(dims)
    kinds = ["TRANSFORM", "STRING", "STATUS", "POLYDATA", "POINT", "IMAGE", "GET_IMAGE"]
    openings = [header(kind, declared) for kind in kinds] + [consistent]
    return [opening + bytes(range(256)) * 4 for opening in openings]


@pytest.fixture
def server_process() -> Iterator[tuple[subprocess.Popen, int]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from tests.helpers.igtl_peers import serve_frames; serve_frames({RATE_HZ})",
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.stdin.close()  # type: ignore[union-attr]
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_clients_declaring_huge_bodies_are_cut_without_costing_memory_or_frames(
    server_process: tuple[subprocess.Popen, int],
) -> None:
    proc, port = server_process
    server = psutil.Process(proc.pid)
    good = RawClient(port)
    arrivals: list[float] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                good.read(1, 0.5)
            except (TimeoutError, OSError):
                continue
            arrivals.append(time.monotonic())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    hostile: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while len(arrivals) < 15 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(arrivals) >= 15, "the good client received no frames before the attack"
        rss_before = server.memory_info().rss
        attack_at = time.monotonic()
        for opening in hostile_openings():
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sock.sendall(opening)
            hostile.append(sock)
        peak = rss_before
        cut = set()
        window_end = attack_at + 2.5
        while time.monotonic() < window_end:
            peak = max(peak, server.memory_info().rss)
            for n, sock in enumerate(hostile):
                if n in cut:
                    continue
                sock.settimeout(0.001)
                try:
                    if sock.recv(1 << 16) == b"":
                        cut.add(n)
                except (TimeoutError, BlockingIOError):
                    pass
                except OSError:
                    cut.add(n)
            time.sleep(0.02)
        frames = sum(attack_at <= t < window_end for t in arrivals)
    finally:
        stop.set()
        reader.join(2)
        good.close()
        for sock in hostile:
            sock.close()
    growth_mib = (peak - rss_before) / MIB
    fps = frames / (window_end - attack_at)
    summary = f"server RSS +{growth_mib:.0f} MiB, good client {fps:.1f} fps, cut {len(cut)}/8"
    print(summary)
    assert growth_mib < 64, summary
    assert cut == set(range(len(hostile))), summary
    assert fps >= 0.8 * RATE_HZ, summary
    proc.stdin.close()  # type: ignore[union-attr]
    log = proc.stderr.read()  # type: ignore[union-attr]
    assert "cut before its body was allocated" in log
    assert f"declares a body of {255 * MIB} bytes, over the cap" in log
    assert "127.0.0.1:" in log  # the peer's address leads each line


def test_clients_together_are_held_to_the_in_flight_cap_and_the_last_one_is_cut(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three 1 MiB images arrive at once into a server that holds 2.5 MiB in flight."""
    # stall_s: the test pauses its senders mid-message; on a loaded machine for seconds.
    server = IgtlServer(
        port=0, log=LOG, stall_s=120, limits=Limits(message=2 * MIB), max_in_flight=5 * MIB // 2
    )
    pixels = np.zeros((1, 1024, 1024, 1), np.uint8)
    image = b"".join(bytes(b) for b in encode(ImageContent(pixels, np.eye(4)), "Frame", 0))
    senders = [RawClient(server.port) for _ in range(3)]
    try:
        # All three listed first: else "two peers left" could mean the third not yet accepted.
        deadline = time.monotonic() + 30
        while len(server.peers) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(server.peers) == 3
        with caplog.at_level(logging.WARNING, logger=LOG.name):
            for sender in senders[:2]:
                sender.send(image[: 900 * 1024])
            deadline = time.monotonic() + 30
            while server.budget.held < 2 * MIB and time.monotonic() < deadline:
                time.sleep(0.01)
            senders[2].send(image[: 900 * 1024])
            deadline = time.monotonic() + 30
            while len(server.peers) > 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(server.peers) == 2, "the client over the in-flight cap was not cut"
            for sender in senders[:2]:
                sender.send(image[900 * 1024 :])
            deadline = time.monotonic() + 30
            while server.budget.held and time.monotonic() < deadline:
                time.sleep(0.01)
        assert server.budget.held == 0, "finished bodies still count as in flight"
        assert server.budget.peak <= server.budget.total
        assert len(server.peers) == 2, "clients within the caps were cut"
        assert "over the cap of 2621440 bytes" in caplog.text
    finally:
        for sender in senders:
            sender.close()
        server.close()


def test_source_side_cuts_a_server_that_declares_more_than_its_image_holds() -> None:
    """igtl-source's connection: a PlusServer stand-in sends a pose, then a lying IMAGE header."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received: list[Packet] = []
    connector = Connector(
        "127.0.0.1", port, LOG, on_packet=received.append, limits=Limits(message=64 * MIB)
    )
    try:
        listener.settimeout(30)
        conn, _ = listener.accept()
        pose = b"".join(bytes(b) for b in encode(TransformContent(np.eye(4)), "ProbeToTracker", 0))
        lying = header("IMAGE", 60 * MIB) + image_header((64, 64, 1))
        conn.sendall(pose + lying + bytes(1024))
        conn.settimeout(30)
        assert conn.recv(1) == b"", "the lying server was not cut"
        assert [decode(p).device for p in received] == ["ProbeToTracker"]
        deadline = time.monotonic() + 30
        while connector.peer is None and time.monotonic() < deadline:
            time.sleep(0.01)
        reason = connector.peer.close_reason if connector.peer is not None else ""
        assert "its image header (64×64×1 × 1 uint8) makes it 4168" in reason
        conn.close()
    finally:
        connector.close()
        listener.close()


def test_a_transform_must_be_48_bytes_and_text_at_most_a_full_string() -> None:
    limits = Limits()
    for kind, size in [("TRANSFORM", 49), ("TRANSFORM", 47), ("STRING", 70_000), ("FOO", 1 << 20)]:
        with pytest.raises(OverLimit):
            Parser(limits).feed(header(kind, size))


def test_source_spends_no_time_on_types_it_does_not_forward_and_remembers_few_bad_devices() -> None:
    """A POLYDATA of a million empty cells costs a Python loop to decode; igtl-source drops it."""
    # nothing listens: the connector retries quietly
    with NodeHarness(IgtlSource, {"address": "127.0.0.1:1"}) as harness:
        source = harness.node
        assert isinstance(source, IgtlSource)
        cells = np.zeros(1_000_000, ">u4").tobytes()
        content = POLY_HEADER.pack(0, 1_000_000, len(cells), 0, 0, 0, 0, 0, 0, 0) + cells
        polydata = Packet(Header(1, "POLYDATA", "Model", 0, len(content), 0), memoryview(content))
        start = time.perf_counter()
        source.on_packet(polydata)
        assert time.perf_counter() - start < 0.02
        assert source.ignored == 1
        for n in range(5000):  # a peer inventing a device name for each malformed transform
            source.on_packet(Packet(Header(1, "TRANSFORM", f"D{n}", 0, 3, 0), memoryview(b"abc")))
        assert len(source.refused) <= 257


def test_a_client_that_stops_in_the_middle_of_a_message_is_cut_and_its_buffer_freed() -> None:
    server = IgtlServer(port=0, log=LOG, stall_s=0.3)
    client = RawClient(server.port)
    try:
        client.send(header("STRING", 60_000) + bytes(100))
        deadline = time.monotonic() + 30
        while not server.budget.held and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.budget.held > 0
        while server.peers and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not server.peers, "a client stalled mid-message kept its connection"
        assert server.budget.held == 0
    finally:
        client.close()
        server.close()
