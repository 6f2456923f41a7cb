"""Fluoroscopy 2D/3D registration: contours, pose recovery, tracking, refusals, bad input."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from igtflow.registration.evaluate import misalignment, phantom_preop_case
from igtflow.registration.fluoro_contours import extract_contours, signed_distance
from igtflow.registration.fluoro_geometry import FluoroGeometryError
from igtflow.registration.fluoro_model import FluoroModel
from igtflow.registration.fluoro_registration import FluoroRegistrar
from igtflow.registration.icp import rotation_from_vector
from igtflow.stream.messages import Image
from igtflow.stream.phantom.carm import CArmGeometry
from tests.helpers.fluoro_render import render_labels

SEED, OTHER = 1001, 1002


@functools.lru_cache(maxsize=2)
def case(seed: int):
    return phantom_preop_case(seed)


@functools.lru_cache(maxsize=1)
def sim():
    from igtflow.stream.phantom.fluoro import FluoroSim

    return FluoroSim(SEED)


def labels_image(data: np.ndarray, geometry: CArmGeometry) -> Image:
    return Image(data=data, modality="LABELS", spacing=(0.6, 0.6), meta=geometry.meta())


def test_signed_distance_crosses_zero_half_way_between_pixels() -> None:
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    d = signed_distance(mask)
    assert d[10, 14] == pytest.approx(-0.5) and d[10, 15] == pytest.approx(0.5)
    contours = extract_contours(mask.astype(np.uint8), np.ones((20, 20), bool))
    assert len(contours.silhouette.edges) == 36 and contours.vessels.empty


def test_known_pose_recovered_in_plane_with_depth_less_certain() -> None:
    model = case(SEED)
    center = model.structures["organ"].vertices.mean(axis=0)
    geometry = CArmGeometry(lao_deg=20.0, cranial_deg=-10.0, isocenter=tuple(center))
    truth = np.eye(4)
    truth[:3, :3] = rotation_from_vector(np.radians([2.0, -1.5, 3.0]))
    truth[:3, 3] = center - truth[:3, :3] @ center + [4.0, -2.0, 3.0]
    image = labels_image(render_labels(model, truth, geometry), geometry)
    init = misalignment(3.0, 3.0, center, 7) @ truth
    estimate = FluoroRegistrar(model, init=init, depth_prior_sd_mm=0.0).update(image)
    assert estimate.valid, estimate.reason
    beam = geometry.rotation[:, 2]
    for name, point in model.targets.items():
        moved = truth[:3, :3] @ point + truth[:3, 3]
        ray = geometry.ray_directions(geometry.project(moved[None]))[0]
        error = estimate.targets[name] - moved
        assert np.linalg.norm(error - (error @ ray) * ray) < 0.1, name  # across the ray
    turn = Rotation.from_matrix(estimate.model_to_reference[:3, :3] @ truth[:3, :3].T)
    assert abs(np.degrees(turn.as_rotvec() @ beam)) < 0.1  # the turn in the image plane
    assert estimate.out_of_plane_sd_mm > 3 * estimate.in_plane_sd_mm


def test_tracks_breathing_frames() -> None:
    s = sim()
    registrar = FluoroRegistrar(
        case(SEED), init=misalignment(10.0, 10.0, s.anatomy.organ_center, 1)
    )
    iso = s.geometry.pixel_spacing_mm * s.geometry.sod_mm / s.geometry.sid_mm
    for index in (0, 15, 30, 45):  # exhale to mid-inhale: about 7 mm of motion
        frame = s.render(index, truth=False)
        estimate = registrar.update(labels_image(frame.labels, s.geometry))
        assert estimate.valid, (index, estimate.reason)
        for name, pixel in zip(frame.target_ids, frame.target_pixels, strict=True):
            assert np.linalg.norm(estimate.projected_targets[name] - pixel) * iso < 1.5
        assert np.isfinite(estimate.out_of_plane_sd_mm)


def test_vessels_alone_register_when_the_organ_is_not_trusted() -> None:
    s = sim()
    frame = s.render(30, truth=False)
    model = FluoroModel.from_case(case(SEED), vessel_structures=("vessel",))
    registrar = FluoroRegistrar(model, silhouette=False)
    estimate = registrar.update(labels_image(frame.labels, s.geometry))
    assert estimate.valid, estimate.reason
    iso = s.geometry.pixel_spacing_mm * s.geometry.sod_mm / s.geometry.sid_mm
    for name, pixel in zip(frame.target_ids, frame.target_pixels, strict=True):
        assert np.linalg.norm(estimate.projected_targets[name] - pixel) * iso < 2.0


def test_hopeless_inputs_are_invalid() -> None:
    s = sim()
    frame = s.render(0, truth=False)
    empty = FluoroRegistrar(case(SEED)).update(
        labels_image(np.zeros_like(frame.labels), s.geometry)
    )
    assert not empty.valid and "no contour" in empty.reason
    other = FluoroRegistrar(case(OTHER)).update(labels_image(frame.labels, s.geometry))
    assert not other.valid, other.error_mm


def test_bad_input_is_a_clear_error() -> None:
    registrar = FluoroRegistrar(case(SEED))
    labels = np.zeros((64, 64), np.uint8)
    with pytest.raises(FluoroGeometryError, match="no C-arm geometry"):
        registrar.update(Image(data=labels, modality="LABELS"))
    with pytest.raises(ValueError, match="modality LABELS"):
        registrar.update(Image(data=labels, modality="XA", meta=CArmGeometry().meta()))
    with pytest.raises(FluoroGeometryError, match="3x4"):
        registrar.update(
            Image(
                data=labels,
                modality="LABELS",
                meta={**CArmGeometry().meta(), "projection": [[1, 2]]},
            )
        )
