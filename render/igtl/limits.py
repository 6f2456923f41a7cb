"""How much a peer may make us hold: caps by message type, per connection, across connections.

A header declares its body size, and a broken or hostile peer can declare anything (eight
connections declaring 255 MB each once took a server from 46 MB to 2 GB in six seconds). So the
reader (:mod:`igtflow.render.igtl.reader`) allocates nothing from a declared size until
:meth:`Limits.check_declared` has passed it, then reads the first bytes of the body that say
what the rest must be (header v2's extended header, IMAGE's image header) for
:meth:`Limits.check_body`, and receives the body into a buffer that grows with the bytes that
arrive, each growth charged to a :class:`Budget` shared by every connection of one server.

Caps on the content (the body less header v2's extended header and metadata), by type:

- TRANSFORM: exactly 48 bytes (12 float32).
- IMAGE: exactly its 72-byte image header plus the pixels that header declares (sub-volume
  size × components × scalar size), and at most ``message``.
- POINT: whole 136-byte elements, at most ``message``; POLYDATA: at most ``message``.
- STRING, STATUS, CAPABIL, POSITION and the queries (``GET_``, ``STT_``, ``STP_``, ``RTS_``): at
  most a full STRING, 4 + 65535 bytes.
- any other type: at most ``unknown``.

A connection holds one message at a time, so ``message`` is also the cap per connection.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from igtflow.render.igtl.image import IMAGE_HEADER, SCALAR_TYPES
from igtflow.render.igtl.point import ELEMENT
from igtflow.render.igtl.protocol import (
    EXTENDED,
    EXTENDED_SIZE,
    MAX_BODY_SIZE,
    Buffer,
    Header,
    IgtlError,
)
from igtflow.render.igtl.transform import MATRIX

TEXT_CONTENT = 4 + 0xFFFF  # the largest STRING: a 16-bit length after 4 header bytes
SMALL_TYPES = frozenset({"STRING", "STATUS", "CAPABIL", "POSITION", "COMMAND"})
QUERY_PREFIXES = ("GET_", "STT_", "STP_", "RTS_")
MAX_EXTENDED = 64  # header v2's extended header is 12 bytes; room for a later version's extras
MIB = 1024 * 1024


class OverLimit(IgtlError):
    """A message over a cap: the peer is cut before anything is allocated for it."""


@dataclass(frozen=True)
class Limits:
    """Caps in bytes; ``message`` bounds IMAGE, POLYDATA and POINT and every whole body."""

    message: int = MAX_BODY_SIZE
    unknown: int = 64 * 1024
    metadata: int = 64 * 1024

    def content_cap(self, kind: str) -> int:
        """The most content bytes a message of type ``kind`` may carry."""
        if kind == "TRANSFORM":
            return MATRIX.size
        if kind in ("IMAGE", "POLYDATA", "POINT"):
            return self.message
        if kind in SMALL_TYPES or kind.startswith(QUERY_PREFIXES):
            return TEXT_CONTENT
        return self.unknown

    def check_declared(self, header: Header) -> None:
        """Refuse, from the header alone, a body no message of its type can have."""
        cap = self.content_cap(header.type)
        if header.version >= 2:
            cap += MAX_EXTENDED + self.metadata
        cap = min(cap, self.message)
        if header.type == "TRANSFORM" and header.version == 1 and header.body_size != MATRIX.size:
            raise OverLimit(
                f"{_name(header)} declares a body of {header.body_size} bytes; "
                f"a TRANSFORM is {MATRIX.size}"
            )
        if header.body_size > cap:
            raise OverLimit(
                f"{_name(header)} declares a body of {header.body_size} bytes, "
                f"over the cap of {cap} for {header.type}"
            )

    def prefix_size(self, header: Header, prefix: Buffer) -> int:
        """How many leading body bytes :meth:`check_body` needs, given ``prefix`` already read."""
        need = 0
        if header.version >= 2:
            need = EXTENDED_SIZE
            if len(prefix) >= EXTENDED_SIZE:
                need = self._extended(header, prefix)[0]
        if header.type == "IMAGE":
            need += IMAGE_HEADER.size
        return min(need, header.body_size)

    def check_body(self, header: Header, prefix: Buffer) -> None:
        """Refuse a body whose own first bytes say it cannot be what the header declares."""
        content = header.body_size
        start = 0
        if header.version >= 2:
            if len(prefix) < EXTENDED_SIZE:
                raise IgtlError(
                    f"{_name(header)}: header v2 body of {header.body_size} bytes "
                    "has no extended header"
                )
            start, meta_header_size, meta_size = self._extended(header, prefix)[:3]
            if meta_header_size + meta_size > self.metadata:
                raise OverLimit(
                    f"{_name(header)} declares {meta_header_size + meta_size} bytes of metadata, "
                    f"over the cap of {self.metadata}"
                )
            content -= start + meta_header_size + meta_size
            if content < 0:
                raise IgtlError(
                    f"{_name(header)}: extended header sizes ({start} + {meta_header_size} + "
                    f"{meta_size}) do not fit the body of {header.body_size} bytes"
                )
        if content > self.content_cap(header.type):
            raise OverLimit(
                f"{_name(header)} declares {content} bytes of content, "
                f"over the cap of {self.content_cap(header.type)} for {header.type}"
            )
        if header.type == "TRANSFORM" and content != MATRIX.size:
            raise OverLimit(
                f"{_name(header)} declares {content} bytes of content; a TRANSFORM is {MATRIX.size}"
            )
        if header.type == "POINT" and content % ELEMENT.itemsize:
            raise IgtlError(
                f"{_name(header)} declares {content} bytes of content, not a whole number of "
                f"{ELEMENT.itemsize}-byte points"
            )
        if header.type == "IMAGE":
            self._check_image(header, prefix[start:], content)

    def _extended(self, header: Header, prefix: Buffer) -> tuple[int, int, int, int]:
        ext_size, meta_header_size, meta_size, message_id = EXTENDED.unpack_from(prefix)
        if not EXTENDED_SIZE <= ext_size <= MAX_EXTENDED:
            raise IgtlError(
                f"{_name(header)}: extended header size {ext_size} is not "
                f"{EXTENDED_SIZE} to {MAX_EXTENDED} bytes"
            )
        return ext_size, meta_header_size, meta_size, message_id

    @staticmethod
    def _check_image(header: Header, image_header: Buffer, content: int) -> None:
        if content < IMAGE_HEADER.size or len(image_header) < IMAGE_HEADER.size:
            raise IgtlError(
                f"{_name(header)}: content of {content} bytes is shorter than its "
                f"{IMAGE_HEADER.size}-byte image header"
            )
        values = IMAGE_HEADER.unpack_from(image_header)
        ncomp, scalar = values[1:3]
        subsize = values[23:26]
        if scalar not in SCALAR_TYPES:
            raise IgtlError(
                f"{_name(header)}: scalar type {scalar} is not one the specification defines"
            )
        pixels = subsize[0] * subsize[1] * subsize[2] * ncomp * SCALAR_TYPES[scalar].itemsize
        if content != IMAGE_HEADER.size + pixels:
            raise OverLimit(
                f"{_name(header)} declares {content} bytes of content; its image header "
                f"({'×'.join(map(str, subsize))} × {ncomp} {SCALAR_TYPES[scalar]}) makes it "
                f"{IMAGE_HEADER.size + pixels}"
            )


class Budget:
    """Bytes held in unfinished bodies across the connections that share it, at most ``total``."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.held = 0
        self.peak = 0
        self._lock = threading.Lock()

    def take(self, count: int) -> bool:
        """Reserve ``count`` bytes; False (and nothing reserved) when that would pass the total."""
        with self._lock:
            if self.held + count > self.total:
                return False
            self.held += count
            self.peak = max(self.peak, self.held)
            return True

    def give(self, count: int) -> None:
        with self._lock:
            self.held -= count


def _name(header: Header) -> str:
    return f"{header.type} {header.device!r}"
