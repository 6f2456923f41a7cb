"""A folder becomes a preoperative case: the phantom's export as written by `igtflow phantom
export`, and a folder of Slicer exports (meshes, label volume, markups) in LPS or RAS.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from igtflow.registration.case import load_case
from igtflow.registration.label_surfaces import surfaces_from_labels
from igtflow.registration.preop_model import PreopModelError
from igtflow.stream.phantom.export import export_phantom
from tests.helpers.vtk_meshes import sphere, write_vtk


@pytest.fixture(scope="module")
def phantom_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("phantom")
    export_phantom(folder, seed=3)
    return folder


def centroid(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    weights = np.einsum("ij,ij->i", a, np.cross(b, c))
    return ((a + b + c) / 4 * weights[:, None]).sum(axis=0) / weights.sum()


def test_phantom_export_loads_as_a_case_with_its_structures_and_targets(
    phantom_folder: Path,
) -> None:
    started = time.perf_counter()
    case = load_case(phantom_folder)
    elapsed = time.perf_counter() - started

    assert set(case.structures) == {"organ", "vessel", "lesion"}
    assert all(s.source.endswith(".vtk") for s in case.structures.values()), "vtk before stl"
    truth = json.loads((phantom_folder / "truth.json").read_text())
    assert list(case.targets) == [t["id"] for t in truth["targets"]] == ["lesion", "bifurcation"]
    for target in truth["targets"]:
        np.testing.assert_array_equal(case.targets[target["id"]], target["ras"])
    lesion = case.structure("lesion")
    lesion_centre = centroid(lesion.vertices, lesion.faces)
    assert np.linalg.norm(lesion_centre - case.targets["lesion"]) < 1.0, "mesh and target agree"
    radius = truth["lesion_radius_mm"]
    assert lesion.enclosed_volume_mm3 == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.1)
    assert case.label_names[1] == "organ" and case.labels is not None
    np.testing.assert_allclose(case.labels.ijk_to_ras, truth["volume"]["ijk_to_ras"])
    assert elapsed < 20.0, f"loading the phantom case took {elapsed:.1f} s"


def test_phantom_label_volume_gives_the_surfaces_of_its_meshes(phantom_folder: Path) -> None:
    case = load_case(phantom_folder)
    assert case.labels is not None
    from_labels = surfaces_from_labels(case.labels, {3: "lesion"})["lesion"]
    mesh = case.structure("lesion")
    assert from_labels.enclosed_volume_mm3 == pytest.approx(mesh.enclosed_volume_mm3, rel=0.03)
    assert (
        np.linalg.norm(
            centroid(from_labels.vertices, from_labels.faces) - centroid(mesh.vertices, mesh.faces)
        )
        < 0.5
    )


MARKUPS = {
    "@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#",
    "markups": [
        {
            "type": "Fiducial",
            "coordinateSystem": "LPS",
            "coordinateUnits": "mm",
            "controlPoints": [
                {"id": "1", "label": "tumour", "position": [-30.0, 20.0, 10.0]},
                {"id": "2", "label": "", "position": [1.0, 2.0, 3.0]},
                {"id": "3", "label": "later", "position": [0, 0, 0], "positionStatus": "undefined"},
            ],
        },
        {
            "type": "Curve",
            "coordinateSystem": "LPS",
            "controlPoints": [{"id": "1", "label": "C-1", "position": [0.0, 0.0, 0.0]}],
        },
    ],
}
FCSV = """# Markups fiducial file version = 4.11
# CoordinateSystem = {system}
# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID
vtkMRMLMarkupsFiducialNode_0,5,-6,7,0,0,0,1,1,1,0,portal,,
"""


def test_a_folder_of_slicer_exports_loads_in_ras(tmp_path: Path) -> None:
    write_vtk(tmp_path / "liver.vtk", sphere(), "LPS")
    (tmp_path / "targets.mrk.json").write_text(json.dumps(MARKUPS))
    (tmp_path / "vessels.fcsv").write_text(FCSV.format(system="RAS"))

    case = load_case(tmp_path)

    assert list(case.structures) == ["liver"] and case.labels is None
    np.testing.assert_allclose(case.structure("liver").vertices.mean(axis=0), [-30, 20, 10], 0, 0.5)
    assert set(case.targets) == {"tumour", "targets-2", "portal"}, "placeholders, curves left out"
    np.testing.assert_allclose(case.targets["tumour"], [30.0, -20.0, 10.0])
    np.testing.assert_allclose(case.targets["portal"], [5.0, -6.0, 7.0])
    with pytest.raises(KeyError, match=r"no structure 'organ' .*there are: liver"):
        case.structure("organ")


@pytest.mark.parametrize("system", ["LPS", "1"])
def test_fcsv_in_lps_is_turned_into_ras(tmp_path: Path, system: str) -> None:
    write_vtk(tmp_path / "liver.vtk", sphere(), None)
    (tmp_path / "points.fcsv").write_text(FCSV.format(system=system))
    np.testing.assert_allclose(load_case(tmp_path).targets["portal"], [-5.0, 6.0, 7.0])


def test_a_folder_with_only_a_label_volume_gets_surfaces_from_it(tmp_path: Path) -> None:
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[5:25, 5:25, 5:25] = 1
    labels[12:16, 12:16, 12:16] = 3
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(tmp_path / "labels.nii.gz"))

    case = load_case(tmp_path)

    assert set(case.structures) == {"organ", "lesion"} and case.labels is not None
    assert case.structure("lesion").enclosed_volume_mm3 == pytest.approx(64, rel=0.2)


def test_a_folder_without_any_model_is_refused_with_what_it_needs(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(PreopModelError) as refused:
        load_case(tmp_path)
    message = str(refused.value)
    assert str(tmp_path) in message and ".stl" in message and "igtflow phantom export" in message
    with pytest.raises(PreopModelError, match="no such folder"):
        load_case(tmp_path / "missing")


def test_the_same_target_name_in_two_files_is_refused(tmp_path: Path) -> None:
    write_vtk(tmp_path / "liver.vtk", sphere(), None)
    (tmp_path / "a.fcsv").write_text(FCSV.format(system="RAS"))
    (tmp_path / "b.fcsv").write_text(FCSV.format(system="LPS"))
    with pytest.raises(PreopModelError, match=r"b\.fcsv: target 'portal' is also in another"):
        load_case(tmp_path)


def test_a_damaged_mesh_in_a_case_names_the_file(tmp_path: Path) -> None:
    write_vtk(tmp_path / "liver.vtk", sphere(), None)
    (tmp_path / "vessel.stl").write_bytes(b"\0" * 80 + (1000).to_bytes(4, "little"))
    with pytest.raises(PreopModelError, match=r"vessel\.stl: truncated"):
        load_case(tmp_path)
