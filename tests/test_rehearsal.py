"""Rehearsals: the message path run on a copy of the last packet, touching no frame and no count."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from igtflow.stream import packets, rehearsal, wire
from igtflow.stream.messages import Image, Message, Transform
from igtflow.stream.shm import SlotPool
from tests.helpers.graph_runs import GraphRun, chain, wait_settled


def test_a_steady_stream_is_due_one_period_after_its_last_message() -> None:
    cadence = rehearsal.Cadence()
    assert cadence.due(10.0) is None, "no arrival is no period"
    cadence.arrived(10.0)
    assert cadence.due(10.0) is None, "one arrival is no period"
    cadence.arrived(10.033)
    assert cadence.due(10.04) == pytest.approx(10.066)
    assert cadence.due(10.2) is None, "a stream that missed a whole period has stopped"
    cadence.arrived(10.034)  # 1 ms apart: fast enough to stay warm by itself
    assert cadence.due(10.035) is None
    cadence.arrived(12.034)  # 2 s apart: not a stream to rehearse for
    assert cadence.due(12.04) is None


def test_rehearsals_come_in_order_before_the_message_and_never_twice() -> None:
    due = 5.0
    first = rehearsal.next_rehearsal(due, 0.0)
    assert first == pytest.approx(due - rehearsal.LEADS_S[0])
    second = rehearsal.next_rehearsal(due, first)
    assert second == pytest.approx(due - rehearsal.LEADS_S[1])
    assert rehearsal.next_rehearsal(due, second) is None
    assert rehearsal.next_rehearsal(None, 0.0) is None


def _packet(message: wire.Message, place: Callable[[np.ndarray], dict | None]) -> bytes:
    return packets.pack(wire.encode(message, place))


def test_a_rehearsal_decodes_without_mapping_the_frame(tmp_path: Path) -> None:
    pool = SlotPool(tmp_path / "shm", "src.image", slots=2)
    try:
        frame = np.arange(512 * 512, dtype=np.uint16).reshape(512, 512)
        packet = _packet(Image(data=frame, meta={"n": 7}), pool.place)
        pool.close(unlink=True)  # the slot is gone: a rehearsal must not need it
        assert rehearsal.rehearsable(packet)
        copy = rehearsal.decode(packet)
        assert isinstance(copy, Image)
        assert copy.meta == {"n": 7}
        assert (copy.data.shape, copy.data.dtype) == (frame.shape, frame.dtype)
        assert not copy.data.flags.writeable
        assert copy.data.strides == (0, 0), "a stand-in: one zero, no memory behind it"
        assert not copy.data.any()
        rehearsal.encode(packet)  # and the way back out sends nothing, needs no slot
    finally:
        pool.close(unlink=True)


def test_small_messages_and_inline_arrays_rehearse_too() -> None:
    packet = _packet(Transform(matrix=np.diag([1.0, 2.0, 3.0, 1.0]), meta={"k": "v"}), None)
    copy = rehearsal.decode(packet)
    assert isinstance(copy, Transform)
    assert copy.matrix[1, 1] == 2.0
    image = Image(data=np.ones((8, 8), np.uint8))
    copy = rehearsal.decode(_packet(image, None))
    assert isinstance(copy, Image) and copy.data.sum() == 64


def test_a_packet_held_in_shared_memory_or_too_big_is_not_rehearsed() -> None:
    assert not rehearsal.rehearsable(b"\x02\x00\x00" + b"ref")
    assert not rehearsal.rehearsable(None)
    big = _packet(Image(data=np.ones((256, 256), np.uint8)), None)  # 64 KiB inline
    assert not rehearsal.rehearsable(big), "copying it would evict more than it warms"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_a_rehearsal_of_garbage_fails_quietly(packet: bytes) -> None:
    copy = rehearsal.decode(b"\x01" + packet)
    assert copy is None or isinstance(copy, Message)
    rehearsal.encode(b"\x01" + packet)


@pytest.mark.parametrize("enabled", [True, False], ids=["rehearsing", "off"])
def test_nodes_rehearse_a_steady_stream_and_deliver_it_intact(
    start_graph: Callable[..., GraphRun],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    enabled: bool,
) -> None:
    monkeypatch.setenv(rehearsal.ENV_SWITCH, "1" if enabled else "0")
    out = tmp_path / "sink.jsonl"
    run = start_graph(chain(out, size=512, rate_hz=30, count=45))
    records = wait_settled(run, out, "sink")
    assert [r["n"] for r in records] == list(range(45)), "every frame, in order"
    assert all(r["intact"] for r in records)
    counts = {node: run.stats(node).get("rehearsals", 0) for node in ("src", "relay", "sink")}
    if enabled:
        # every node but the first messages' receivers rehearses about once or twice a frame
        assert all(count >= 20 for count in counts.values()), counts
    else:
        assert counts == {"src": 0, "relay": 0, "sink": 0}
    stats = run.input_stats("sink")
    assert (stats["skipped"], stats["lost"], stats["malformed"]) == (0, 0, 0)
