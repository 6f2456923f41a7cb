"""What a mesh file declares in its header, checked before VTK reads it.

VTK's readers trust the header: its PLY reader crashes the process on a truncated binary file,
and the others allocate whatever size a header declares. So sizes and truncation are checked
here, from the first bytes and the file size, before any reader runs.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from igtflow.registration.preop_model import PreopModelError

MAX_TRIANGLES = 5_000_000
MAX_VERTICES = 15_000_000  # a triangle soup (STL, unshared PLY) has 3 vertices a triangle
MAX_FILE_BYTES = 1 << 30
HEADER_BYTES = 1 << 16

_PLY_SIZES = {
    "char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2,
    "uint16": 2, "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4,
    "double": 8, "float64": 8,
}  # fmt: skip


Declared = tuple[int | None, int | None]  # (vertices, faces) the header announces, if it does


def check_declared_size(path: Path, suffix: str, max_triangles: int = MAX_TRIANGLES) -> Declared:
    """Refuse a file that is too big, or whose header declares more than it holds or than we
    accept; cheap (reads at most 64 KiB). Returns the counts the header declares, so that a
    reader that stops early without a word (VTK's on a cut ASCII PLY) can be caught.
    """
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise PreopModelError(
            f"{path}: {size / 2**20:.0f} MiB is more than the {MAX_FILE_BYTES >> 20} MiB a "
            "surface model may be; decimate it (e.g. Slicer's Surface Toolbox) and save again"
        )
    with path.open("rb") as stream:
        head = stream.read(HEADER_BYTES)
    if suffix == ".stl":
        _check_stl(path, head, size, max_triangles)
    elif suffix == ".ply":
        return _check_ply(path, head, size, max_triangles)
    elif suffix == ".vtk":
        return _check_legacy_vtk(path, head, max_triangles)
    elif suffix == ".vtp":
        return _check_xml_polydata(path, head, max_triangles)
    return None, None


def too_many(path: Path, what: str, count: int, limit: int) -> PreopModelError:
    return PreopModelError(
        f"{path}: declares {count:,} {what}, more than the {limit:,} a surface model may have; "
        "decimate it (e.g. Slicer's Surface Toolbox) and save again"
    )


def truncated(path: Path, declared: str, needed: int, size: int) -> PreopModelError:
    return PreopModelError(
        f"{path}: truncated: its header declares {declared} ({needed:,} bytes) but the file "
        f"holds {size:,} bytes; copy or export the file again"
    )


def _check_stl(path: Path, head: bytes, size: int, max_triangles: int) -> None:
    if size < 84:
        if head.lstrip().startswith(b"solid"):
            return  # a tiny ASCII STL: the reader decides
        raise truncated(path, "a binary STL", 84, size)
    (count,) = struct.unpack_from("<I", head, 80)
    needed = 84 + 50 * count
    if size == needed or not head.lstrip().startswith(b"solid"):
        if count > max_triangles:
            raise too_many(path, "triangles", count, max_triangles)
        if size < needed:
            raise truncated(path, f"{count:,} triangles", needed, size)


def _check_legacy_vtk(path: Path, head: bytes, max_triangles: int) -> Declared:
    if not head.startswith(b"# vtk DataFile"):
        raise PreopModelError(
            f"{path}: not a legacy VTK file (it must begin with '# vtk DataFile'); "
            "save the model again as .vtk or .vtp"
        )
    points = re.search(rb"\nPOINTS\s+(\d+)\s", head)
    if points and int(points.group(1)) > MAX_VERTICES:
        raise too_many(path, "points", int(points.group(1)), MAX_VERTICES)
    polygons = re.search(rb"\n(?:POLYGONS|TRIANGLE_STRIPS)\s+(\d+)\s", head)
    if polygons and int(polygons.group(1)) > max_triangles:
        raise too_many(path, "polygons", int(polygons.group(1)), max_triangles)
    version = re.match(rb"# vtk DataFile Version (\d+)", head)
    offsets = version is not None and int(version.group(1)) >= 5  # 5.x counts offsets: cells + 1
    cells = int(polygons.group(1)) - offsets if polygons else None
    return (int(points.group(1)) if points else None), cells


def _check_xml_polydata(path: Path, head: bytes, max_triangles: int) -> Declared:
    """The counts of the first ``<Piece>`` (VTK writes one); the reader checks the rest."""
    piece = re.search(rb"<Piece\b[^>]*>", head)
    if piece is None:
        return None, None
    counts = {}
    for key in ("NumberOfPoints", "NumberOfPolys", "NumberOfStrips"):
        found = re.search(rb"\b" + key.encode() + rb'="(\d+)"', piece.group(0))
        counts[key] = int(found.group(1)) if found else 0
    if counts["NumberOfPoints"] > MAX_VERTICES:
        raise too_many(path, "points", counts["NumberOfPoints"], MAX_VERTICES)
    faces = counts["NumberOfPolys"] + counts["NumberOfStrips"]
    if faces > max_triangles:
        raise too_many(path, "polygons", faces, max_triangles)
    return counts["NumberOfPoints"], faces


def _check_ply(path: Path, head: bytes, size: int, max_triangles: int) -> Declared:
    end = re.search(rb"end_header\r?\n", head)
    if not head.startswith(b"ply") or end is None:
        raise PreopModelError(
            f"{path}: not a PLY file, or its header is cut short ('ply' ... 'end_header' not "
            "found in the first 64 KiB); export the model again"
        )
    lines = head[: end.start()].decode("ascii", "replace").splitlines()
    formats = [line.split()[1] for line in lines if line.startswith("format ") and " " in line]
    binary = bool(formats) and formats[0].startswith("binary")
    needed, elements = end.end(), _ply_elements(path, lines)
    for name, count, fixed, lists in elements:
        limit = max_triangles if name == "face" else MAX_VERTICES
        if count > limit:
            raise too_many(path, f"{name} elements", count, limit)
        smallest_list = 3 if name == "face" else 0  # a face has at least 3 corners
        needed += count * (fixed + sum(c + smallest_list * i for c, i in lists))
    if binary and size < needed:
        declared = ", ".join(f"{count:,} {name}" for name, count, *_ in elements)
        raise truncated(path, declared, needed, size)
    counts = {name: count for name, count, *_ in elements}
    return counts.get("vertex"), counts.get("face")


def _ply_elements(path: Path, lines: list[str]) -> list[tuple[str, int, int, list]]:
    """(name, count, bytes of fixed properties, [(list count bytes, list item bytes)])."""
    elements: list[tuple[str, int, int, list]] = []
    try:
        for line in lines:
            words = line.split()
            if words[:1] == ["element"]:
                elements.append((words[1], int(words[2]), 0, []))
            elif words[:2] == ["property", "list"] and elements:
                elements[-1][3].append((_PLY_SIZES[words[2]], _PLY_SIZES[words[3]]))
            elif words[:1] == ["property"] and elements:
                name, count, fixed, lists = elements[-1]
                elements[-1] = (name, count, fixed + _PLY_SIZES[words[1]], lists)
    except (IndexError, KeyError, ValueError) as exc:
        raise PreopModelError(
            f"{path}: damaged PLY header (line {line!r}); export the model again"
        ) from exc
    return elements
