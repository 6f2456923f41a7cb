"""Wire codec: ``[topic][msgpack header][buffer 0][buffer 1]…`` — never pickle.

The header carries the kind, the common fields, the kind's scalar fields and, per array, its
``{name, dtype, shape}`` plus where its bytes are: an inline buffer index, or a shared-memory slot
reference (see ``shm.py``). Decoding validates everything a peer could lie about and raises
``WireError`` (counted and dropped by the runtime) instead of crashing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import msgpack
import numpy as np

from igtflow.stream.messages import KINDS, Message

WIRE_VERSION = 1
# A buffer this big is worth avoiding a copy of, in both places that copy: an array goes to a
# shared-memory slot instead of inline (``encode``, ``NodeRuntime.new_frame``), and an inline buffer
# is handed to ZeroMQ zero-copy (``transport.Output.send``). Below it, copying is the cheaper way.
BIG_BUFFER_BYTES = 64 * 1024
MAX_NDIM = 4
BASE_FIELDS = ("topic", "seq", "stamp_ns", "frame", "meta", "trace")

# Only plain numeric dtypes may cross the wire: an object dtype would be a way to run code.
ALLOWED_DTYPES = {
    np.dtype(t).str: np.dtype(t)
    for t in ("u1", "<u2", "<i2", "<u4", "<i4", "<i8", "<u8", "<f4", "<f8", "|b1")
}

Frame = bytes | memoryview
Placer = Callable[[np.ndarray], dict[str, Any] | None]
Opener = Callable[[dict[str, Any], np.dtype, tuple[int, ...]], np.ndarray | None]


class WireError(ValueError):
    """A message that cannot be decoded: counted and dropped, never fatal to the node."""


class UnknownVersion(WireError):
    """The header's ``v`` is one this build does not speak."""


class FrameOverwritten(Exception):
    """A shared-memory frame was reused by its producer before this consumer got to it."""


def _scalar_fields(kind: type[Message]) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(kind)
        if f.name not in BASE_FIELDS and f.name not in kind.ARRAYS
    ]


_SCALAR_FIELDS = {name: _scalar_fields(kind) for name, kind in KINDS.items()}
_SCALAR_FIELD_SETS = {name: frozenset(fields) for name, fields in _SCALAR_FIELDS.items()}


def _plain(value: Any) -> Any:
    """Small arrays (4×4 matrices) travel as nested lists; float64 round-trips exactly."""
    return value.tolist() if isinstance(value, np.ndarray) else value


def encode(message: Message, place: Placer | None = None) -> list[Frame]:
    """Frames for ``message``; arrays of ``BIG_BUFFER_BYTES`` or more go to ``place`` (shared
    memory) when given."""
    arrays_meta: list[dict[str, Any]] = []
    buffers: list[Frame] = []
    for name, array in message.arrays().items():
        entry: dict[str, Any] = {"name": name, "dtype": array.dtype.str, "shape": list(array.shape)}
        ref = place(array) if place is not None and array.nbytes >= BIG_BUFFER_BYTES else None
        if ref is not None:
            entry["shm"] = ref
        else:
            entry["buf"] = len(buffers)
            # A flat byte view works for every dtype and for zero-size arrays too.
            buffers.append(memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8)))
        arrays_meta.append(entry)
    header = {
        "v": WIRE_VERSION,
        "kind": message.KIND,
        "seq": message.seq,
        "stamp_ns": message.stamp_ns,
        "frame": message.frame,
        "meta": message.meta,
        "trace": message.trace,
        "fields": {name: _plain(getattr(message, name)) for name in _SCALAR_FIELDS[message.KIND]},
        "arrays": arrays_meta,
    }
    try:
        packed = msgpack.packb(header, use_bin_type=True)
    except (TypeError, ValueError) as exc:
        raise WireError(f"cannot encode {message.KIND} on {message.topic!r}: {exc}") from exc
    return [message.topic.encode(), packed, *buffers]


def _as_bytes_view(frame: Any) -> memoryview:
    """A byte view of a received frame (bytes, memoryview or zmq.Frame) without copying."""
    if frame.__class__ is not memoryview:  # getattr's miss on a memoryview raises inside
        frame = memoryview(getattr(frame, "buffer", frame))
    return frame if frame.format == "B" and frame.ndim == 1 else frame.cast("B")


def _check_header(header: Any) -> dict[str, Any]:
    if not isinstance(header, dict):
        raise WireError(f"header is a {type(header).__name__}, not a map")
    version = header.get("v")
    if type(version) is not int or version != WIRE_VERSION:
        raise UnknownVersion(
            f"wire version {version!r} is not supported (this build speaks v{WIRE_VERSION}); "
            "upgrade the older side"
        )
    kind = header.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise WireError(f"unknown message kind {kind!r}")
    for key, kind_of in _HEADER_TYPES:
        # msgpack gives exact types, so this also keeps a bool out of an int field
        if header.get(key).__class__ is not kind_of:
            raise WireError(f"header field {key!r} missing or not {kind_of.__name__}")
    return header


_HEADER_TYPES = (
    ("seq", int),
    ("stamp_ns", int),
    ("frame", str),
    ("meta", dict),
    ("trace", list),
    ("fields", dict),
    ("arrays", list),
)


def _array_spec(entry: Any) -> tuple[str, np.dtype, tuple[int, ...]]:
    if not isinstance(entry, dict):
        raise WireError("array entry is not a map")
    name, dtype_str, shape = entry.get("name"), entry.get("dtype"), entry.get("shape")
    if not isinstance(name, str):
        raise WireError("array entry has no name")
    dtype = ALLOWED_DTYPES.get(dtype_str) if isinstance(dtype_str, str) else None
    if dtype is None:
        raise WireError(f"array {name!r}: dtype {dtype_str!r} is not allowed")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_NDIM
        or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**31 for n in shape)
    ):
        raise WireError(f"array {name!r}: bad shape {shape!r}")
    return name, dtype, tuple(shape)


def decode(frames: Sequence[Any], open_ref: Opener | None = None) -> Message:
    """The message in ``frames``; arrays are read-only views of the received bytes (no copy).

    Raises ``WireError`` for anything malformed and ``FrameOverwritten`` when a shared-memory
    frame was reused before it could be held.
    """
    if len(frames) < 2:
        raise WireError(f"message has {len(frames)} frame(s); at least topic and header needed")
    try:
        topic = str(_as_bytes_view(frames[0]), "utf-8")
        header = msgpack.unpackb(_as_bytes_view(frames[1]), raw=False, strict_map_key=True)
    except (UnicodeDecodeError, ValueError, msgpack.UnpackException) as exc:
        raise WireError(f"unreadable topic or header: {exc}") from exc
    header = _check_header(header)
    kind = KINDS[header["kind"]]
    buffers = frames[2:]
    values: dict[str, Any] = {}
    for entry in header["arrays"]:
        name, dtype, shape = _array_spec(entry)
        if name not in kind.ARRAYS or name in values:
            raise WireError(f"{kind.KIND} has no array field {name!r} (or it is repeated)")
        count = math.prod(shape)  # exact: numpy's int64 product can wrap to 0
        if "shm" in entry:
            if open_ref is None or not isinstance(entry["shm"], dict):
                raise WireError(f"array {name!r} refers to shared memory this receiver cannot map")
            try:
                array = open_ref(entry["shm"], dtype, shape)
            except (ValueError, OSError) as exc:  # PermissionError is an OSError
                raise WireError(f"array {name!r}: unusable shared-memory reference: {exc}") from exc
            if array is None:
                raise FrameOverwritten(f"{topic} seq {header['seq']}: {name} was overwritten")
        else:
            index = entry.get("buf")
            if (
                not isinstance(index, int)
                or isinstance(index, bool)
                or not 0 <= index < len(buffers)
            ):
                raise WireError(f"array {name!r} names buffer {index!r} of {len(buffers)}")
            view = _as_bytes_view(buffers[index])
            if view.nbytes != count * dtype.itemsize:
                raise WireError(
                    f"array {name!r}: {view.nbytes} bytes for shape {shape} of {dtype} "
                    f"({count * dtype.itemsize} expected)"
                )
            array = np.frombuffer(view, dtype=dtype).reshape(shape)
            array.flags.writeable = False
        values[name] = array
    fields = header["fields"]
    if not _SCALAR_FIELD_SETS[kind.KIND].issuperset(fields):
        raise WireError(f"{kind.KIND} header has unknown fields {sorted(map(str, fields))}")
    try:
        return kind(
            topic=topic,
            seq=header["seq"],
            stamp_ns=header["stamp_ns"],
            frame=header["frame"],
            meta=header["meta"],
            trace=header["trace"],
            **fields,
            **values,
        )
    except (TypeError, ValueError, IndexError) as exc:
        raise WireError(f"{kind.KIND} on {topic!r} is invalid: {exc}") from exc
