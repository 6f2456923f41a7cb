"""Honest validity of ultrasound registration: hopeless input is refused with a reason, good
input becomes valid once confirmed, jumps and stale windows are not trusted."""

from __future__ import annotations

import math

import numpy as np
import pytest

from igtflow.registration import evaluate
from igtflow.registration.icp import RigidResult, rotation_from_vector
from igtflow.registration.plausibility import Plausibility, distinct_slices
from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim

SEED = 1001
WINDOW = 10


@pytest.fixture(scope="module")
def case() -> evaluate.PhantomCase:
    return evaluate.phantom_case(SEED, vessel=True)


@pytest.fixture(scope="module")
def still_sim() -> UltrasoundSim:
    """A sweep that neither breathes nor deforms: the undeformed model is the truth."""
    return UltrasoundSim(
        SEED, UltrasoundConfig(**evaluate.SWEEP), breathing_amplitude_mm=0.0, deformation_mm=0.0
    )


class Clock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_every_hopeless_kind_is_refused_with_a_reason(case):
    own = evaluate.sweep_frames(SEED, 2 * WINDOW + 1, 1, vessel=True)
    other = evaluate.sweep_frames(SEED + 1, 2 * WINDOW + 1, 1, vessel=True)
    estimates = evaluate.hopeless_validity(case, own, other, SEED, WINDOW)
    kinds = {kind for kind, _, _ in estimates}
    assert kinds == {"no_contour", "blank", "noise", "blobs", "shuffled", "wrong_model",
                     "other_patient"}  # fmt: skip
    for kind, valid, reason in estimates:
        assert not valid and reason, (kind, reason)


def test_good_input_is_valid_once_a_second_update_confirms_it(case, still_sim):
    registrar = evaluate.registrar_for(case, np.eye(4), WINDOW)
    for index in range(WINDOW):
        registrar.add(evaluate.truth_labels(still_sim, index))
    first = registrar.update()
    assert not first.valid and "not yet confirmed" in first.reason
    assert math.isinf(first.error_mm)
    again = registrar.update()  # the same slices confirm nothing
    assert not again.valid and "not yet confirmed" in again.reason
    for index in range(WINDOW, WINDOW + 3):
        registrar.add(evaluate.truth_labels(still_sim, index))
    confirmed = registrar.update()
    assert confirmed.valid, confirmed.reason
    assert confirmed.reason == "" and 0.0 < confirmed.error_mm < 3.0
    assert confirmed.verdict is not None and confirmed.verdict.figures["vessel_shown"] > 0.9
    truth = evaluate.true_targets(still_sim, WINDOW + 2)
    for name, point in truth.items():
        assert np.linalg.norm(confirmed.targets[name] - point) < 1.5


def test_a_probe_held_still_is_degenerate(case, still_sim):
    registrar = evaluate.registrar_for(case, np.eye(4), WINDOW)
    image = evaluate.truth_labels(still_sim, 0)
    for k in range(2 * WINDOW):
        registrar.add(image)  # the same plane again and again
        if k % 5 == 4:
            estimate = registrar.update()
            assert not estimate.valid and "degenerate" in estimate.reason, estimate.reason
    points = evaluate.lift_labels(image)
    assert distinct_slices(np.vstack([points, points]), np.repeat([0, 1], len(points))) == 1


def _slab_points(surface: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Surface points in 5 parallel slabs 4 mm apart: the window of a sweep, slice by slice."""
    centre = surface.mean(axis=0)
    slices = [surface[np.abs(surface[:, 0] - centre[0] - 4.0 * k) < 0.3] for k in range(5)]
    return np.vstack(slices), np.repeat(np.arange(5), [len(s) for s in slices])


def _fit(reference_to_model: np.ndarray, n: int) -> RigidResult:
    return RigidResult(reference_to_model, True, True, 5, n, 1.0, 0.3, 0.3, 0.8)


def test_motion_prior_holds_back_a_jump_until_confirmed(case):
    judge = Plausibility(case.surfaces[:1])
    model_points, index = _slab_points(case.surfaces[0][1])
    tags = np.zeros(len(model_points), np.int8)
    still = np.eye(4)
    assert not judge.judge(_fit(still, len(tags)), model_points, tags, index).valid
    assert judge.judge(_fit(still, len(tags)), model_points, tags, index).valid

    # The same points seen after the organ turned 20° about its centre: a perfect fit, but
    # breathing does not turn an organ that far between two updates.
    centre = model_points.mean(axis=0)
    jump = np.eye(4)
    jump[:3, :3] = rotation_from_vector(np.radians(20.0) * np.array([0.0, 0.6, 0.8]))
    jump[:3, 3] = centre - jump[:3, :3] @ centre
    seen = (model_points - jump[:3, 3]) @ jump[:3, :3]  # jump⁻¹ · model points
    verdict = judge.judge(_fit(jump, len(tags)), seen, tags, index)
    assert not verdict.valid and verdict.plausible and "jumped" in verdict.reason
    assert math.isinf(verdict.error_mm) and verdict.figures["jump_deg"] == pytest.approx(20.0)
    assert judge.judge(_fit(jump, len(tags)), seen, tags, index).valid  # confirmed there


def test_stale_after_the_timeout(case, still_sim):
    clock = Clock()
    registrar = evaluate.registrar_for(case, np.eye(4), WINDOW)
    registrar.clock = clock
    for index in range(WINDOW + 3):
        registrar.add(evaluate.truth_labels(still_sim, index))
        clock.now += 0.03
        if index == WINDOW - 1:
            registrar.update()
    fresh = registrar.update()
    assert fresh.valid and not fresh.stale and fresh.age_s == pytest.approx(0.03)
    clock.now += registrar.stale_after_s + 0.5
    stale = registrar.update()
    assert stale.stale and not stale.valid and "stale" in stale.reason
    assert stale.age_s == pytest.approx(registrar.stale_after_s + 0.53)
    assert math.isinf(stale.error_mm)
    np.testing.assert_allclose(stale.model_to_reference, fresh.model_to_reference)
