"""Message types by name: decode a checked :class:`Packet`, encode content for a device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from igtflow.render.igtl.image import ImageContent
from igtflow.render.igtl.point import PointContent
from igtflow.render.igtl.polydata import PolyDataContent
from igtflow.render.igtl.protocol import (
    Buffer,
    IgtlError,
    Packet,
    pack_message,
    stamp_to_igtl,
)
from igtflow.render.igtl.text import StatusContent, StringContent
from igtflow.render.igtl.transform import TransformContent


class Content(Protocol):
    """What every message type's content class offers."""

    TYPE: str

    def pack(self) -> list[Buffer]: ...


@dataclass(frozen=True)
class Query:
    """A request with an empty body, such as ``GET_STATUS`` or ``GET_CAPABIL``."""

    TYPE: str

    def pack(self) -> list[Buffer]:
        return []


CONTENTS: dict[str, type] = {
    cls.TYPE: cls
    for cls in (
        ImageContent,
        TransformContent,
        PolyDataContent,
        PointContent,
        StringContent,
        StatusContent,
    )
}


@dataclass(frozen=True, eq=False)
class Received:
    """A decoded message; ``content`` is None for types this codec does not read."""

    type: str
    device: str
    stamp_ns: int
    version: int
    content: object | None
    metadata: dict[str, str] = field(default_factory=dict)


def decode(packet: Packet) -> Received:
    """The content of ``packet``; IgtlError (and nothing else) when it is malformed."""
    cls = CONTENTS.get(packet.type)
    content = None
    if cls is not None:
        try:
            content = cls.unpack(packet.content)
        except IgtlError as exc:
            raise IgtlError(f"{packet.type} {packet.device!r}: {exc}") from None
        except Exception as exc:  # a decoder slip must still look like bad input, not a crash
            raise IgtlError(f"malformed {packet.type} {packet.device!r}: {exc}") from None
    header = packet.header
    return Received(
        header.type, header.device, header.stamp_ns, header.version, content, packet.metadata
    )


def encode(
    content: Content,
    device: str,
    stamp_ns: int,
    version: int = 1,
    metadata: dict[str, str] | None = None,
) -> list[Buffer]:
    """Buffers of one whole message (header first); pixel buffers are shared, not copied."""
    return pack_message(
        content.TYPE, device, stamp_to_igtl(stamp_ns), content.pack(), version, metadata
    )
