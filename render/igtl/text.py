"""STRING and STATUS content: the two text messages (``igtl_string.h``, ``igtl_status.h``)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from igtflow.render.igtl.protocol import ENCODING_ASCII, ENCODING_UTF8, Buffer, IgtlError

STRING_HEADER = struct.Struct(">HH")
STATUS_HEADER = struct.Struct(">Hq20s")  # code, subcode, error name: 30 bytes
STATUS_OK = 1
STATUS_UNKNOWN_ERROR = 2


def _decode(raw: bytes, encoding: int) -> str:
    return raw.decode("ascii" if encoding == ENCODING_ASCII else "utf-8", errors="replace")


@dataclass(frozen=True)
class StringContent:
    """A text with its IANA character set number (106 = UTF-8, as the C library sends)."""

    TYPE: ClassVar[str] = "STRING"

    text: str
    encoding: int = ENCODING_UTF8

    def pack(self) -> list[Buffer]:
        raw = self.text.encode("ascii" if self.encoding == ENCODING_ASCII else "utf-8")
        if len(raw) > 0xFFFF:
            raise IgtlError(f"STRING of {len(raw)} bytes is over the 65535 the length field holds")
        return [STRING_HEADER.pack(self.encoding, len(raw)), raw]

    @classmethod
    def unpack(cls, content: memoryview) -> StringContent:
        if len(content) < STRING_HEADER.size:
            raise IgtlError(f"STRING content of {len(content)} bytes has no header")
        encoding, length = STRING_HEADER.unpack_from(content)
        if STRING_HEADER.size + length > len(content):
            raise IgtlError(f"STRING says {length} bytes, has {len(content) - 4}")
        return cls(_decode(bytes(content[4 : 4 + length]), encoding), encoding)


@dataclass(frozen=True)
class StatusContent:
    """Device status: code (1 = OK), subcode, a short error name and a message."""

    TYPE: ClassVar[str] = "STATUS"

    code: int = STATUS_OK
    subcode: int = 0
    error_name: str = ""
    message: str = ""

    def pack(self) -> list[Buffer]:
        name = self.error_name.encode("utf-8")
        if len(name) > 20:
            raise IgtlError(f"STATUS error name {self.error_name!r} is over 20 bytes")
        if not 0 <= self.code <= 0xFFFF:
            raise IgtlError(f"STATUS code {self.code} does not fit 16 bits")
        header = STATUS_HEADER.pack(self.code, self.subcode, name)
        return [header, self.message.encode("utf-8") + b"\0"]

    @classmethod
    def unpack(cls, content: memoryview) -> StatusContent:
        if len(content) < STATUS_HEADER.size:
            raise IgtlError(f"STATUS content of {len(content)} bytes is shorter than its header")
        code, subcode, name = STATUS_HEADER.unpack_from(content)
        message = bytes(content[STATUS_HEADER.size :]).split(b"\0", 1)[0]
        return cls(
            code,
            subcode,
            _decode(name.split(b"\0", 1)[0], ENCODING_UTF8),
            _decode(message, ENCODING_UTF8),
        )
