"""Wire codec: every kind survives the trip bit for bit, big arrays arrive without a copy, and no
bytes a peer can send make ``decode`` do anything but return a message or raise ``WireError``.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from igtflow.stream import wire
from igtflow.stream.messages import KINDS, Image, Mesh, Message, Points, Status, Transform
from igtflow.stream.wire import (
    BIG_BUFFER_BYTES,
    WIRE_VERSION,
    UnknownVersion,
    WireError,
    decode,
    encode,
)

STAMP_NS = 1_715_000_000_123_456_789
BASE: dict[str, Any] = {
    "topic": "probe/image",
    "seq": 41,
    "stamp_ns": STAMP_NS,
    "frame": "probe",
    "meta": {
        "probe": "L12-5 ü",
        "depth_mm": 60.25,
        "gain": 3,
        "negative_zero": -0.0,
        "flags": [True, None, -1, 2**63],
        "raw": b"\x00\xff\x80",
        "nested": {"a": [1.0, "x"], "b": {}},
    },
    "trace": [["probe", STAMP_NS, STAMP_NS + 500], ["seg", STAMP_NS + 900, STAMP_NS + 4_000_000]],
}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _random_bits(shape: tuple[int, ...], dtype: Any, seed: int) -> np.ndarray:
    """Every bit pattern, NaN payloads and negative zero included: equality would hide a change."""
    dtype = np.dtype(dtype)
    raw = np.random.default_rng(seed).bytes(int(np.prod(shape)) * dtype.itemsize)
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _pose(seed: int) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :] = np.random.default_rng(seed).normal(size=(3, 4))
    return matrix


def _messages() -> dict[str, Message]:
    rng = np.random.default_rng(7)
    return {
        "image-uint8-2d": Image(**BASE, data=_random_bits((48, 64), np.uint8, 1)),
        "image-uint16-2d": Image(
            **BASE,
            data=_random_bits((48, 64), np.uint16, 2),
            spacing=(0.2, 0.3),
            ijk_to_ras=_pose(2),
            modality="XA",
        ),
        "image-float32-2d": Image(
            **BASE, data=_random_bits((31, 17), np.float32, 3), modality="RF"
        ),
        "image-uint8-hwc": Image(**BASE, data=_random_bits((24, 32, 3), np.uint8, 4)),
        "image-uint16-hwc": Image(
            **BASE, data=_random_bits((24, 32, 4), np.uint16, 5), modality="LABELS"
        ),
        "image-float32-hwc": Image(
            **BASE, data=_random_bits((24, 32, 2), np.float32, 6), modality="FIELD"
        ),
        "transform": Transform(
            **BASE,
            matrix=_pose(8),
            from_frame="Probe",
            to_frame="Tracker",
            valid=False,
            error_mm=1.2345678901234567,
        ),
        "mesh": Mesh(
            **BASE,
            vertices=rng.normal(size=(50, 3)).astype(np.float32),
            faces=rng.integers(0, 50, size=(96, 3)).astype(np.int32),
        ),
        "mesh-with-scalars": Mesh(
            **BASE,
            vertices=rng.normal(size=(50, 3)).astype(np.float32),
            faces=rng.integers(0, 50, size=(96, 3)).astype(np.int32),
            scalars=_random_bits((50,), np.float32, 9),
        ),
        "points-with-labels": Points(
            **BASE,
            points=rng.normal(size=(3, 3)).astype(np.float32),
            labels=["tip", "entry", "tumour centre"],
        ),
        "points": Points(**BASE, points=rng.normal(size=(5, 3)).astype(np.float32)),
        "status": Status(**BASE, level="warn", code="STALE_OVERLAY", text="overlay is 312 ms old"),
    }


MESSAGES = _messages()


def assert_same_message(received: Message, sent: Message) -> None:
    """Same kind and every field equal: arrays byte for byte, the rest by ``repr`` (types too)."""
    assert type(received) is type(sent)
    for f in dataclasses.fields(sent):
        got, want = getattr(received, f.name), getattr(sent, f.name)
        if isinstance(want, np.ndarray):
            assert isinstance(got, np.ndarray), f.name
            assert (got.dtype, got.shape) == (want.dtype, want.shape), f.name
            assert got.tobytes() == want.tobytes(), f.name
        else:
            assert repr(got) == repr(want), f.name


def over_the_wire(frames: list[Any]) -> list[bytes]:
    """What a receiver holds: fresh byte strings, nothing shared with the sender."""
    return [bytes(frame) for frame in frames]


def header_of(frames: list[Any]) -> dict[str, Any]:
    return msgpack.unpackb(bytes(frames[1]), raw=False)


def with_header(frames: list[Any], header: Any) -> list[bytes]:
    return [bytes(frames[0]), msgpack.packb(header, use_bin_type=True), *map(bytes, frames[2:])]


@pytest.mark.parametrize("name", MESSAGES)
def test_every_kind_round_trips_bit_exact(name: str) -> None:
    sent = MESSAGES[name]
    assert_same_message(decode(over_the_wire(encode(sent))), sent)


@pytest.mark.parametrize("name", MESSAGES)
def test_decoded_arrays_are_read_only(name: str) -> None:
    received = decode([bytearray(frame) for frame in encode(MESSAGES[name])])
    for array_name, array in received.arrays().items():
        assert not array.flags.writeable, array_name


def _large() -> dict[str, tuple[Message, str]]:
    rng = np.random.default_rng(11)
    return {
        "image": (Image(data=_random_bits((512, 512), np.uint16, 12)), "data"),
        "mesh": (
            Mesh(
                vertices=rng.normal(size=(20_000, 3)).astype(np.float32),
                faces=np.zeros((8, 3), np.int32),
            ),
            "vertices",
        ),
        "points": (Points(points=rng.normal(size=(10_000, 3)).astype(np.float32)), "points"),
    }


@pytest.mark.parametrize("name", ["image", "mesh", "points"])
def test_large_array_is_a_read_only_view_of_the_received_buffer(name: str) -> None:
    sent, field = _large()[name]
    frames = over_the_wire(encode(sent))
    received = decode(frames)
    array = getattr(received, field)
    (entry,) = (e for e in header_of(frames)["arrays"] if e["name"] == field)
    assert np.shares_memory(array, np.frombuffer(frames[2 + entry["buf"]], np.uint8))
    assert not array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        array.flat[0] = 1


def test_zmq_frames_received_without_copy_are_decoded_without_copy() -> None:
    sent = Image(topic="probe/image", data=_random_bits((480, 640), np.uint8, 13))
    ctx = zmq.Context()
    try:
        tx, rx = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        tx.bind("inproc://wire-test")
        rx.connect("inproc://wire-test")
        tx.send_multipart(encode(sent), copy=False)
        frames = rx.recv_multipart(copy=False)
        received = decode(frames)
        assert_same_message(received, sent)
        assert np.shares_memory(received.data, np.frombuffer(frames[2].buffer, np.uint8))
        assert not received.data.flags.writeable  # even though zmq's buffer is writable
    finally:
        ctx.destroy(linger=0)  # closes the sockets too, so a failure cannot hang term()


def test_header_carries_the_wire_version() -> None:
    for sent in MESSAGES.values():
        assert header_of(encode(sent))["v"] == WIRE_VERSION


@pytest.mark.parametrize("version", [WIRE_VERSION + 1, 0, "1", None])
def test_unknown_version_is_a_clear_wire_error(version: Any) -> None:
    frames = encode(MESSAGES["transform"])
    header = header_of(frames)
    header["v"] = version
    with pytest.raises(UnknownVersion) as caught:
        decode(with_header(frames, header))
    assert isinstance(caught.value, WireError)  # so the runtime counts and drops it
    text = str(caught.value)
    assert repr(version) in text, "the error names the version received"
    assert f"v{WIRE_VERSION}" in text, "the error names the version this build speaks"


def test_missing_version_is_an_unknown_version() -> None:
    frames = encode(MESSAGES["status"])
    header = header_of(frames)
    del header["v"]
    with pytest.raises(UnknownVersion):
        decode(with_header(frames, header))


@pytest.mark.parametrize("dtype", ["|O", "|O8", "<U4", "|S8", "|V8", "<c16", "<M8[ns]", ">f4"])
def test_array_of_a_non_numeric_or_foreign_dtype_is_rejected(dtype: str) -> None:
    frames = encode(MESSAGES["points"])
    header = header_of(frames)
    header["arrays"][0]["dtype"] = dtype
    with pytest.raises(WireError, match="not allowed"):
        decode(with_header(frames, header))


class _Trap:
    """Unpickling this creates ``path``: proof that somebody ran a peer's code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_pickled_payload_is_rejected_and_never_unpickled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(_Trap(marker))
    unpickled: list[bytes] = []
    monkeypatch.setattr(pickle, "loads", lambda data, **_: unpickled.append(data))
    monkeypatch.setattr(pickle, "load", lambda file, **_: unpickled.append(file))
    frames = encode(MESSAGES["points"])

    with pytest.raises(WireError):
        decode([b"probe/points", payload])  # a pickle where the header belongs

    header = header_of(frames)
    header["arrays"][0].update(dtype="|O", shape=[1], buf=0)
    with pytest.raises(WireError, match="not allowed"):
        decode(with_header([frames[0], frames[1], payload], header))

    header = header_of(frames)
    header["meta"] = {"blob": payload}
    received = decode(with_header(frames, header))
    assert received.meta["blob"] == payload  # bytes stay bytes

    assert not marker.exists()
    assert unpickled == []


def test_arrays_of_64_kib_or_more_go_to_the_placer_and_smaller_ones_inline() -> None:
    placed: list[int] = []
    store: dict[int, np.ndarray] = {}

    def place(array: np.ndarray) -> dict[str, Any]:
        placed.append(array.nbytes)
        store[len(store)] = array.copy()
        return {"key": len(store) - 1}

    def open_ref(ref: dict[str, Any], dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        return store[ref["key"]].view(dtype).reshape(shape)

    just_big = Image(data=_random_bits((256, 256), np.uint8, 14))  # exactly 64 KiB
    just_small = Image(data=_random_bits((255, 257), np.uint8, 15))  # one byte less
    assert just_big.data.nbytes == BIG_BUFFER_BYTES
    assert just_small.data.nbytes == BIG_BUFFER_BYTES - 1

    frames = encode(just_big, place=place)
    assert placed == [BIG_BUFFER_BYTES], "only data; ijk_to_ras rides in the header"
    entries = {e["name"]: e for e in header_of(frames)["arrays"]}
    assert "shm" in entries["data"] and "buf" not in entries["data"]
    assert header_of(frames)["fields"]["ijk_to_ras"] == just_big.ijk_to_ras.tolist()
    assert len(frames) == 2, "topic and header only: the frame lives in shared memory"
    assert_same_message(decode(over_the_wire(frames), open_ref), just_big)

    placed.clear()
    frames = encode(just_small, place=place)
    assert placed == []
    assert all("buf" in e for e in header_of(frames)["arrays"])
    assert_same_message(decode(over_the_wire(frames)), just_small)


def test_array_the_placer_declines_goes_inline() -> None:
    sent = Image(data=_random_bits((480, 640), np.uint8, 16))
    frames = encode(sent, place=lambda array: None)
    assert all("buf" in e for e in header_of(frames)["arrays"])
    assert_same_message(decode(over_the_wire(frames)), sent)


def test_shared_memory_reference_without_an_opener_is_a_wire_error() -> None:
    frames = encode(Image(data=_random_bits((480, 640), np.uint8, 17)), place=lambda a: {"k": 1})
    with pytest.raises(WireError, match="shared memory"):
        decode(over_the_wire(frames))


def test_frame_the_opener_reports_overwritten_raises_frame_overwritten() -> None:
    frames = encode(Image(data=_random_bits((480, 640), np.uint8, 18)), place=lambda a: {"k": 1})
    with pytest.raises(wire.FrameOverwritten):
        decode(over_the_wire(frames), lambda ref, dtype, shape: None)


@pytest.mark.parametrize(
    "sent",
    [
        Points(points=np.zeros((0, 3), np.float32)),
        Mesh(vertices=np.zeros((0, 3), np.float32), faces=np.zeros((0, 3), np.int32)),
        Image(data=np.zeros((0, 64), np.uint8)),
    ],
    ids=["no-points", "empty-mesh", "empty-image"],
)
def test_empty_arrays_round_trip(sent: Message) -> None:
    assert_same_message(decode(over_the_wire(encode(sent))), sent)


# -- hostile peers: anything but a message is a WireError -------------------------------------


def _decode_or_wire_error(frames: list[bytes]) -> None:
    try:
        decode(frames)
    except WireError:
        pass


def _valid_header(kind: str = "Image", arrays: list[dict[str, Any]] | None = None) -> dict:
    return {
        "v": WIRE_VERSION,
        "kind": kind,
        "seq": 0,
        "stamp_ns": 0,
        "frame": "",
        "meta": {},
        "trace": [],
        "fields": {},
        "arrays": arrays or [],
    }


@pytest.mark.parametrize("kind", [[], {}], ids=["list", "map"])
def test_header_with_a_non_string_kind_is_a_wire_error(kind: Any) -> None:
    with pytest.raises(WireError, match="kind"):
        decode([b"t", msgpack.packb(_valid_header(kind))])


def test_shape_whose_element_count_overflows_is_a_wire_error() -> None:
    arrays = [{"name": "data", "dtype": "|u1", "shape": [2**16] * 4, "buf": 0}]
    with pytest.raises(WireError):
        decode([b"t", msgpack.packb(_valid_header("Image", arrays)), b""])


def test_mesh_with_zero_dimensional_scalars_is_a_wire_error() -> None:
    arrays = [
        {"name": "vertices", "dtype": "<f4", "shape": [1, 3], "buf": 0},
        {"name": "faces", "dtype": "<i4", "shape": [1, 3], "buf": 1},
        {"name": "scalars", "dtype": "<f4", "shape": [], "buf": 2},
    ]
    frames = [b"t", msgpack.packb(_valid_header("Mesh", arrays)), bytes(12), bytes(12), bytes(4)]
    with pytest.raises(WireError):
        decode(frames)


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=6))
def test_arbitrary_bytes_decode_or_raise_wire_error(frames: list[bytes]) -> None:
    _decode_or_wire_error(frames)


_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.integers(-3, 70)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
msgpack_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=6) | st.sampled_from([*_valid_header()]), inner, max_size=4
        )
    ),
    max_leaves=16,
)
_SHAPES = st.lists(st.integers(0, 8) | st.integers(0, 2**31), max_size=5)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a decoded header, to pick one to tamper with."""
    if not isinstance(value, dict | list):
        return []
    children: Any = value.items() if isinstance(value, dict) else enumerate(value)
    found = []
    for key, child in children:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


@st.composite
def tampered_headers(draw: st.DrawFn, header: dict[str, Any]) -> dict[str, Any]:
    """A real header with one to three values replaced, removed or added."""
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(header)))
        parent: Any = header
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        how = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if how == "remove":
            del parent[key]
        elif how == "add" and isinstance(parent, dict):
            new_key = draw(st.text(max_size=6))
            if new_key not in parent:  # adding, not replacing: that is the other branch
                parent[new_key] = draw(msgpack_values)
        elif key == "kind":
            parent[key] = draw(st.sampled_from([*KINDS, "Pickle"]) | st.text(max_size=8))
        elif key == "shape":
            parent[key] = draw(_SHAPES)
        elif key == "dtype":
            parent[key] = draw(st.sampled_from([*wire.ALLOWED_DTYPES, "|O", "<U1", ">f4"]))
        else:
            parent[key] = draw(msgpack_values)
        if not _paths(header):
            break
    return header


_small_encodings = [
    [bytes(frame) for frame in encode(m)]
    for name, m in MESSAGES.items()
    if sum(len(f) for f in encode(m)) < 20_000 or name == "image-uint8-2d"
]


@st.composite
def corrupted_encodings(draw: st.DrawFn) -> list[bytes]:
    frames = [bytearray(frame) for frame in draw(st.sampled_from(_small_encodings))]
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(frames) - 1))
        frame = frames[index]
        how = draw(st.sampled_from(["flip", "truncate", "extend", "drop", "duplicate", "header"]))
        if how == "flip" and frame:
            at = draw(st.integers(0, len(frame) - 1))
            frame[at] = draw(st.integers(0, 255))
        elif how == "truncate":
            del frame[draw(st.integers(0, len(frame))) :]
        elif how == "extend":
            frame.extend(draw(st.binary(min_size=1, max_size=16)))
        elif how == "drop":
            del frames[index]
        elif how == "duplicate":
            frames.insert(index, bytearray(frame))
        elif how == "header" and len(frames) > 1:
            header = draw(st.dictionaries(st.text(max_size=6), msgpack_values) | msgpack_values)
            frames[1] = bytearray(msgpack.packb(header, use_bin_type=True))
        if not frames:
            break
    return [bytes(frame) for frame in frames]


@FUZZ
@given(corrupted_encodings())
def test_corrupted_encodings_decode_or_raise_wire_error(frames: list[bytes]) -> None:
    _decode_or_wire_error(frames)


@st.composite
def encodings_with_tampered_headers(draw: st.DrawFn) -> list[bytes]:
    frames = draw(st.sampled_from(_small_encodings))
    header = draw(tampered_headers(header_of(frames)))
    buffers = list(frames[2:])
    if draw(st.booleans()):
        sizes_that_fit = st.sampled_from([b"", bytes(4), bytes(12)])
        buffers = draw(st.lists(st.binary(max_size=64) | sizes_that_fit, max_size=4))
    return [frames[0], msgpack.packb(header, use_bin_type=True), *buffers]


@FUZZ
@given(encodings_with_tampered_headers())
def test_tampered_headers_decode_or_raise_wire_error(frames: list[bytes]) -> None:
    _decode_or_wire_error(frames)
