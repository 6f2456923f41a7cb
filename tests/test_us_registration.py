"""Ultrasound → model rigid registration: lifting, recovery of a known offset, refusal, eval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from igtflow.registration import evaluate
from igtflow.registration.us_points import SliceWindow, lift_labels
from igtflow.registration.us_registration import UsRegistrar
from igtflow.stream.messages import Image
from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim

SEED = 1001


@pytest.fixture(scope="module")
def case() -> evaluate.PhantomCase:
    return evaluate.phantom_case(SEED)


@pytest.fixture(scope="module")
def still_sim() -> UltrasoundSim:
    """A sweep over the organ that neither breathes nor deforms: the model is the truth."""
    return UltrasoundSim(
        SEED, UltrasoundConfig(**evaluate.SWEEP), breathing_amplitude_mm=0.0, deformation_mm=0.0
    )


def nearest_mm(points: np.ndarray, model: np.ndarray) -> np.ndarray:
    return np.array([math.sqrt(((model - p) ** 2).sum(axis=1).min()) for p in points])


def test_lifted_boundary_lies_on_the_model_surface(case, still_sim):
    image = evaluate.truth_labels(still_sim, 0)
    points = lift_labels(image)
    assert len(points) > 200
    distance = nearest_mm(points[::4], case.target.points)
    # The model is sampled about every 1 mm, so even exact points are up to ~0.5 mm from one.
    assert np.median(distance) < 0.8, np.median(distance)
    assert np.percentile(distance, 90) < 1.2, np.percentile(distance, 90)


def test_a_curvilinear_sector_edge_is_not_taken_for_the_surface(case):
    config = UltrasoundConfig(probe="curvilinear", **evaluate.SWEEP)
    sim = UltrasoundSim(SEED, config, breathing_amplitude_mm=0.0, deformation_mm=0.0)
    image = evaluate.truth_labels(sim, 0)
    assert image.meta["fov"]["shape"] == "sector"
    distance = nearest_mm(lift_labels(image)[::3], case.target.points)
    assert distance.max() < 2.0, distance.max()  # the organ is cut by the sector's side here
    assert np.percentile(distance, 90) < 1.2


def test_known_rigid_offset_is_recovered_from_truth_slices(case, still_sim):
    offset = evaluate.misalignment(8.0, 8.0, case.center, seed=3)
    registrar = UsRegistrar(case.target, case.targets, init=offset, window=SliceWindow(15, 5.0))
    for index in range(0, 45, 3):
        assert registrar.add(evaluate.truth_labels(still_sim, index)) > 0
        if index == 36:  # a first fit is valid only once an update on new slices confirms it
            assert not registrar.update().valid
    estimate = registrar.update()
    assert estimate.valid, estimate.reason
    assert estimate.slices == 15 and estimate.points >= 300
    truth = evaluate.true_targets(still_sim, 42)
    for name, point in truth.items():
        assert np.linalg.norm(estimate.targets[name] - point) < 1.0
    m = estimate.model_to_reference  # the truth is the identity: the model does not move
    turn_deg = math.degrees(math.acos(min(1.0, (np.trace(m[:3, :3]) - 1) / 2)))
    assert turn_deg < 0.5, turn_deg
    assert np.linalg.norm(m[:3, :3] @ case.center + m[:3, 3] - case.center) < 0.5


def test_empty_and_garbage_labels_are_never_valid(case):
    empty = Image(data=np.zeros((256, 256), np.uint8), modality="LABELS", spacing=(0.25, 0.3))
    registrar = UsRegistrar(case.target, case.targets)
    registrar.add(empty)
    estimate = registrar.update()
    assert not estimate.valid and "points" in estimate.reason
    assert np.isinf(estimate.error_mm)

    rng = np.random.default_rng(0)
    sim = UltrasoundSim(SEED, UltrasoundConfig(**evaluate.SWEEP))
    registrar = UsRegistrar(case.target, case.targets, init=np.eye(4))
    for index in range(5):
        truth = evaluate.truth_labels(sim, index)
        noise = rng.integers(0, 4, size=truth.data.shape, dtype=np.uint8)
        registrar.add(truth.with_data(noise))
    estimate = registrar.update()
    assert not estimate.valid and estimate.reason


def test_eval_smoke_gives_finite_figures():
    figures = evaluate.eval_registration(
        seeds=str(SEED), frames=30, update_every=10, window_slices=10, misalignments=((5.0, 5.0),)
    )
    for key in (
        "us_rigid_tre_median_mm",
        "us_rigid_tre_p95_mm",
        "capture_range_mm",
        "false_valid_rate",
        "update_ms",
    ):
        assert math.isfinite(figures[key]), (key, figures[key])
    assert figures["updates"] == 3


def test_a_case_registers_by_its_organ_and_vessels(still_sim):
    from igtflow.registration.case import PreopCase
    from igtflow.registration.preop_model import SurfaceModel
    from igtflow.stream.phantom.anatomy import LABEL_NAMES, ORGAN, VESSEL
    from igtflow.stream.phantom.export import structure_mesh

    anatomy = still_sim.anatomy
    structures = {}
    for label in (ORGAN, VESSEL):
        mesh = structure_mesh(anatomy, label, stride=2)
        name = LABEL_NAMES[label]
        structures[name] = SurfaceModel(
            name,
            np.asarray(mesh.vertices, np.float64),
            np.asarray(mesh.cells, np.int32),
            np.asarray(mesh.vertex_normals, np.float64),
        )
    targets = dict(zip(anatomy.target_ids, anatomy.targets, strict=True))
    shift = np.eye(4)
    shift[:3, 3] = (4.0, -3.0, 5.0)
    registrar = UsRegistrar.from_case(PreopCase(structures, targets), init=shift)
    assert len(registrar.regions) == 2  # organ and vessel boundaries are both lifted
    for index in range(0, 30, 3):
        registrar.add(evaluate.truth_labels(still_sim, index))
        if index == 21:
            registrar.update()
    estimate = registrar.update()
    assert estimate.valid, estimate.reason
    for name, point in evaluate.true_targets(still_sim, 27).items():
        assert np.linalg.norm(estimate.targets[name] - point) < 1.0


def test_eval_registration_command_prints_the_keys_and_refuses_training_seeds() -> None:
    import json

    from tests.helpers.cli import igtflow

    refused = igtflow("eval", "registration", "--seeds", "5-6")
    assert refused.returncode == 2 and "training seeds" in refused.stderr
    done = igtflow("eval", "registration", "--seeds", "1004", "--frames", "20", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for key in ("us_tre_median_mm", "us_tre_p95_mm", "deform_ms",
                "us_rigid_tre_median_mm", "us_rigid_tre_p95_mm", "capture_range_mm",
                "false_valid_rate", "update_ms", "fluoro_projected_mm", "fluoro_tre_mm",
                "fluoro_out_of_plane_sd_mm", "fluoro_hz", "fluoro_false_valid_rate",
                "fluoro_seg_projected_mm"):  # fmt: skip
        assert key in report, key
