"""Mesh files written by VTK's own writers, the way 3D Slicer writes them (``SPACE=`` marker
in the header, a comment or a field), for the preoperative model loaders' tests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vtkmodules.vtkCommonCore import vtkStringArray
from vtkmodules.vtkFiltersSources import vtkSphereSource
from vtkmodules.vtkIOGeometry import vtkOBJWriter, vtkSTLWriter
from vtkmodules.vtkIOLegacy import vtkPolyDataWriter
from vtkmodules.vtkIOPLY import vtkPLYWriter
from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter

CENTER = (30.0, -20.0, 10.0)  # off the origin, so an LPS/RAS mix-up moves the model
RADIUS = 15.0


def sphere(center: tuple[float, float, float] = CENTER, radius: float = RADIUS):
    source = vtkSphereSource()
    source.SetCenter(*center)
    source.SetRadius(radius)
    source.SetThetaResolution(24)
    source.SetPhiResolution(16)
    source.Update()
    return source.GetOutput()


def write_stl(path: Path, mesh, space: str | None, binary: bool = True) -> None:
    writer = vtkSTLWriter()
    writer.SetFileTypeToBinary() if binary else writer.SetFileTypeToASCII()
    if space:
        writer.SetHeader(f"3D Slicer output. SPACE={space}")
    _write(writer, path, mesh)


def write_ply(path: Path, mesh, space: str | None, binary: bool = True) -> None:
    writer = vtkPLYWriter()
    writer.SetFileTypeToBinary() if binary else writer.SetFileTypeToASCII()
    if space:
        writer.AddComment(f"SPACE={space}")
    _write(writer, path, mesh)


def write_vtk(path: Path, mesh, space: str | None, binary: bool = True) -> None:
    writer = vtkPolyDataWriter()
    writer.SetFileTypeToBinary() if binary else writer.SetFileTypeToASCII()
    if space:
        writer.SetHeader(f"3D Slicer output. SPACE={space}")
    _write(writer, path, mesh)


def write_vtp(path: Path, mesh, space: str | None) -> None:
    if space:
        field = vtkStringArray()
        field.SetName("SPACE")
        field.InsertNextValue(space)
        mesh.GetFieldData().AddArray(field)  # where Slicer keeps it in XML files
    _write(vtkXMLPolyDataWriter(), path, mesh)


def write_obj(path: Path, mesh, space: str | None) -> None:
    _write(vtkOBJWriter(), path, mesh)
    if space:  # vtkOBJWriter writes no comment of ours; Slicer's exporter puts it first
        path.write_text(f"# 3D Slicer output. SPACE={space}\n" + path.read_text())


def _write(writer, path: Path, mesh) -> None:
    writer.SetInputData(mesh)
    writer.SetFileName(str(path))
    assert writer.Write() == 1, path


WRITERS: dict[str, Callable[[Path, object, str | None], None]] = {
    ".stl": write_stl,
    ".ply": write_ply,
    ".vtk": write_vtk,
    ".vtp": write_vtp,
    ".obj": write_obj,
}
