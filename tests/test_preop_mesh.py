"""Surface mesh files written by VTK's own writers load as the same triangles in RAS mm; broken
files are refused with a message that names the file and the fix.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vtkmodules.util.numpy_support import vtk_to_numpy

from igtflow.registration.mesh_file_checks import MAX_TRIANGLES
from igtflow.registration.preop_mesh import load_mesh
from igtflow.registration.preop_model import PreopModelError, is_closed
from tests.helpers.vtk_meshes import CENTER, RADIUS, WRITERS, sphere, write_stl, write_vtk


def assert_same_points(loaded: np.ndarray, expected: np.ndarray) -> None:
    """Every loaded vertex is one of the expected ones and none is missing (any order)."""
    distances = np.linalg.norm(loaded[:, None] - expected[None], axis=2)
    assert distances.min(axis=1).max() < 1e-4
    assert distances.min(axis=0).max() < 1e-4


@pytest.mark.parametrize("suffix", list(WRITERS))
def test_a_mesh_without_marker_loads_as_ras_triangles(tmp_path: Path, suffix: str) -> None:
    mesh = sphere()
    path = tmp_path / f"liver{suffix}"
    WRITERS[suffix](path, mesh, None)

    model = load_mesh(path)

    assert model.name == "liver" and model.source == str(path)
    assert model.vertices.dtype == np.float64 and model.faces.dtype == np.int32
    assert_same_points(model.vertices, vtk_to_numpy(mesh.GetPoints().GetData()))
    assert len(model.faces) == mesh.GetNumberOfPolys()
    assert is_closed(model.faces)
    exact = 4 / 3 * np.pi * RADIUS**3
    assert 0.9 * exact < model.enclosed_volume_mm3 < exact, "faces turn outwards"
    outward = model.vertices - np.array(CENTER)
    outward /= np.linalg.norm(outward, axis=1, keepdims=True)
    assert np.einsum("ij,ij->i", model.normals, outward).min() > 0.95


@pytest.mark.parametrize("suffix", list(WRITERS))
def test_a_mesh_marked_lps_by_slicer_is_turned_into_ras(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"liver{suffix}"
    WRITERS[suffix](path, sphere(), "LPS")

    model = load_mesh(path)

    centre = model.vertices.mean(axis=0)
    np.testing.assert_allclose(centre, [-CENTER[0], -CENTER[1], CENTER[2]], atol=0.5)
    assert model.enclosed_volume_mm3 > 0, "the flip of two axes keeps faces outward"
    as_written = load_mesh(path, space="RAS")
    np.testing.assert_allclose(as_written.vertices.mean(axis=0), CENTER, atol=0.5)


def test_an_ascii_stl_marked_ras_stays_as_written(tmp_path: Path) -> None:
    path = tmp_path / "vessel.stl"
    write_stl(path, sphere(), "RAS", binary=False)
    np.testing.assert_allclose(load_mesh(path).vertices.mean(axis=0), CENTER, atol=0.5)


def test_a_mesh_in_metres_is_refused_with_the_units_to_give(tmp_path: Path) -> None:
    path = tmp_path / "lesion.stl"
    write_stl(path, sphere(center=(0.03, -0.02, 0.01), radius=0.05), None)  # 0.1 m across

    with pytest.raises(PreopModelError) as refused:
        load_mesh(path)
    message = str(refused.value)
    assert str(path) in message and "metres" in message and "units='m'" in message

    model = load_mesh(path, units="m")
    assert 90 < np.ptp(model.vertices[:, 2]) < 101


def test_a_mesh_kilometres_across_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "organ.vtk"
    write_vtk(path, sphere(radius=15000.0), None)
    with pytest.raises(PreopModelError, match=r"organ\.vtk: .* larger than any patient"):
        load_mesh(path)


@pytest.mark.parametrize("suffix", list(WRITERS))
def test_a_file_cut_in_half_is_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"organ{suffix}"
    WRITERS[suffix](path, sphere(), None)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(PreopModelError) as refused:
        load_mesh(path)
    assert str(path) in str(refused.value) and "again" in str(refused.value)


@pytest.mark.parametrize("suffix", list(WRITERS))
def test_an_empty_file_is_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"organ{suffix}"
    path.write_bytes(b"")
    with pytest.raises(PreopModelError, match=r"organ.*: empty file \(0 bytes\); export"):
        load_mesh(path)


CUT_KINDS = ["stl", "ascii stl", "ply", "ascii ply", "vtk", "ascii vtk", "vtp", "obj"]


@settings(max_examples=120, deadline=None, derandomize=True)
@given(kind=st.sampled_from(CUT_KINDS), keep=st.floats(0.0, 1.0, exclude_max=True))
def test_any_cut_file_is_refused_or_keeps_its_whole_surface(kind: str, keep: float) -> None:
    """VTK's readers crash or stop silently on cut files; the loader must do neither. (An OBJ
    declares no counts: cut between lines it is a smaller mesh, and that cannot be told.)
    """
    suffix = "." + kind.split()[-1]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"organ{suffix}"
        if kind.startswith("ascii"):
            WRITERS[suffix](path, sphere(), "LPS", binary=False)
        else:
            WRITERS[suffix](path, sphere(), "LPS")
        whole = load_mesh(path)
        data = path.read_bytes()
        path.write_bytes(data[: int(keep * len(data))])
        try:
            model = load_mesh(path)
        except PreopModelError as refused:
            assert str(path) in str(refused)
            return
    if suffix != ".obj":
        assert model.faces.shape == whole.faces.shape
        np.testing.assert_array_equal(model.vertices, whole.vertices)


ASCII_VTK = """# vtk DataFile Version 4.2
vtk output
ASCII
DATASET POLYDATA
POINTS 4 float
0 0 0 {x} 0 0 0 10 0 0 0 10
POLYGONS 4 16
3 0 2 1
3 0 1 3
3 0 3 2
3 1 2 {last}
"""


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_vertices_are_refused(tmp_path: Path, value: str) -> None:
    vtk_file = tmp_path / "bad.vtk"
    vtk_file.write_text(ASCII_VTK.format(x=value, last=3))
    obj_file = tmp_path / "bad.obj"
    obj_file.write_text(f"v 0 0 0\nv {value} 0 0\nv 0 10 0\nv 0 0 10\nf 1 3 2\nf 1 2 4\n")
    for path in (vtk_file, obj_file):
        with pytest.raises(PreopModelError, match=r"bad\.(vtk|obj): 1 of 4 vertices are NaN"):
            load_mesh(path)


def test_faces_past_the_last_vertex_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.vtk"
    path.write_text(ASCII_VTK.format(x=10, last=7))
    with pytest.raises(PreopModelError, match=r"uses vertex 7, but .* only 4 vertices"):
        load_mesh(path)


def test_points_without_triangles_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "cloud.obj"
    path.write_text("v 0 0 0\nv 10 0 0\nv 0 10 0\n")
    with pytest.raises(PreopModelError, match=r"cloud\.obj: 3 vertices but no surface triangles"):
        load_mesh(path)


def test_an_stl_declaring_too_many_triangles_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.stl"
    count = MAX_TRIANGLES + 1
    path.write_bytes(b"\0" * 80 + count.to_bytes(4, "little") + b"\0" * 50)
    with pytest.raises(PreopModelError, match=r"declares 5,000,001 triangles, more than"):
        load_mesh(path)


def test_a_ply_declaring_too_many_faces_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.ply"
    header = (
        "ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\n"
        "property float y\nproperty float z\nelement face 900000000\n"
        "property list uchar int vertex_indices\nend_header\n"
    )
    path.write_bytes(header.encode() + b"\0" * 100)
    with pytest.raises(PreopModelError, match=r"declares 900,000,000 face elements"):
        load_mesh(path)


def test_a_vtp_declaring_too_many_points_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.vtp"
    path.write_text(
        '<?xml version="1.0"?>\n<VTKFile type="PolyData" version="1.0">\n<PolyData>\n'
        '<Piece NumberOfPoints="4000000000" NumberOfVerts="0" NumberOfLines="0" '
        'NumberOfStrips="0" NumberOfPolys="1">\n'
    )
    with pytest.raises(PreopModelError, match=r"huge\.vtp: declares 4,000,000,000 points"):
        load_mesh(path)


def test_unknown_extension_and_missing_file_say_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "organ.off"
    path.write_text("OFF\n")
    with pytest.raises(PreopModelError, match=r"organ\.off: unknown surface format .*\.stl"):
        load_mesh(path)
    with pytest.raises(PreopModelError, match=r"missing\.stl: no such file"):
        load_mesh(tmp_path / "missing.stl")
    with pytest.raises(PreopModelError, match=r"unknown units 'inch'"):
        load_mesh(tmp_path / "missing.stl", units="inch")
    with pytest.raises(PreopModelError, match=r"unknown space 'XYZ'; use 'RAS' or 'LPS'"):
        load_mesh(tmp_path / "missing.stl", space="XYZ")  # type: ignore[arg-type]
