"""Rigid ICP onto a preoperative surface: known transforms come back, noise and outliers do not
move it, a warm start is quick, and hopeless input is never reported as a confident result."""

from __future__ import annotations

import numpy as np
import pytest

from igtflow.registration.bench_icp import (
    bench_icp,
    markdown_table,
    misalignment,
    phantom_organ,
    pose_errors,
)
from igtflow.registration.closest_points import ModelTarget, sample_surface
from igtflow.registration.icp import (
    GlobalSearch,
    RigidTracker,
    register_rigid,
    reinitialise,
    rotation_from_vector,
)


@pytest.fixture(scope="module")
def organ() -> tuple[np.ndarray, np.ndarray, np.ndarray, ModelTarget]:
    """The phantom's organ surface as a preoperative model (vertices, faces, targets, target)."""
    vertices, faces, targets, _ = phantom_organ(1001)
    return vertices, faces, targets, ModelTarget.from_mesh(vertices, faces)


def rigid(degrees: float, mm: float, rng: np.random.Generator) -> np.ndarray:
    """A ``ReferenceToModel`` truth: ``degrees`` about a random axis, ``mm`` in a random way."""
    axis, shift = rng.normal(size=3), rng.normal(size=3)
    truth = np.eye(4)
    truth[:3, :3] = rotation_from_vector(axis / np.linalg.norm(axis) * np.radians(degrees))
    truth[:3, 3] = shift / np.linalg.norm(shift) * mm
    return truth


def into_reference(model_points: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return (model_points - truth[:3, 3]) @ truth[:3, :3]


def box_surface(half: float, count: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Points and outward normals on the faces of a cube of half-side ``half`` (mm)."""
    axis = rng.integers(0, 3, count)
    side = rng.choice([-1.0, 1.0], count)
    points = rng.uniform(-half, half, (count, 3))
    points[np.arange(count), axis] = side * half
    normals = np.zeros((count, 3))
    normals[np.arange(count), axis] = side
    return points, normals


def test_known_transforms_are_recovered_to_a_tenth_of_a_millimetre_and_degree(organ) -> None:
    vertices, faces, targets, target = organ
    rng = np.random.default_rng(7)
    surface, _ = sample_surface(vertices, faces, 5000, rng)  # not the model's own samples
    for degrees, mm in [(15, 20), (15, 20), (15, 5), (3, 20), (10, 12), (7, 7)]:
        truth = rigid(degrees, mm, rng)
        points = into_reference(surface, truth)
        result = register_rigid(points, target)
        if not result.valid:
            result = reinitialise(points, target, np.eye(4))
        rotation, _, tre = pose_errors(result.reference_to_model, truth, targets)
        assert result.valid and result.converged, result.reason
        assert rotation < 0.1 and tre < 0.1, (degrees, mm, rotation, tre)
        assert result.inlier_fraction > 0.99 and result.median_mm < 0.1
        assert np.allclose(result.model_to_reference @ result.reference_to_model, np.eye(4))
        assert np.allclose(result.apply(points), surface, atol=0.2)


def test_noise_and_a_fifth_of_outliers_stay_within_half_a_millimetre(organ) -> None:
    vertices, faces, targets, target = organ
    rng = np.random.default_rng(11)
    for _ in range(3):
        truth = misalignment(rng, degrees=5.0)
        surface, _ = sample_surface(vertices, faces, 4000, rng)
        surface += rng.normal(0.0, 0.3, surface.shape)
        low, high = surface.min(axis=0) - 20, surface.max(axis=0) + 20
        outliers = rng.uniform(low, high, (1000, 3))
        points = into_reference(np.vstack([surface, outliers]), truth)
        result = register_rigid(points, target)
        rotation, _, tre = pose_errors(result.reference_to_model, truth, targets)
        assert result.valid, result.reason
        assert tre < 0.5 and rotation < 0.5, (tre, rotation)
        assert 0.6 < result.inlier_fraction < 0.95  # the outliers are counted, not hidden
        assert 0.2 < result.rms_mm < 1.0
        assert result.error_mm >= tre  # the bound is conservative


def test_a_patch_the_probe_sees_registers_within_its_own_error_bound(organ) -> None:
    vertices, faces, _, target = organ
    rng = np.random.default_rng(12)
    surface, _ = sample_surface(vertices, faces, 40000, rng)
    valid = 0
    for _ in range(6):
        centre = surface[rng.integers(len(surface))]
        patch = surface[np.linalg.norm(surface - centre, axis=1) < 40.0][:3000]
        patch = patch + rng.normal(0.0, 0.3, patch.shape)
        truth = misalignment(rng, degrees=5.0)
        result = register_rigid(into_reference(patch, truth), target)
        error = np.linalg.norm(result.apply(into_reference(patch, truth)) - patch, axis=1)
        if result.valid:
            valid += 1
            assert error.max() <= result.error_mm, (error.max(), result)
    assert valid >= 4  # a patch may slide along the organ: then it says so, never a wrong pose


def test_warm_start_from_the_last_result_converges_in_a_few_iterations(organ) -> None:
    vertices, faces, targets, target = organ
    rng = np.random.default_rng(3)
    surface, _ = sample_surface(vertices, faces, 3000, rng)
    truth = rigid(12, 15, rng)
    first = register_rigid(into_reference(surface, truth), target)
    moved = rigid(1, 1, rng) @ truth  # the patient breathed a little
    again = register_rigid(into_reference(surface, moved), target, init=first.reference_to_model)
    assert first.valid and again.valid
    assert again.iterations <= 6 < first.iterations
    assert pose_errors(again.reference_to_model, moved, targets)[2] < 0.1


def test_tracker_reinitialises_globally_when_lost_and_then_warm_starts(organ) -> None:
    vertices, faces, targets, target = organ
    rng = np.random.default_rng(5)
    surface, _ = sample_surface(vertices, faces, 2000, rng)
    tracker = RigidTracker(target)  # no pose at all: a global start
    truth = rigid(60, 40, rng)
    found = tracker.update(into_reference(surface, truth))
    assert found.valid, found.reason
    assert pose_errors(found.reference_to_model, truth, targets)[2] < 0.2
    nudged = rigid(2, 2, rng) @ truth
    followed = tracker.update(into_reference(surface, nudged))
    assert followed.valid and followed.iterations <= 8
    assert pose_errors(followed.reference_to_model, nudged, targets)[2] < 0.2


def test_a_search_spread_over_updates_runs_few_fits_each_and_finds_the_same_pose(organ) -> None:
    vertices, faces, targets, target = organ
    rng = np.random.default_rng(9)
    surface, _ = sample_surface(vertices, faces, 2000, rng)
    truth = rigid(60, 40, rng)
    points = into_reference(surface, truth)
    whole = GlobalSearch(points, target).step()
    search = GlobalSearch(points, target)
    steps = 0
    while (found := search.step(4)) is None:
        steps += 1
        assert search.fitted == 4 * steps  # never more than asked for in one step
    assert steps >= search.fits // 4 - 1 and search.fitted == search.fits
    assert found.valid and whole is not None
    assert np.allclose(found.reference_to_model, whole.reference_to_model)

    tracker = RigidTracker(target, search_fits=4)  # lost from the start: a global search
    answers = [tracker.update(points) for _ in range(steps + 1)]
    assert all(not a.valid and "searching globally" in a.reason for a in answers[:-1])
    assert answers[-1].valid, answers[-1].reason
    assert pose_errors(answers[-1].reference_to_model, truth, targets)[2] < 0.2


def test_too_few_points_are_not_valid(organ) -> None:
    target = organ[3]
    result = register_rigid(target.points[:5], target)
    assert not result.valid and "5 points" in result.reason
    assert not reinitialise(target.points[:5], target).valid


def test_points_far_from_the_model_are_not_valid(organ) -> None:
    vertices, faces, _, target = organ
    rng = np.random.default_rng(2)
    surface, normals = sample_surface(vertices, faces, 2000, rng)
    away = surface + 50.0 * normals  # a shell 50 mm outside the organ
    result = register_rigid(away, target)
    assert not result.valid and result.error_mm > 1.0, result


def test_a_random_cloud_is_not_valid_even_after_a_global_search(organ) -> None:
    target = organ[3]
    rng = np.random.default_rng(4)
    low, high = target.points.min(axis=0), target.points.max(axis=0)
    cloud = rng.uniform(low, high, (2000, 3))
    assert not register_rigid(cloud, target).valid
    assert not reinitialise(cloud, target, np.eye(4)).valid


def test_the_wrong_model_is_not_valid() -> None:
    rng = np.random.default_rng(6)
    box = ModelTarget.from_points(*box_surface(30.0, 20000, rng), band_mm=20.0)
    direction = rng.normal(size=(3000, 3))
    sphere = 30.0 * direction / np.linalg.norm(direction, axis=1)[:, None]
    result = register_rigid(sphere, box)
    assert not result.valid, result
    assert not reinitialise(sphere, box, np.eye(4)).valid


def test_a_flat_patch_cannot_be_trusted_along_its_plane() -> None:
    rng = np.random.default_rng(8)
    box = ModelTarget.from_points(*box_surface(30.0, 20000, rng), band_mm=20.0)
    patch = np.column_stack([rng.uniform(-10, 10, (500, 2)), np.full(500, 32.0)])  # 2 mm off
    result = register_rigid(patch, box)
    assert not result.valid and "degenerate" in result.reason
    assert result.error_mm > 5.0


def test_bench_reports_both_methods_on_the_same_points() -> None:
    report = bench_icp(points=500, repeats=3)
    assert report["threads"]["OMP_NUM_THREADS"] == "1"
    for key in ("icp_ms", "icp_open3d_ms"):
        assert 0 < report[key]["p50_ms"] <= report[key]["p99_ms"] <= report[key]["max_ms"]
    assert report["icp_vs_open3d"] < 10.0  # generous: a loaded machine, a tiny cloud
    for method in ("ours", "open3d"):
        accuracy = report["accuracy"][method]
        assert accuracy["tre_mm"]["max"] < 1.0 and accuracy["rotation_deg"]["max"] < 1.0
    robust = report["with_outliers"]  # a fifth of the points anywhere: ours shrugs them off
    assert robust["accuracy"]["ours"]["tre_mm"]["max"] < 0.5
    assert robust["icp_ms"]["p50_ms"] > 0 and robust["icp_open3d_ms"]["p50_ms"] > 0
    assert report["machine"]["calibration"]["python_loop_ms"] > 0
    table = markdown_table(report)
    assert "| Open3D point-to-plane (defaults) |" in table and "ICP p50 vs Open3D p50" in table
