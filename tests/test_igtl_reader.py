"""Property tests of the OpenIGTLink reader under damage: arbitrary bytes, flipped header bits,
truncation, declared sizes far beyond what arrives.

Whatever arrives: only IgtlError comes out, what the reader holds stays within its caps (counted
by its budget and measured by tracemalloc), and the messages before the damage are decoded.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from igtflow.render.igtl.codec import encode
from igtflow.render.igtl.image import IMAGE_HEADER, ImageContent
from igtflow.render.igtl.limits import Budget, Limits
from igtflow.render.igtl.peer import Peer
from igtflow.render.igtl.protocol import HEADER, HEADER_SIZE, IgtlError, Packet
from igtflow.render.igtl.reader import FIRST_CHUNK, Parser
from igtflow.render.igtl.text import StringContent
from igtflow.render.igtl.transform import TransformContent

DATA = Path(__file__).parent / "data" / "openigtlink"
LOG = logging.getLogger("test.igtl.reader")
LIMITS = Limits(message=4 * 1024 * 1024)
TOTAL = 8 * 1024 * 1024


def _join(buffers) -> bytes:
    return b"".join(bytes(b) for b in buffers)


VALID = [path.read_bytes() for path in sorted(DATA.glob("*.bin"))] + [
    _join(encode(TransformContent(np.eye(4)), "ProbeToTracker", 0, 2, {"Seq": "7"})),
    _join(encode(StringContent("hello"), "Text", 0, 2)),
    _join(encode(ImageContent(np.ones((1, 4, 6, 1), np.uint8), np.eye(4)), "Image", 0, 2, {})),
]
TYPE_FIELD = range(2, 14)
SIZE_FIELD = range(42, 50)

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read(data: bytes, chunks: list[int], budget: Budget) -> tuple[list[Packet], int]:
    """Packets the reader completes from ``data`` arriving in ``chunks``, and the most it held;
    IgtlError (and nothing else) ends the stream as it ends a connection."""
    parser = Parser(LIMITS, budget)
    view = memoryview(data)
    packets: list[Packet] = []
    most = 0
    turn = 0
    try:
        while view:
            target = parser.buffer()
            n = min(len(target), len(view), chunks[turn % len(chunks)] if chunks else len(view))
            turn += 1
            target[:n] = view[:n]
            view = view[n:]
            packet = parser.advance(n)
            most = max(most, parser.held)
            if packet is not None:
                packets.append(packet)
    except IgtlError:
        pass
    finally:
        parser.close()
    return packets, most


def same(packet: Packet, message: bytes) -> bool:
    """``packet`` is ``message``: same header and the same body bytes."""
    header = HEADER.unpack_from(message)
    body = message[HEADER_SIZE:]
    return (
        packet.type == header[1].rstrip(b"\0").decode()
        and packet.device == header[2].rstrip(b"\0").decode()
        and bytes(packet.content) in body
    )


chunk_sizes = st.lists(st.integers(1, 5000), max_size=8)


@settings(FAST, max_examples=300)
@given(st.binary(max_size=3000), chunk_sizes)
def test_arbitrary_bytes_raise_only_igtl_error_and_hold_within_the_caps(
    data: bytes, chunks: list[int]
) -> None:
    budget = Budget(TOTAL)
    _, most = read(data, chunks, budget)
    assert most <= FIRST_CHUNK  # nothing arrived beyond the first chunk of a body
    assert budget.held == 0 and budget.peak <= TOTAL


@settings(FAST, max_examples=300)
@given(
    st.lists(st.sampled_from(range(len(VALID))), max_size=4),
    st.sampled_from(range(len(VALID))),
    st.lists(
        st.tuples(st.sampled_from([*TYPE_FIELD, *SIZE_FIELD]), st.integers(0, 7)),
        min_size=1,
        max_size=4,
    ),
    st.integers(0, 400),
    st.binary(max_size=300),
    chunk_sizes,
)
def test_flipped_header_bits_and_truncation_keep_every_message_before_the_damage(
    before: list[int],
    damaged: int,
    flips: list[tuple[int, int]],
    cut: int,
    tail: bytes,
    chunks: list[int],
) -> None:
    message = bytearray(VALID[damaged])
    for position, bit in flips:
        message[position] ^= 1 << bit
    message = message[: max(0, len(message) - cut)]
    prefix = [VALID[n] for n in before]
    budget = Budget(TOTAL)
    packets, most = read(b"".join(prefix) + bytes(message) + tail, chunks, budget)
    assert len(packets) >= len(prefix)
    assert all(same(p, m) for p, m in zip(packets, prefix, strict=False))
    assert most <= LIMITS.message
    assert budget.held == 0 and budget.peak <= TOTAL


@settings(FAST, max_examples=80)
@given(
    st.sampled_from(["IMAGE", "TRANSFORM", "STRING", "STATUS", "POINT", "POLYDATA", "GET_X", "Z"]),
    st.one_of(st.none(), st.integers(0, LIMITS.message), st.integers(0, (1 << 64) - 1)),
    st.sampled_from([1, 2]),
    st.tuples(st.integers(1, 2048), st.integers(1, 2048), st.integers(1, 4)),
    st.binary(max_size=2048),
)
def test_declared_sizes_far_beyond_what_is_sent_cost_no_memory(
    kind: str, declared: int | None, version: int, dims: tuple[int, int, int], sent: bytes
) -> None:
    """``declared`` None: the size an IMAGE header of ``dims`` makes right, the sneakiest lie."""
    extended = struct.pack(">HHII", 12, 0, 0, 0) if version == 2 else b""
    matrix = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0, 0, 0, 0]
    image = IMAGE_HEADER.pack(1, 1, 3, 1, 1, *dims, *matrix, 0, 0, 0, *dims)
    if declared is None:
        declared = len(extended) + len(image) + dims[0] * dims[1] * dims[2]
    body = extended + (image if kind == "IMAGE" else b"") + sent
    data = HEADER.pack(version, kind.encode(), b"Liar", 0, declared, 0) + body
    tracemalloc.start()
    try:
        packets, most = read(data, [], Budget(TOTAL))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert most <= FIRST_CHUNK
    assert peak < FIRST_CHUNK + 64 * 1024, f"reading {len(data)} bytes allocated {peak} bytes"
    assert len(packets) <= 1


# -- the connection handler ------------------------------------------------------------------


@pytest.fixture(scope="module")
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


@pytest.fixture(scope="module")
def thread_errors() -> Iterator[list[BaseException]]:
    errors: list[BaseException] = []
    saved = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)  # type: ignore[assignment]
    yield errors
    threading.excepthook = saved


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(range(len(VALID))), max_size=3), st.binary(max_size=600))
def test_a_connection_survives_any_bytes_and_passes_on_what_came_before_them(
    listener: socket.socket,
    thread_errors: list[BaseException],
    before: list[int],
    garbage: bytes,
) -> None:
    client = socket.create_connection(listener.getsockname()[:2])
    server_side, address = listener.accept()
    received: list[Packet] = []
    budget = Budget(TOTAL)
    peer = Peer(server_side, f"{address[0]}:{address[1]}", LOG, on_packet=received.append,
                limits=LIMITS, budget=budget)  # fmt: skip
    try:
        client.sendall(b"".join(VALID[n] for n in before) + garbage)
        client.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 30
        while not peer.closed and time.monotonic() < deadline:
            time.sleep(0.002)
        assert peer.closed, "the connection handler neither closed nor finished"
        peer.join()
    finally:
        peer.close()
        client.close()
    assert not thread_errors, thread_errors
    assert len(received) >= len(before)
    assert all(same(p, VALID[n]) for p, n in zip(received, before, strict=False))
    assert budget.held == 0
