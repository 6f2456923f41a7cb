"""The deformable update: the phantom's deformation recovered at its targets, an absurd
deformation never followed past the cap, and one over the cap refused with its reason."""

from __future__ import annotations

import numpy as np
import pytest

from igtflow.registration import evaluate
from igtflow.registration.deformable import DeformableUpdate, FieldSettings
from igtflow.registration.us_points import SliceWindow, lift_labels
from igtflow.registration.us_registration import UsRegistrar
from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim

SEEDS = (1001, 1003)  # held out


@pytest.fixture(scope="module")
def case() -> evaluate.PhantomCase:
    return evaluate.phantom_case(SEEDS[0])


def deformation_only(seed: int) -> UltrasoundSim:
    """A sweep of the phantom that deforms but does not breathe: the true pose is the identity,
    so what is left to find is the deformation alone."""
    return UltrasoundSim(seed, UltrasoundConfig(**evaluate.SWEEP), breathing_amplitude_mm=0.0)


def test_the_phantom_deformation_is_mostly_recovered_at_the_targets() -> None:
    """With the pose given (no breathing), three windows of truth contours: the bent targets
    land nearer the truth than the unbent ones by a clear margin. Not yet within the product's
    targets (TRE median 1.5 mm, 95th 3 mm): on this seed the median is about 2 mm, the
    deformation 3.4-3.8 mm; on seed 1001 about 0.8 mm of 2.3 mm."""
    seed = SEEDS[1]
    case = evaluate.phantom_case(seed)
    sim = deformation_only(seed)
    update = DeformableUpdate(case.target, np.array(list(case.targets.values())))
    errors, unbent = [], []
    for end in (15, 45, 75):  # three windows of ten slices (a centimetre slab each)
        frames = range(end - 10, end)
        cloud = np.concatenate([lift_labels(evaluate.truth_labels(sim, i)) for i in frames])
        fit = update.fit(cloud, np.eye(4), sim.time_of(end - 1))
        assert fit.valid, fit.reason
        assert fit.median_mm < fit.rigid_median_mm  # the bent model lies nearer the points
        truth = evaluate.true_targets(sim, end - 1)
        for name, model_point in case.targets.items():
            bent = fit.field.to_reference(model_point[None], fit.pose)[0]
            errors.append(float(np.linalg.norm(bent - truth[name])))
            unbent.append(float(np.linalg.norm(model_point - truth[name])))
    assert np.median(errors) <= 0.7 * np.median(unbent), (errors, unbent)
    assert max(errors) < max(unbent), (errors, unbent)


def test_an_absurd_bulge_is_never_followed_past_the_cap(case) -> None:
    update = DeformableUpdate(case.target, np.array(list(case.targets.values())))
    surface = case.target.points[::7]
    # The organ's side bulging further at every update, 8 mm at a time, up to 40 mm: no tissue
    # deforms so after a rigid fit. Points that far off the surface are left out of the fit
    # (wrong correspondences) and no valid field ever exceeds the cap.
    bump = np.exp(-np.sum((surface - surface[0]) ** 2, axis=1) / (2 * 35.0**2))
    for step in range(1, 6):
        bulged = surface + 8.0 * step * bump[:, None] * case.target.normals[::7]
        fit = update.fit(bulged, np.eye(4), 0.1 * step)
        assert fit.largest_mm <= FieldSettings.max_mm or not fit.valid, fit
        assert update.field.largest_mm(update.anchors) <= FieldSettings.max_mm


def test_a_refused_deformation_makes_the_estimate_not_valid_with_the_reason(case) -> None:
    sim = deformation_only(SEEDS[0])
    registrar = UsRegistrar(
        case.target,
        case.targets,
        init=np.eye(4),
        window=SliceWindow(10, 2.0),
        deformable=True,
        field_settings=FieldSettings(max_mm=0.05),  # any real deformation exceeds this
    )
    estimates = []
    for index in range(0, 40, 2):
        registrar.add(evaluate.truth_labels(sim, index))
        if index >= 18 and index % 6 == 0:
            estimates.append(registrar.update())
    rigid_valid = [e for e in estimates if e.verdict is not None and e.verdict.valid]
    assert rigid_valid, [e.reason for e in estimates]  # the rigid fit alone is trusted...
    for estimate in rigid_valid:  # ...but the estimate with its implausible deformation is not
        assert not estimate.valid and np.isinf(estimate.error_mm)
        assert estimate.reason.startswith("deformable update refused: deformation of")


def test_the_field_decays_when_no_trusted_fit_comes(case) -> None:
    update = DeformableUpdate(case.target, settings=FieldSettings(decay_s=1.0))
    surface = case.target.points[::5]
    shifted = (
        surface
        + np.array([0.0, 2.0, 0.0])
        * np.exp(-np.sum((surface - surface.mean(axis=0)) ** 2, axis=1) / (2 * 60.0**2))[:, None]
    )
    fit = update.fit(shifted, np.eye(4), 0.0)
    assert fit.valid, fit.reason
    size = update.field.largest_mm(surface)
    assert size > 0.5
    update.decay(2.0)  # two time constants later
    assert update.field.largest_mm(surface) == pytest.approx(size * np.exp(-2.0), rel=1e-6)
