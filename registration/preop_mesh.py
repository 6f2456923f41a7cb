"""Surface mesh files (STL, OBJ, PLY, legacy VTK, VTP) into a ``SurfaceModel`` in RAS mm.

Coordinates: 3D Slicer writes models in LPS and says so in the file (``SPACE=LPS`` in the
header of .vtk/.stl, a comment in .ply/.obj, a ``SPACE`` field in .vtp); such markers are
honoured. A file without one is taken as RAS, as ``igtflow phantom export`` writes it (Slicer
itself would assume LPS: pass ``space="LPS"`` for an unmarked file from Slicer).

Every refusal is a ``PreopModelError`` naming the file, what is wrong and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from igtflow.registration.mesh_file_checks import (
    MAX_TRIANGLES,
    MAX_VERTICES,
    check_declared_size,
    too_many,
)
from igtflow.registration.preop_model import PreopModelError, SurfaceModel, build_surface

MESH_SUFFIXES = (".vtp", ".vtk", ".ply", ".obj", ".stl")  # preferred first when names clash
UNITS_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "um": 0.001}
MIN_SIZE_MM = 2.0  # smaller than any structure worth registering: the file is in metres
MAX_SIZE_MM = 5000.0  # larger than any patient
_LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])
_SPACE_MARKER = re.compile(r"SPACE\s*=\s*(RAS|LPS)\b", re.IGNORECASE)

Space = Literal["RAS", "LPS"]


def load_mesh(
    path: str | Path,
    space: Space | None = None,
    units: str = "mm",
    name: str | None = None,
    max_triangles: int = MAX_TRIANGLES,
) -> SurfaceModel:
    """Read one mesh file as triangles in RAS mm.

    ``space`` overrides the file's coordinate marker; ``units`` says what one unit in the file
    is (mm, cm, m, um); ``name`` defaults to the file name without its extension.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise PreopModelError(
            f"{path}: unknown surface format '{suffix or path.name}'; save the model as one of "
            f"{', '.join(MESH_SUFFIXES)}"
        )
    if space is not None and str(space).upper() not in ("RAS", "LPS"):
        raise PreopModelError(f"{path}: unknown space {space!r}; use 'RAS' or 'LPS'")
    if units not in UNITS_TO_MM:
        raise PreopModelError(f"{path}: unknown units {units!r}; use one of {list(UNITS_TO_MM)}")
    if not path.is_file():
        raise PreopModelError(f"{path}: no such file; check the path (cwd: {Path.cwd()})")
    if path.stat().st_size == 0:
        raise PreopModelError(f"{path}: empty file (0 bytes); export the model again")
    declared = check_declared_size(path, suffix, max_triangles)

    polydata, marker = _read_polydata(path, suffix)
    _check_all_read(path, polydata, declared)
    vertices, faces = _checked_triangles(path, polydata, max_triangles)
    if (space or marker or "RAS").upper() == "LPS":
        vertices = vertices * _LPS_TO_RAS
    vertices = vertices * UNITS_TO_MM[units]
    _check_size(path, vertices, units)
    return build_surface(name or path.name[: -len(suffix)], vertices, faces, str(path))


def _check_all_read(path: Path, polydata: Any, declared: tuple[int | None, int | None]) -> None:
    """Refuse a file that ends before what its header announces (the reader stopped early)."""
    read = (
        polydata.GetNumberOfPoints(),
        polydata.GetNumberOfPolys() + polydata.GetNumberOfStrips(),
    )
    for what, announced, got in zip(("vertices", "faces"), declared, read, strict=True):
        if announced is not None and got < announced:
            raise PreopModelError(
                f"{path}: truncated: its header declares {announced:,} {what} but only {got:,} "
                "could be read; copy or export the file again"
            )


def _check_size(path: Path, vertices: np.ndarray, units: str) -> None:
    size = float(np.linalg.norm(np.ptp(vertices, axis=0)))
    if size < MIN_SIZE_MM:
        hint = "load it with units='m'" if units == "mm" else "check the units= given"
        raise PreopModelError(
            f"{path}: the model is only {size:.3g} mm across (bounding-box diagonal): the file "
            f"is probably in metres, not millimetres; {hint}"
        )
    if size > MAX_SIZE_MM:
        raise PreopModelError(
            f"{path}: the model is {size / 1000:.3g} m across, larger than any patient: the "
            "file is in other units (pass units='um' for micrometres) or has stray vertices"
        )


@contextmanager
def _vtk_messages() -> Iterator[Any]:
    """Collect VTK's errors and warnings instead of printing them, for the time of a read."""
    from vtkmodules.vtkCommonCore import vtkLogger, vtkOutputWindow, vtkStringOutputWindow

    window, previous = vtkStringOutputWindow(), vtkOutputWindow.GetInstance()
    verbosity = vtkLogger.GetCurrentVerbosityCutoff()
    vtkOutputWindow.SetInstance(window)
    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_OFF)
    try:
        yield window
    finally:
        vtkOutputWindow.SetInstance(previous)
        vtkLogger.SetStderrVerbosity(verbosity)


def _vtk_errors(text: str) -> list[str]:
    """The messages of the blocks that report an error ("ERROR: In f.cxx, line N" + text)."""
    found = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
        if len(lines) > 1 and "error" in block.lower():
            found.append(re.sub(r"^\w+ \(0x[0-9a-f]+\): ", "", lines[1]))
    return found


def _reader(suffix: str) -> Any:
    if suffix == ".stl":
        from vtkmodules.vtkIOGeometry import vtkSTLReader

        return vtkSTLReader()
    if suffix == ".obj":
        from vtkmodules.vtkIOGeometry import vtkOBJReader

        return vtkOBJReader()
    if suffix == ".ply":
        from vtkmodules.vtkIOPLY import vtkPLYReader

        return vtkPLYReader()
    if suffix == ".vtk":
        from vtkmodules.vtkIOLegacy import vtkPolyDataReader

        return vtkPolyDataReader()
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    return vtkXMLPolyDataReader()


def _read_polydata(path: Path, suffix: str) -> tuple[Any, str | None]:
    """The reader's polydata and the file's SPACE marker (RAS, LPS or None)."""
    reader = _reader(suffix)
    reader.SetFileName(str(path))
    with _vtk_messages() as messages:
        reader.Update()
    errors = _vtk_errors(messages.GetOutput())
    if errors:
        raise PreopModelError(
            f"{path}: unreadable or truncated {suffix} file (VTK: {errors[0][:160]}); export the "
            "model again"
        )
    polydata = reader.GetOutput()
    if polydata is None or polydata.GetNumberOfPoints() == 0:
        raise PreopModelError(
            f"{path}: no vertices could be read (an empty or damaged {suffix} file); export the "
            "model again"
        )
    return polydata, _space_marker(reader, suffix, polydata)


def _space_marker(reader: Any, suffix: str, polydata: Any) -> str | None:
    if suffix in (".stl", ".vtk"):
        texts = [reader.GetHeader() or ""]
    elif suffix == ".obj":
        texts = [reader.GetComment() or ""]
    elif suffix == ".ply":
        comments = reader.GetComments()
        texts = [comments.GetValue(i) for i in range(comments.GetNumberOfValues())]
    else:
        field = polydata.GetFieldData().GetAbstractArray("SPACE")
        texts = [f"SPACE={field.GetValue(0)}"] if field and field.GetNumberOfValues() else []
    for text in texts:
        found = _SPACE_MARKER.search(text)
        if found:
            return found.group(1).upper()
    return None


def _checked_triangles(path: Path, polydata: Any, max_triangles: int) -> tuple[Any, Any]:
    """(vertices N×3 float64, faces M×3) with finite vertices and faces that index them."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkFiltersCore import vtkPolyDataNormals, vtkTriangleFilter

    vertices = vtk_to_numpy(polydata.GetPoints().GetData()).astype(np.float64)
    if len(vertices) > MAX_VERTICES:
        raise too_many(path, "vertices", len(vertices), MAX_VERTICES)
    bad = ~np.isfinite(vertices).all(axis=1)
    if bad.any():
        raise PreopModelError(
            f"{path}: {int(bad.sum())} of {len(vertices)} vertices are NaN or infinite (first: "
            f"vertex {int(np.argmax(bad))}); repair the mesh or export it again"
        )
    for cells in (polydata.GetPolys(), polydata.GetStrips()):
        if cells.GetNumberOfCells() == 0:
            continue
        # before any filter: VTK's filters index memory with these numbers unchecked
        corners = np.diff(vtk_to_numpy(cells.GetOffsetsArray()))
        if (corners < 3).any():
            raise PreopModelError(
                f"{path}: {int((corners < 3).sum()):,} of {len(corners):,} faces have fewer than "
                "3 corners (a file cut short or damaged); export the model again"
            )
        used = vtk_to_numpy(cells.GetConnectivityArray())
        if used.min() < 0 or used.max() >= len(vertices):
            raise PreopModelError(
                f"{path}: a face uses vertex {int(used.max())}, but the file has only "
                f"{len(vertices)} vertices (damaged file); export the model again"
            )
    triangles = vtkTriangleFilter()
    triangles.SetInputData(polydata)
    triangles.PassVertsOff()
    triangles.PassLinesOff()
    consistent = vtkPolyDataNormals()  # only to make neighbouring faces turn the same way
    consistent.SetInputConnection(triangles.GetOutputPort())
    consistent.SplittingOff()
    consistent.ConsistencyOn()
    consistent.ComputeCellNormalsOff()
    with _vtk_messages():
        consistent.Update()
    polys = consistent.GetOutput().GetPolys()
    if polys.GetNumberOfCells() == 0:
        raise PreopModelError(
            f"{path}: {len(vertices)} vertices but no surface triangles (a point cloud or "
            "lines, or a file cut short); export the model as a surface"
        )
    if polys.GetNumberOfCells() > max_triangles:
        raise too_many(path, "triangles", polys.GetNumberOfCells(), max_triangles)
    faces = vtk_to_numpy(polys.GetConnectivityArray()).reshape(-1, 3)
    return vtk_to_numpy(consistent.GetOutput().GetPoints().GetData()).astype(np.float64), faces
