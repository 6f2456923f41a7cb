"""OpenIGTLink framing: the 58-byte header, header v2's extended header and metadata, CRC-64.

Every message is ``header | body``. Header (big endian): ``u16 version, char[12] type,
char[20] device, u64 timestamp (32.32 fixed-point seconds since 1970), u64 body size, u64 CRC-64
of the body``. In header v2 the body is ``extended header (u16 size = 12, u16 metadata header size,
u32 metadata size, u32 message id) | content | metadata header (u16 count, then per entry u16 key
size, u16 value encoding, u32 value size) | keys and values`` (``igtlMessageBase.cxx``).

:class:`~igtflow.render.igtl.reader.Parser` turns a byte stream into checked :class:`Packet` s;
anything malformed raises :class:`IgtlError` and nothing else.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from igtflow.render.igtl.crc import crc64

HEADER = struct.Struct(">H12s20sQQQ")
HEADER_SIZE = HEADER.size  # 58
EXTENDED = struct.Struct(">HHII")
EXTENDED_SIZE = EXTENDED.size  # 12
META_ENTRY = struct.Struct(">HHI")
TYPE_LEN = 12
DEVICE_LEN = 20
VERSIONS = (1, 2)
# A 512³ float volume is 512 MiB; anything bigger than this from a peer is an attack or a bug.
MAX_BODY_SIZE = 256 * 1024 * 1024
ENCODING_ASCII = 3
ENCODING_UTF8 = 106
_NS = 1_000_000_000
_FRAC = 1 << 32

Buffer = bytes | bytearray | memoryview


class IgtlError(ValueError):
    """Bytes that are not a valid OpenIGTLink message (or a message we cannot encode)."""


# -- timestamps -------------------------------------------------------------------------------


def stamp_to_igtl(stamp_ns: int) -> int:
    """Nanoseconds since 1970 as the header's 32.32 fixed-point seconds (rounded)."""
    seconds, nanos = divmod(int(stamp_ns), _NS)
    frac = (nanos * _FRAC + _NS // 2) // _NS
    if frac >= _FRAC:  # rounds up to the next whole second
        seconds, frac = seconds + 1, 0
    if not 0 <= seconds < _FRAC:
        raise IgtlError(f"timestamp {stamp_ns} ns does not fit OpenIGTLink's 32-bit seconds")
    return (seconds << 32) | frac


def igtl_to_stamp(timestamp: int) -> int:
    """The header's 32.32 fixed-point seconds as nanoseconds since 1970 (rounded)."""
    seconds, frac = timestamp >> 32, timestamp & 0xFFFFFFFF
    return seconds * _NS + (frac * _NS + _FRAC // 2) // _FRAC


# -- names -----------------------------------------------------------------------------------


def device_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an OpenIGTLink device name, or None when it can."""
    try:
        raw = name.encode("ascii")
    except UnicodeEncodeError:
        return f"device name {name!r} must be ASCII"
    if len(raw) > DEVICE_LEN:
        return f"device name {name!r} has {len(raw)} characters; OpenIGTLink allows {DEVICE_LEN}"
    if b"\0" in raw:
        return f"device name {name!r} contains a NUL character"
    return None


def _device_bytes(name: str) -> bytes:
    problem = device_name_problem(name)
    if problem:
        raise IgtlError(problem)
    return name.encode("ascii")


def _type_bytes(kind: str) -> bytes:
    if not kind.isascii() or not 0 < len(kind) <= TYPE_LEN:
        raise IgtlError(f"message type {kind!r} must be 1 to {TYPE_LEN} ASCII characters")
    return kind.encode("ascii")


def _text(raw: bytes, what: str) -> str:
    """A NUL-padded header field; bytes after the first NUL are ignored, as the C library does."""
    raw = raw.split(b"\0", 1)[0]
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise IgtlError(f"{what} field {raw!r} is not ASCII text") from None


# -- packets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """The fixed 58-byte header of one message."""

    version: int
    type: str
    device: str
    timestamp: int
    body_size: int
    crc: int

    @property
    def stamp_ns(self) -> int:
        return igtl_to_stamp(self.timestamp)

    @classmethod
    def unpack(cls, raw: Buffer) -> Header:
        """The header in ``raw``; what its body size may be is for the reader's caps to say."""
        if len(raw) < HEADER_SIZE:
            raise IgtlError(f"header needs {HEADER_SIZE} bytes, got {len(raw)}")
        version, type_raw, device_raw, timestamp, body_size, crc = HEADER.unpack_from(raw)
        if version not in VERSIONS:
            raise IgtlError(f"header version {version} is not 1 or 2")
        kind = _text(type_raw, "type")
        if not kind or not all(c.isalnum() or c in "_-" for c in kind):
            raise IgtlError(f"message type {kind!r} is not a valid type name")
        device = _text(device_raw, "device")
        return cls(version, kind, device, timestamp, body_size, crc)


@dataclass(frozen=True)
class Packet:
    """One checked message: header, v2 extras and the content bytes (not yet decoded)."""

    header: Header
    content: memoryview
    metadata: dict[str, str] = field(default_factory=dict)
    message_id: int = 0

    @property
    def type(self) -> str:
        return self.header.type

    @property
    def device(self) -> str:
        return self.header.device


def split_body(header: Header, body: memoryview) -> Packet:
    """Check ``body`` against the header's CRC and split off the v2 extended header/metadata."""
    actual = crc64((body,))
    if actual != header.crc:
        raise IgtlError(
            f"CRC mismatch in {header.type} {header.device!r}: header says {header.crc:#018x}, "
            f"body gives {actual:#018x}"
        )
    if header.version == 1:
        return Packet(header, body)
    where = f"{header.type} {header.device!r}"
    if len(body) < EXTENDED_SIZE:
        raise IgtlError(f"{where}: header v2 body of {len(body)} bytes has no extended header")
    ext_size, meta_header_size, meta_size, message_id = EXTENDED.unpack_from(body)
    if ext_size < EXTENDED_SIZE or ext_size + meta_header_size + meta_size > len(body):
        raise IgtlError(
            f"{where}: extended header sizes ({ext_size} + {meta_header_size} + {meta_size}) "
            f"do not fit the body of {len(body)} bytes"
        )
    end = len(body) - meta_header_size - meta_size
    metadata = _unpack_metadata(
        body[end : end + meta_header_size], body[end + meta_header_size :], where
    )
    return Packet(header, body[ext_size:end], metadata, message_id)


def _unpack_metadata(index: memoryview, values: memoryview, where: str) -> dict[str, str]:
    if len(index) == 0:
        return {}
    if len(index) < 2:
        raise IgtlError(f"{where}: metadata header of {len(index)} bytes has no entry count")
    (count,) = struct.unpack_from(">H", index)
    if 2 + count * META_ENTRY.size > len(index):
        raise IgtlError(f"{where}: metadata header too short for {count} entries")
    metadata: dict[str, str] = {}
    offset = 0
    for n in range(count):
        key_size, encoding, value_size = META_ENTRY.unpack_from(index, 2 + n * META_ENTRY.size)
        if offset + key_size + value_size > len(values):
            raise IgtlError(f"{where}: metadata entry {n} runs past the end of the metadata")
        key = bytes(values[offset : offset + key_size]).decode("utf-8", errors="replace")
        offset += key_size
        value = bytes(values[offset : offset + value_size])
        offset += value_size
        metadata[key] = value.decode(
            "ascii" if encoding == ENCODING_ASCII else "utf-8", errors="replace"
        )
    return metadata


def _pack_metadata(metadata: dict[str, str]) -> tuple[bytes, bytes]:
    """(metadata header, keys and values); keys sorted as the C library's std::map orders them."""
    index = [struct.pack(">H", len(metadata))]
    values: list[bytes] = []
    for key in sorted(metadata):
        raw_key = key.encode("utf-8")
        raw_value = str(metadata[key]).encode("utf-8")
        encoding = ENCODING_ASCII if raw_value.isascii() else ENCODING_UTF8
        if len(raw_key) > 0xFFFF:
            raise IgtlError(f"metadata key of {len(raw_key)} bytes is too long")
        index.append(META_ENTRY.pack(len(raw_key), encoding, len(raw_value)))
        values += [raw_key, raw_value]
    return b"".join(index), b"".join(values)


def pack_message(
    kind: str,
    device: str,
    timestamp: int,
    content: Sequence[Buffer],
    version: int = 1,
    metadata: dict[str, str] | None = None,
    message_id: int = 0,
) -> list[Buffer]:
    """Header plus body as a list of buffers (content buffers are not copied) for sendmsg.

    ``timestamp`` is the header's raw 32.32 fixed-point value (see :func:`stamp_to_igtl`).
    """
    if version not in VERSIONS:
        raise IgtlError(f"header version {version} is not 1 or 2")
    kind_raw = _type_bytes(kind)
    device_raw = _device_bytes(device)
    parts: list[Buffer] = list(content)
    if version == 2:
        meta_index, meta_values = _pack_metadata(metadata or {})
        extended = EXTENDED.pack(EXTENDED_SIZE, len(meta_index), len(meta_values), message_id)
        parts = [extended, *parts, meta_index, meta_values]
    body_size = sum(memoryview(p).nbytes for p in parts)
    header = HEADER.pack(version, kind_raw, device_raw, timestamp, body_size, crc64(parts))
    return [header, *parts]


def pack_bytes(*args, **kwargs) -> bytes:
    """:func:`pack_message` joined into one ``bytes`` (tests, small messages)."""
    return b"".join(bytes(p) for p in pack_message(*args, **kwargs))
