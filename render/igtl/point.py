"""POINT content: 136-byte elements (name, group, RGBA, position, radius, owner)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from igtflow.render.igtl.protocol import Buffer, IgtlError

ELEMENT = np.dtype(
    [
        ("name", "S64"),
        ("group", "S32"),
        ("rgba", "u1", (4,)),
        ("position", ">f4", (3,)),
        ("radius", ">f4"),
        ("owner", "S20"),
    ]
)
assert ELEMENT.itemsize == 136


def _encode(texts: Sequence[str], size: int, what: str) -> list[bytes]:
    out = []
    for text in texts:
        raw = text.encode("utf-8")
        if len(raw) > size:
            raise IgtlError(f"POINT {what} {text!r} is over {size} bytes")
        out.append(raw)
    return out


def _decode(raw: np.ndarray) -> list[str]:
    return [bytes(v).split(b"\0", 1)[0].decode("utf-8", errors="replace") for v in raw]


@dataclass(frozen=True, eq=False)
class PointContent:
    """N points with a name, group, colour, radius (mm) and owner image each."""

    TYPE: ClassVar[str] = "POINT"

    positions: np.ndarray
    names: Sequence[str]
    group: Sequence[str]
    rgba: np.ndarray
    radius: np.ndarray
    owner: Sequence[str]

    @classmethod
    def of(
        cls,
        positions: np.ndarray,
        names: Sequence[str] | None = None,
        group: str = "",
        rgba: tuple[int, int, int, int] = (255, 255, 0, 255),
        radius: float = 0.0,
        owner: str = "",
    ) -> PointContent:
        """Points sharing one group, colour, radius and owner."""
        positions = np.asarray(positions, dtype=np.float32).reshape(-1, 3)
        n = len(positions)
        return cls(
            positions,
            list(names) if names is not None else [f"P{i}" for i in range(n)],
            [group] * n,
            np.tile(np.asarray(rgba, dtype=np.uint8), (n, 1)),
            np.full(n, radius, dtype=np.float32),
            [owner] * n,
        )

    def pack(self) -> list[Buffer]:
        n = len(self.positions)
        if not (len(self.names) == len(self.group) == len(self.owner) == n):
            raise IgtlError(f"POINT needs a name, group and owner for each of its {n} points")
        elements = np.zeros(n, dtype=ELEMENT)
        elements["name"] = _encode(self.names, 64, "name")
        elements["group"] = _encode(self.group, 32, "group")
        elements["owner"] = _encode(self.owner, 20, "owner")
        elements["rgba"] = self.rgba
        elements["position"] = self.positions
        elements["radius"] = self.radius
        return [memoryview(elements.view(np.uint8))]

    @classmethod
    def unpack(cls, content: memoryview) -> PointContent:
        if len(content) % ELEMENT.itemsize:
            raise IgtlError(
                f"POINT content of {len(content)} bytes is not a whole number of "
                f"{ELEMENT.itemsize}-byte points"
            )
        elements = np.frombuffer(content, dtype=ELEMENT)
        return cls(
            elements["position"].astype(np.float32),
            _decode(elements["name"]),
            _decode(elements["group"]),
            elements["rgba"].copy(),
            elements["radius"].astype(np.float32),
            _decode(elements["owner"]),
        )
