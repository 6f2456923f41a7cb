"""Messages for tests: one of every kind with every field set, and a field-by-field comparison."""

from __future__ import annotations

import numpy as np

from igtflow.stream import wire
from igtflow.stream.messages import Image, Mesh, Message, Points, Status, Transform


def sample_messages() -> list[Message]:
    """One message of every kind, with odd values in every field (a 512 KiB image among them)."""
    rng = np.random.default_rng(7)
    matrix = np.eye(4)
    matrix[:3, 3] = [1.5, -2.25, 1e-9]
    return [
        Image(
            topic="probe/image",
            seq=0,
            stamp_ns=1_000,
            frame="Image",
            meta={"gain": 3},
            trace=[["probe", 1, 2]],
            data=rng.integers(0, 256, (64, 80), dtype=np.uint8),
            spacing=(0.2, 0.3),
            ijk_to_ras=matrix,
        ),
        # 512×512 uint16 (512 KiB): the size that travels through shared memory.
        Image(
            topic="xray/image",
            seq=5,
            stamp_ns=2_000,
            data=rng.integers(0, 65536, (512, 512), dtype=np.uint16),
            modality="XA",
        ),
        Transform(
            topic="tracker/probe",
            seq=1,
            stamp_ns=3_000,
            matrix=matrix @ np.diag([1.0, 1.0, 1.0, 1.0]) * np.pi,
            from_frame="Probe",
            to_frame="Tracker",
            valid=False,
            error_mm=0.125,
        ),
        Mesh(
            topic="model/liver",
            seq=2,
            stamp_ns=4_000,
            vertices=rng.normal(size=(100, 3)),
            faces=rng.integers(0, 100, (50, 3)),
            scalars=rng.normal(size=100),
        ),
        Points(
            topic="seg/landmarks",
            seq=3,
            stamp_ns=5_000,
            points=rng.normal(size=(4, 3)),
            labels=["a", "b", "c", "d"],
        ),
        Status(topic="seg/status", seq=4, stamp_ns=6_000, level="warn", code="x", text="ü"),
    ]


def assert_same(got: Message, want: Message) -> None:
    """``got`` is ``want`` field for field, arrays bit for bit with their dtype and shape."""
    assert type(got) is type(want)
    for name in ("topic", "seq", "stamp_ns", "frame", "meta", "trace"):
        assert getattr(got, name) == getattr(want, name), name
    for name, array in want.arrays().items():
        got_array = getattr(got, name)
        assert got_array.dtype == array.dtype and got_array.shape == array.shape, name
        assert got_array.tobytes() == array.tobytes(), f"{name} differs"
    for name in wire._SCALAR_FIELDS[want.KIND]:
        want_value, got_value = getattr(want, name), getattr(got, name)
        if isinstance(want_value, np.ndarray):
            assert np.array_equal(got_value, want_value) and got_value.dtype == want_value.dtype
        else:
            assert got_value == want_value, name
