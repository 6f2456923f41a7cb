"""Properties of the recording scanner under damage: never worse than the stock ``mcap`` reader.

For a small recording with many chunks, hypothesis flips bits (in length fields and anywhere),
cuts the file at any byte, appends garbage and zeroes ranges. For every damaged file the scanner
must raise nothing but ``RecordingError`` (and that only where the stock reader finds nothing),
finish well within a second, allocate nothing near what a damaged length declares, hand out only
messages identical to the recorded ones (unless it marks them unverified), and keep every intact
message that the stock reader finds, seeking or streaming.
"""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcap.reader import NonSeekingReader, make_reader

from igtflow.stream.messages import Image, Transform
from igtflow.stream.recording import RecordingWriter
from igtflow.stream.recording_scan import RecordingError, ScanReport, scan

Key = tuple[str, int, bytes]


class Original:
    """The undamaged recording and its messages (with a short repr for hypothesis' reports)."""

    def __init__(self, data: bytes, messages: set[Key]) -> None:
        self.data, self.messages = data, messages

    def __repr__(self) -> str:
        return f"Original({len(self.data)} bytes, {len(self.messages)} messages)"


EXAMPLES = settings(
    max_examples=300,
    deadline=None,  # timed below, on the scan alone
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Original:
    """A closed recording of 3 topics in about 12 chunks, and its messages."""
    path = tmp_path_factory.mktemp("original") / "small.mcap"
    rng = np.random.default_rng(12)
    with RecordingWriter(path, "name: small\nnodes: []\n", {"case": "properties"}, 1500) as rec:
        for seq in range(12):
            image = rng.integers(0, 256, (24, 24), dtype=np.uint8)
            rec.write(Image(topic="probe/image", seq=seq, stamp_ns=seq, data=image), seq)
            rec.write(Transform(topic="probe/pose", seq=seq, stamp_ns=seq), seq)
            if seq % 3 == 0:
                rec.write(Transform(topic="tracker/tool", seq=seq // 3, stamp_ns=seq), seq)
    data = path.read_bytes()
    messages = stock_messages(data, seeking=True)
    assert len(messages) == 28
    return Original(data, messages)


def stock_messages(data: bytes, seeking: bool) -> set[Key]:
    """What the ``mcap`` package's reader yields from ``data`` before it gives up, if anything."""
    found: set[Key] = set()
    try:
        stream = io.BytesIO(data)  # a BytesIO never allocates a damaged length up front
        reader = make_reader(stream) if seeking else NonSeekingReader(stream)
        for _, channel, message in reader.iter_messages(log_time_order=False):
            found.add((channel.topic, message.sequence, bytes(message.data)))
    except Exception:  # the stock readers raise many types on damaged files
        pass
    return found


def length_fields(data: bytes) -> list[int]:
    """Offsets of every byte of every top-level record's length field."""
    offsets, pos = [], 8
    while pos + 9 <= len(data) - 8:
        offsets.extend(range(pos + 1, pos + 9))
        pos += 9 + struct.unpack_from("<Q", data, pos + 1)[0]
    return offsets


def check(damaged: bytes, original: Original, tmp_path: Path) -> None:
    recorded = original.messages
    path = tmp_path / "damaged.mcap"
    path.write_bytes(damaged)
    report = ScanReport(str(path))
    tracemalloc.start()
    started = time.process_time()  # CPU time: other load on a shared machine does not count
    try:
        got = list(scan(path, report=report))
    except RecordingError:
        got = None
    elapsed = time.process_time() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert elapsed < 0.5, f"scan took {elapsed:.2f} s"
    assert peak < 8 * len(damaged) + (1 << 20), f"scan allocated {peak} bytes"
    stock = stock_messages(damaged, seeking=True) | stock_messages(damaged, seeking=False)
    stock_intact = stock & recorded
    if got is None:
        assert not stock_intact, "refused a file the stock reader reads"
        return
    ours = {(raw.topic, raw.sequence, raw.data) for raw in got}
    verified = {(raw.topic, raw.sequence, raw.data) for raw in got if raw.verified}
    assert verified <= recorded, "a verified message differs from the recorded one"
    assert len(ours) == len(got), "a message was handed out twice"
    missing = stock_intact - ours
    assert not missing, f"the stock reader found {len(missing)} intact messages the scan lost"
    if ours != recorded:
        assert report.problems, "a loss went unreported"


@EXAMPLES
@given(data=st.data())
def test_a_flipped_bit_in_any_length_field(
    data: st.DataObject, original: Original, tmp_path: Path
) -> None:
    clean = original.data
    byte = data.draw(st.sampled_from(length_fields(clean)), label="byte")
    damaged = bytearray(clean)
    damaged[byte] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    check(bytes(damaged), original, tmp_path)


@EXAMPLES
@given(where=st.integers(0, 10**9), bit=st.integers(0, 7))
def test_a_flipped_bit_anywhere(where: int, bit: int, original: Original, tmp_path: Path) -> None:
    damaged = bytearray(original.data)
    damaged[where % len(damaged)] ^= 1 << bit
    check(bytes(damaged), original, tmp_path)


@EXAMPLES
@given(cut=st.integers(0, 10**9))
def test_a_cut_at_any_byte(cut: int, original: Original, tmp_path: Path) -> None:
    clean = original.data
    check(clean[: cut % len(clean)], original, tmp_path)


@EXAMPLES
@given(garbage=st.binary(min_size=1, max_size=2048))
def test_garbage_appended(garbage: bytes, original: Original, tmp_path: Path) -> None:
    check(original.data + garbage, original, tmp_path)


@EXAMPLES
@given(start=st.integers(0, 10**9), length=st.integers(1, 600))
def test_a_zeroed_range(start: int, length: int, original: Original, tmp_path: Path) -> None:
    damaged = bytearray(original.data)
    start %= len(damaged)
    damaged[start : start + length] = bytes(len(damaged[start : start + length]))
    check(bytes(damaged), original, tmp_path)
