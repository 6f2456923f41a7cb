"""Proofs that bytes are what they claim: CRCs that tell a hit CRC field from damaged data,
bounded decompression, and the shape of an igtflow message when no CRC is left to say.
"""

from __future__ import annotations

import struct

import msgpack

MAX_CHUNK_BYTES = 1 << 27  # largest decompressed chunk (zstd's own default window limit)
_U32 = struct.Struct("<I")


def crc_state(stored: int, actual: int) -> str:
    """``ok``, ``none`` (no CRC written), ``field`` or ``bad``.

    ``field``: the stored CRC differs from the data's in one bit, or only in bytes that read
    zero. A damaged payload changes a CRC32 in about half its bits, so this is the CRC field
    itself that was hit and the data are intact (a false match has odds of about 2**-27).
    """
    if stored == 0:
        return "none"
    if stored == actual:
        return "ok"
    if (stored ^ actual).bit_count() == 1:
        return "field"
    pairs = zip(stored.to_bytes(4, "little"), actual.to_bytes(4, "little"), strict=True)
    if all(s in (a, 0) for s, a in pairs):
        return "field"
    return "bad"


def decompress(compression: str, data: bytes) -> tuple[bytes, str]:
    """``(output, error)``: as much as decompresses, bounded by ``MAX_CHUNK_BYTES``."""
    if compression == "":
        return data, ""
    parts: list[bytes] = []
    total = 0
    try:
        if compression == "zstd":
            import zstandard

            decoder = zstandard.ZstdDecompressor(max_window_size=MAX_CHUNK_BYTES).decompressobj()
            for start in range(0, len(data), 1 << 16):
                part = decoder.decompress(data[start : start + (1 << 16)])
                parts.append(part)
                total += len(part)
                if total > MAX_CHUNK_BYTES:
                    return b"".join(parts), f"expands past {MAX_CHUNK_BYTES} bytes"
                if decoder.eof:
                    break
            if not decoder.eof:
                return b"".join(parts), "the compressed data end too early"
        elif compression == "lz4":
            import lz4.frame

            lz4_decoder = lz4.frame.LZ4FrameDecompressor()
            rest = data
            while not lz4_decoder.eof:
                part = lz4_decoder.decompress(rest, max_length=1 << 20)
                rest = lz4_decoder.unused_data if lz4_decoder.eof else b""
                if not part and not lz4_decoder.needs_input:
                    continue
                parts.append(part)
                total += len(part)
                if total > MAX_CHUNK_BYTES:
                    return b"".join(parts), f"expands past {MAX_CHUNK_BYTES} bytes"
                if lz4_decoder.needs_input:
                    return b"".join(parts), "the compressed data end too early"
        else:
            return b"", f"unknown compression {compression[:20]!r}"
    except Exception as exc:  # zstd and lz4 raise their own types for corrupt frames
        return b"".join(parts), f"{type(exc).__name__}: {exc}"
    return b"".join(parts), ""


def looks_intact(data: bytes, topic: str) -> bool:
    """Whether ``data`` holds an igtflow message of ``topic``: framing, topic and header."""
    try:
        (count,) = _U32.unpack_from(data, 0)
        offset, frames = 4, []
        for _ in range(min(count, 2)):
            (length,) = _U32.unpack_from(data, offset)
            frames.append(data[offset + 4 : offset + 4 + length])
            offset += 4 + length
        for _ in range(count - 2):
            (length,) = _U32.unpack_from(data, offset)
            offset += 4 + length
        if count < 2 or offset != len(data) or frames[0] != topic.encode():
            return False
        header = msgpack.unpackb(frames[1], raw=False)
    except Exception:  # any damage in the framing or the msgpack header: not intact
        return False
    return isinstance(header, dict) and header.get("v") == 1 and isinstance(header.get("kind"), str)
