"""POLYDATA content: points, VTK-style cell arrays and named attributes (``igtl_polydata.c``).

Layout: 10 × u32 header (points; count and byte size of vertices, lines, polygons, strips;
attributes), points as float32 xyz, each cell array as u32 ``(n, i1 … in)`` runs, attribute
headers (u8 type, u8 components, u32 count), NUL-terminated names padded to an even length, then
each attribute's float32 data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from igtflow.render.igtl.protocol import Buffer, IgtlError

POLY_HEADER = struct.Struct(">10I")
ATTR_HEADER = struct.Struct(">BBI")
POINT_SCALAR = 0x00
CELL_SCALAR = 0x10
MAX_NAME = 255
_BE_U32 = np.dtype(">u4")
_BE_F32 = np.dtype(">f4")


def triangle_cells(faces: np.ndarray) -> np.ndarray:
    """M×3 triangles as one VTK cell array ``3 a b c 3 d e f …``."""
    faces = np.asarray(faces, dtype=np.uint32).reshape(-1, 3)
    return np.hstack([np.full((len(faces), 1), 3, dtype=np.uint32), faces]).reshape(-1)


def count_cells(cells: np.ndarray) -> int:
    """How many cells a VTK cell array holds; IgtlError when a run overflows the array."""
    if len(cells) == 0:
        return 0
    if len(cells) % 4 == 0 and np.all(cells[::4] == 3):
        return len(cells) // 4  # all triangles: the common case, no walk
    count, index = 0, 0
    while index < len(cells):
        index += int(cells[index]) + 1
        count += 1
    if index != len(cells):
        raise IgtlError("POLYDATA cell array ends inside a cell")
    return count


def cells_to_triangles(cells: np.ndarray, strips: bool = False) -> np.ndarray:
    """Triangles of a polygon (fan) or triangle-strip cell array, M×3 int64."""
    if len(cells) == 0:
        return np.zeros((0, 3), dtype=np.int64)
    if not strips and len(cells) % 4 == 0 and np.all(cells[::4] == 3):
        return cells.reshape(-1, 4)[:, 1:].astype(np.int64)
    triangles: list[tuple[int, int, int]] = []
    index = 0
    while index < len(cells):
        n = int(cells[index])
        run = cells[index + 1 : index + 1 + n].astype(np.int64)
        if len(run) != n:
            raise IgtlError("POLYDATA cell array ends inside a cell")
        for t in range(n - 2):
            if strips:
                a, b, c = run[t], run[t + 1], run[t + 2]
                triangles.append((a, c, b) if t % 2 else (a, b, c))
            else:
                triangles.append((run[0], run[t + 1], run[t + 2]))
        index += n + 1
    return np.array(triangles, dtype=np.int64).reshape(-1, 3)


@dataclass(frozen=True, eq=False)
class Attribute:
    """Per-point (type < 0x10) or per-cell data: ``data`` is n × components float32."""

    name: str
    data: np.ndarray
    type: int = POINT_SCALAR


@dataclass(frozen=True, eq=False)
class PolyDataContent:
    """Points N×3 plus cell arrays (flat u32 VTK layout) and attributes."""

    TYPE: ClassVar[str] = "POLYDATA"

    points: np.ndarray
    vertices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    polygons: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    strips: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    attributes: tuple[Attribute, ...] = ()

    def pack(self) -> list[Buffer]:
        points = np.asarray(self.points, dtype=_BE_F32).reshape(-1, 3)
        sections = [np.asarray(c, dtype=_BE_U32).reshape(-1) for c in self._cells()]
        counts: list[int] = []
        for cells in sections:
            counts += [count_cells(cells), cells.nbytes]
        header = POLY_HEADER.pack(len(points), *counts, len(self.attributes))
        attr_headers, names, datas = [], [], []
        for attribute in self.attributes:
            data = np.asarray(attribute.data, dtype=_BE_F32)
            data = data.reshape(len(data), -1)
            name = attribute.name.encode("utf-8")
            if len(name) > MAX_NAME or b"\0" in name:
                raise IgtlError(f"POLYDATA attribute name {attribute.name!r} is invalid")
            if not 1 <= data.shape[1] <= 255:
                raise IgtlError(f"POLYDATA attribute {attribute.name!r} has {data.shape[1]} parts")
            attr_headers.append(ATTR_HEADER.pack(attribute.type, data.shape[1], len(data)))
            names.append(name + b"\0")
            datas.append(memoryview(np.ascontiguousarray(data).reshape(-1).view(np.uint8)))
        name_bytes = b"".join(names)
        if len(name_bytes) % 2:
            name_bytes += b"\0"
        return [
            header,
            memoryview(np.ascontiguousarray(points).reshape(-1).view(np.uint8)),
            *(memoryview(c.view(np.uint8)) for c in sections),
            b"".join(attr_headers) + name_bytes,
            *datas,
        ]

    def _cells(self) -> tuple[np.ndarray, ...]:
        return (self.vertices, self.lines, self.polygons, self.strips)

    @classmethod
    def unpack(cls, content: memoryview) -> PolyDataContent:
        if len(content) < POLY_HEADER.size:
            raise IgtlError(f"POLYDATA content of {len(content)} bytes has no header")
        header = POLY_HEADER.unpack_from(content)
        npoints, nattributes = header[0], header[9]
        offset = POLY_HEADER.size
        need = offset + npoints * 12 + sum(header[2:9:2]) + nattributes * ATTR_HEADER.size
        if need > len(content):
            raise IgtlError(f"POLYDATA header announces {need} bytes, content has {len(content)}")
        points = np.frombuffer(content, _BE_F32, npoints * 3, offset).astype(np.float32)
        offset += npoints * 12
        sections = []
        for n, size in zip(header[1:9:2], header[2:9:2], strict=True):
            if size % 4:
                raise IgtlError(f"POLYDATA cell array of {size} bytes is not whole u32 values")
            cells = np.frombuffer(content, _BE_U32, size // 4, offset).astype(np.uint32)
            if count_cells(cells) != n:
                raise IgtlError(f"POLYDATA cell array says {n} cells, holds {count_cells(cells)}")
            sections.append(cells)
            offset += size
        kinds = []
        for _ in range(nattributes):
            kinds.append(ATTR_HEADER.unpack_from(content, offset))
            offset += ATTR_HEADER.size
        names = []
        start = offset
        for _ in range(nattributes):
            end = bytes(content[offset : offset + MAX_NAME + 1]).find(b"\0")
            if end < 0:
                raise IgtlError("POLYDATA attribute name is unterminated or over 255 bytes")
            names.append(bytes(content[offset : offset + end]).decode("utf-8", errors="replace"))
            offset += end + 1
        offset += (offset - start) % 2
        attributes = []
        for (kind, ncomp, n), name in zip(kinds, names, strict=True):
            count = ncomp * n
            if ncomp < 1 or offset + count * 4 > len(content):
                raise IgtlError(f"POLYDATA attribute {name!r} ({n} × {ncomp}) overruns content")
            data = np.frombuffer(content, _BE_F32, count, offset).astype(np.float32)
            attributes.append(Attribute(name, data.reshape(n, ncomp), kind))
            offset += count * 4
        return cls(points.reshape(-1, 3), *sections, attributes=tuple(attributes))
