"""Segmentation networks: training lowers the loss, shipped weights meet the issue's targets on
held-out seeds, fine-tuning on a user's PNG pairs reports metrics, garbage comes out unsure."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from igtflow.perception.card import load_card
from igtflow.perception.commands import WEIGHTS_DIR
from igtflow.perception.segmentation.data import FrameSet, out_of_distribution, to_classes
from igtflow.perception.segmentation.evaluate import (
    catheter_tip,
    evaluate_segmentation,
    predict_logits,
    softmax_margin,
)
from igtflow.perception.segmentation.nets import build_net
from igtflow.perception.segmentation.train import Recipe, train_segmentation
from tests.helpers.cli import igtflow

USER_SEED = 7  # a training seed: the "user's" frames are phantom frames written as PNG pairs


@pytest.fixture(autouse=True)
def _frame_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("IGTFLOW_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def us_frames() -> FrameSet:
    from igtflow.stream.phantom.ultrasound import UltrasoundSim

    sim = UltrasoundSim(USER_SEED)
    frames = [sim.render(i, truth=False) for i in range(0, 300, 15)]
    images = np.stack([f.image for f in frames])
    targets = np.stack([to_classes("us-seg", f.labels) for f in frames])
    n = len(frames)
    return FrameSet(images, targets, np.full(n, USER_SEED), np.full((n, 2), np.nan),
                    np.full((n, 2), np.nan))  # fmt: skip


def test_a_few_training_steps_lower_the_loss(us_frames: FrameSet) -> None:
    torch.manual_seed(0)
    recipe = Recipe("us-seg", seed=0)
    net = build_net("fast", 4)
    optimiser = torch.optim.AdamW(net.parameters(), lr=4e-3)
    x, y, garbage = recipe.batch([us_frames], [1.0])
    losses = []
    for _ in range(12):
        loss = recipe.loss(net(x), y, garbage)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_catheter_tip_is_the_far_end_from_the_entry() -> None:
    mask = np.zeros((64, 64), bool)
    mask[10:50, 30:33] = True  # a vertical catheter from row 49 (entry) up to row 10
    tip = catheter_tip(mask, np.array([31.0, 60.0]))
    assert tip is not None
    assert abs(tip[1] - 10.5) < 1.5 and abs(tip[0] - 31) < 1.5


def _shipped(name: str) -> Path:
    card = WEIGHTS_DIR / f"{name}.card.yaml"
    assert card.is_file(), f"{card} is not shipped"
    return card


def test_shipped_cards_load_and_weights_fit_the_limit() -> None:
    for name, size in (("us-seg", 256), ("fluoro-seg", 512)):
        card, weights = load_card(_shipped(name))
        assert card.input.height == card.input.width == size
        assert weights.stat().st_size <= 5 * 1024 * 1024
        assert card.confidence.temperature > 0 and card.confidence.calibration_error is not None
        assert card.training.seeds and card.training.steps > 0


def test_shipped_us_seg_meets_the_targets_on_a_held_out_seed() -> None:
    metrics = evaluate_segmentation("us-seg", _shipped("us-seg"), seeds="1003", frames_per_seed=5)
    assert metrics["dice_organ"] >= 0.90, metrics
    assert metrics["dice_vessel"] >= 0.90, metrics
    assert metrics["dice_lesion"] >= 0.85, metrics


def test_shipped_fluoro_seg_finds_the_catheter_and_its_tip() -> None:
    metrics = evaluate_segmentation(
        "fluoro-seg", _shipped("fluoro-seg"), seeds="1003", frames_per_seed=2
    )
    assert metrics["dice_device"] >= 0.80, metrics
    assert metrics["catheter_tip_mm"] <= 1.0, metrics


@pytest.mark.parametrize("name, size", [("us-seg", 256), ("fluoro-seg", 512)])
def test_garbage_frames_come_out_low_confidence(name: str, size: int, us_frames) -> None:
    card, weights = load_card(_shipped(name))
    model = torch.jit.load(str(weights)).eval()
    rng = np.random.default_rng(123)
    garbage = np.stack(
        [
            rng.integers(0, 256, (size, size), dtype=np.uint8),  # noise
            np.zeros((size, size), np.uint8),  # all black
            np.full((size, size), 128, np.uint8),  # flat grey
            out_of_distribution(np.random.default_rng(5), size),
        ]
    )
    t = card.confidence.temperature
    confidence = softmax_margin(predict_logits(model, garbage, card), t).mean(dim=(1, 2))
    assert (confidence < card.confidence.threshold).all(), confidence
    if name == "us-seg":  # and a real frame does not
        real = softmax_margin(predict_logits(model, us_frames.images[:2], card), t).mean()
        assert real > 0.8, real


def test_fine_tuning_on_twenty_png_pairs_reports_metrics(us_frames, tmp_path: Path) -> None:
    folder = tmp_path / "user"
    folder.mkdir()
    for i in range(20):
        labels = us_frames.targets[i]  # for ultrasound, class index = phantom label id
        cv2.imwrite(str(folder / f"case{i:02d}_image.png"), us_frames.images[i])
        cv2.imwrite(str(folder / f"case{i:02d}_label.png"), labels.astype(np.uint8))
    card_file, metrics = train_segmentation(
        "us-seg",
        steps=4,
        out_dir=tmp_path / "out",
        progress=False,
        init=_shipped("us-seg"),
        user_data=folder,
        name="us-seg-user",
        train_seeds=str(USER_SEED),
        frames_per_seed=2,
    )
    card, weights = load_card(card_file)
    assert weights.is_file() and card.training.data.startswith("phantom + user")
    assert 1 <= metrics["frames"] < 20  # the user's held-out part only
    assert metrics["dice_organ"] > 0.8, metrics
    assert "calibration_error" in card.metrics


def test_fine_tuning_on_a_recording_pairs_its_image_and_label_topics_by_stamp(
    tmp_path: Path,
) -> None:
    sample = Path(__file__).resolve().parent.parent / "recordings" / "phantom-us.mcap"
    card_file, metrics = train_segmentation(
        "us-seg",
        steps=4,
        out_dir=tmp_path / "out",
        progress=False,
        init=_shipped("us-seg"),
        user_data=sample,  # probe/image + probe/truth_labels, found by modality
        name="us-seg-recording",
        train_seeds=str(USER_SEED),
        frames_per_seed=2,
    )
    card, _ = load_card(card_file)
    assert card.training.data == "phantom + user frames from phantom-us.mcap"
    assert metrics["frames"] == 7  # the last fifth of its 36 frames in time
    assert metrics["dice_organ"] > 0.8, metrics


def test_a_recording_without_one_clear_label_topic_is_refused_naming_the_option(
    tmp_path: Path,
) -> None:
    from igtflow.perception.segmentation.user_data import user_frames

    sample = Path(__file__).resolve().parent.parent / "recordings" / "phantom-us.mcap"
    with pytest.raises(ValueError, match="no XA image topic; name it with --image-topic"):
        user_frames("fluoro-seg", sample)
    with pytest.raises(ValueError, match="no 2D image topic 'probe/nothing'"):
        user_frames("us-seg", sample, label_topic="probe/nothing")
    done = igtflow("train", "us-seg", "--data", str(tmp_path), "--image-topic", "probe/image")
    assert done.returncode == 2 and "name topics of a recording" in done.stderr
