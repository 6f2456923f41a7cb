"""Label volumes written by pynrrd and SimpleITK are placed in RAS as those libraries place them,
their surfaces enclose what was painted, and damaged or oversized files are refused before any
voxel is read.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk

from igtflow.registration.label_surfaces import surfaces_from_labels
from igtflow.registration.preop_model import PreopModelError, is_closed
from igtflow.registration.preop_volume import LabelVolume, load_label_volume

LPS = np.array([-1.0, -1.0, 1.0])
SHAPE = (60, 50, 45)
RADIUS = 12.0
SPACING = (0.7, 0.9, 1.1)
TURN = np.array([[0.8, -0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])  # 37° about S
ORIGIN_LPS = (20.0, -10.0, 5.0)


def voxel_centres(index_to_point) -> np.ndarray:
    """N×3 RAS centres of every voxel of SHAPE in i-fastest order, by a writer's own mapping."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1)
    return index_to_point(ijk.reshape(-1, 3))


def painted_sphere(centres_ras: np.ndarray, centre: np.ndarray, value: int = 3) -> np.ndarray:
    inside = np.linalg.norm(centres_ras - centre, axis=1) < RADIUS
    return (inside.reshape(SHAPE) * value).astype(np.uint8)


def surface_centroid(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Centre of the enclosed solid (tetrahedra from the origin weighted by signed volume)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    weights = np.einsum("ij,ij->i", a, np.cross(b, c))
    return ((a + b + c) / 4 * weights[:, None]).sum(axis=0) / weights.sum()


def assert_surface_is_the_sphere(volume: LabelVolume, centre_ras: np.ndarray) -> None:
    lesion = surfaces_from_labels(volume)["lesion"]
    assert is_closed(lesion.faces)
    exact = 4 / 3 * np.pi * RADIUS**3
    assert abs(lesion.enclosed_volume_mm3 / exact - 1) < 0.03
    assert np.linalg.norm(surface_centroid(lesion.vertices, lesion.faces) - centre_ras) < 0.5
    radii = np.linalg.norm(lesion.vertices - centre_ras, axis=1)
    assert np.abs(radii - RADIUS).max() < 1.0, "the surface is where the voxels end"


@pytest.fixture
def nifti_sphere(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A NIfTI file with a sphere painted at voxel centres SimpleITK itself computes (LPS)."""
    image = sitk.Image(list(SHAPE), sitk.sitkUInt8)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN_LPS)
    image.SetDirection(TURN.ravel().tolist())
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint((30.3, 25.2, 22.6))) * LPS

    def to_ras(ijk: np.ndarray) -> np.ndarray:
        return np.array([image.TransformIndexToPhysicalPoint(p.tolist()) for p in ijk]) * LPS

    labels = painted_sphere(voxel_centres(to_ras), centre)
    painted = sitk.GetImageFromArray(labels.transpose(2, 1, 0))  # SimpleITK takes [k, j, i]
    painted.CopyInformation(image)
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(painted, str(path))
    return path, centre


def test_nifti_from_simpleitk_is_placed_in_ras(nifti_sphere: tuple[Path, np.ndarray]) -> None:
    path, centre = nifti_sphere
    volume = load_label_volume(path)
    assert volume.labels.shape == SHAPE
    np.testing.assert_allclose(volume.spacing_mm, SPACING)
    assert_surface_is_the_sphere(volume, centre)


@pytest.mark.parametrize("space", ["left-posterior-superior", "right-anterior-superior"])
def test_nrrd_from_pynrrd_is_placed_as_simpleitk_reads_it(tmp_path: Path, space: str) -> None:
    directions = (TURN * np.array(SPACING)).T  # row n: axis n's step in the file's space
    origin = np.array(ORIGIN_LPS)
    path = tmp_path / "labels.nrrd"
    header = {"space": space, "space directions": directions, "space origin": origin}
    header["encoding"] = "gzip"
    signs = LPS if space.startswith("left") else np.ones(3)
    centres = voxel_centres(lambda ijk: (ijk @ directions + origin) * signs)
    centre = (np.array([30.3, 25.2, 22.6]) @ directions + origin) * signs
    nrrd.write(str(path), painted_sphere(centres, centre), header, index_order="F")

    volume = load_label_volume(path)

    image = sitk.ReadImage(str(path))  # an independent reading of the same file
    corner = np.array(image.TransformIndexToPhysicalPoint((59, 0, 44))) * LPS
    np.testing.assert_allclose(volume.ijk_to_ras @ [59, 0, 44, 1], [*corner, 1], atol=1e-9)
    assert np.array_equal(volume.labels, sitk.GetArrayFromImage(image).transpose(2, 1, 0))
    assert_surface_is_the_sphere(volume, centre)


def test_labels_become_one_surface_each_named(tmp_path: Path) -> None:
    labels = np.zeros((40, 40, 40), np.uint8)
    labels[5:30, 5:30, 5:30] = 1
    labels[10:15, 10:15, 10:15] = 3
    labels[32:36, 32:36, 32:36] = 7
    volume = LabelVolume(labels, np.diag([1.0, 1.0, 1.0, 1.0]))

    surfaces = surfaces_from_labels(volume, smooth_iterations=0)

    assert set(surfaces) == {"organ", "lesion", "label-7"}
    hollow, wrapped = surfaces["organ"], surfaces_from_labels(volume, merge={1: [3]})["organ"]
    assert hollow.enclosed_volume_mm3 == pytest.approx(25**3 - 5**3, rel=0.02)
    assert wrapped.enclosed_volume_mm3 == pytest.approx(25**3, rel=0.03)
    only = surfaces_from_labels(volume, names={3: "target"})
    assert list(only) == ["target"]


def test_a_header_declaring_a_billion_voxels_is_refused_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "labels.nrrd"
    path.write_bytes(
        b"NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\n"
        b"sizes: 100000 100000 100000\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n"
        b"encoding: raw\n\n" + b"\0" * 1000
    )
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PreopModelError) as refused:
            load_label_volume(path)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0 and peak < 16 << 20, (elapsed, peak)
    message = str(refused.value)
    assert str(path) in message and "100000 x 100000 x 100000" in message and "crop" in message


def test_a_nifti_header_declaring_huge_sizes_is_refused_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "labels.nii"
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkUInt8), str(path))
    data = bytearray(path.read_bytes())
    data[42:48] = np.array([32767, 32767, 32767], "<i2").tobytes()  # dim[1..3] of the header
    path.write_bytes(bytes(data))
    started = time.perf_counter()
    with pytest.raises(PreopModelError, match=r"declares 32767 x 32767 x 32767 voxels"):
        load_label_volume(path)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("name", ["labels.nrrd", "labels.nii.gz"])
def test_a_volume_cut_in_half_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    labels = np.random.default_rng(0).integers(0, 4, (30, 30, 30), dtype=np.uint8)
    if name.endswith(".nrrd"):
        nrrd.write(str(path), labels, {"space": "RAS", "encoding": "gzip"})
    else:
        sitk.WriteImage(sitk.GetImageFromArray(labels), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PreopModelError, match=r"labels\.(nrrd|nii\.gz): .*(truncated|damaged)"):
        load_label_volume(path)


def test_a_volume_of_fractions_is_not_a_label_volume(tmp_path: Path) -> None:
    path = tmp_path / "ct.nrrd"
    nrrd.write(str(path), np.full((4, 4, 4), 0.5, np.float32), {"space": "RAS"})
    with pytest.raises(PreopModelError, match=r"ct\.nrrd: voxels hold fractions .*labelmap"):
        load_label_volume(path)


def test_an_nrrd_without_space_needs_one_given(tmp_path: Path) -> None:
    path = tmp_path / "labels.nrrd"
    nrrd.write(str(path), np.ones((4, 4, 4), np.uint8), {"spacings": [2.0, 2.0, 2.0]})
    with pytest.raises(PreopModelError, match=r"no space field.* space='RAS' or space='LPS'"):
        load_label_volume(path)
    volume = load_label_volume(path, space="LPS")
    np.testing.assert_allclose(volume.ijk_to_ras @ [1, 1, 1, 1], [-2, -2, 2, 1])


@pytest.mark.parametrize("name", ["labels.mha", "empty.nrrd", "missing.nii.gz"])
def test_unknown_empty_or_missing_volumes_say_what_to_do(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name != "missing.nii.gz":
        path.write_bytes(b"")
    with pytest.raises(PreopModelError, match=r"(unknown label volume|empty file|no such file)"):
        load_label_volume(path)
