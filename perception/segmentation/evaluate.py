"""Scoring a segmentation network on held-out phantom seeds or a user's held-out pairs.

Dice and HD95 are MONAI's metrics, per label.
The catheter tip is found the way a reader would find it (the device pixel farthest along the
catheter from where it enters) and compared with the phantom's true tip projected on the
detector. Confidence is the softmax margin at the card's temperature, scored by its expected
calibration error (ECE).
"""

from __future__ import annotations

import warnings
from collections import deque
from pathlib import Path

import cv2
import numpy as np
import torch

from igtflow.perception.card import ModelCard, card_path_for, load_card
from igtflow.perception.segmentation.data import (
    HELD_OUT_SEEDS,
    FrameSet,
    out_of_distribution,
    parse_seeds,
    phantom_frames,
    task_spec,
)

ECE_BINS = 15


def softmax_margin(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-pixel confidence N×H×W: top-1 minus top-2 softmax probability at ``temperature``."""
    top = torch.softmax(logits / temperature, dim=1).topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


def normalise(images: np.ndarray, card: ModelCard) -> torch.Tensor:
    """uint8 N×H×W → float32 N×1×H×W as the card says."""
    n = card.normalisation
    x = torch.from_numpy(np.ascontiguousarray(images)).float().unsqueeze(1)
    return (x / n.scale - n.mean) / n.std


@torch.no_grad()
def predict_logits(model, images: np.ndarray, card: ModelCard, batch: int = 4) -> torch.Tensor:
    """Logits N×K×H×W for uint8 frames, a few at a time."""
    out = [model(normalise(images[i : i + batch], card)) for i in range(0, len(images), batch)]
    return torch.cat(out)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Σ_bins (bin share) · |accuracy − mean confidence| over equal-width confidence bins."""
    confidence = confidence.ravel().astype(np.float64)
    correct = correct.ravel().astype(np.float64)
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    conf_sum = np.bincount(bins, confidence, minlength=ECE_BINS)
    acc_sum = np.bincount(bins, correct, minlength=ECE_BINS)
    return float(np.abs(acc_sum - conf_sum).sum() / max(len(confidence), 1))


def fit_temperature(logits: torch.Tensor, targets: np.ndarray) -> tuple[float, float]:
    """The temperature whose softmax margin has the lowest ECE on these pixels, and that ECE.

    A grid over log T is enough (one parameter) and, unlike fitting the NLL, aims at the number
    the node thresholds: the margin itself.
    """
    sub = logits[..., ::2, ::2]
    truth = targets[..., ::2, ::2]
    correct = sub.argmax(1).numpy() == truth
    best = (1.0, float("inf"))
    for t in np.exp(np.linspace(np.log(0.25), np.log(8.0), 41)):
        ece = expected_calibration_error(softmax_margin(sub, float(t)).numpy(), correct)
        if ece < best[1]:
            best = (float(t), ece)
    return best


def _geodesic_farthest(mask: np.ndarray, start: tuple[int, int]) -> tuple[int, int] | None:
    """The pixel of ``mask`` farthest from ``start`` along 8-connected paths inside the mask."""
    h, w = mask.shape
    dist = np.full(mask.shape, -1, np.int32)
    queue = deque([start])
    dist[start] = 0
    far = start
    while queue:
        y, x = queue.popleft()
        d = dist[y, x] + 1
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and dist[yy, xx] < 0:
                    dist[yy, xx] = d
                    queue.append((yy, xx))
                    if d > dist[far]:
                        far = (yy, xx)
    return far


def catheter_tip(device: np.ndarray, entry: np.ndarray) -> np.ndarray | None:
    """(u, v) of the catheter tip: the end of the device mask farthest along it from ``entry``.

    Small gaps are closed first so a catheter broken by noise is still followed to its end; the
    tip is the mean of the last 2 px along the path, which sits on the centreline rather than on
    the rounded cap's rim.
    """
    mask = cv2.morphologyEx(device.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    nearest = int(np.argmin((xs - entry[0]) ** 2 + (ys - entry[1]) ** 2))
    far = _geodesic_farthest(mask > 0, (int(ys[nearest]), int(xs[nearest])))
    if far is None:
        return None
    # Pixels near the far end (within 2 px of it, inside the mask): their mean is the tip.
    near = np.hypot(ys - far[0], xs - far[1]) <= 2.0
    return np.array([xs[near].mean(), ys[near].mean()])


def hausdorff95(pred: np.ndarray, truth: np.ndarray, classes: int) -> np.ndarray:
    """N×(K-1) symmetric 95th-percentile surface distance (px): MONAI's
    ``HausdorffDistanceMetric(percentile=95)`` on one-hot masks. NaN where the truth lacks the
    class or the prediction misses it (MONAI warns of each; those warnings are silenced here,
    the NaN says it)."""
    from monai.metrics import HausdorffDistanceMetric

    def one_hot(labels: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(labels.astype(np.int64))
        return torch.nn.functional.one_hot(tensor, classes).permute(0, 3, 1, 2).float()

    metric = HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = metric(one_hot(pred), one_hot(truth)).numpy().astype(np.float64)
    return out


def _load(weights_or_card: Path | str) -> tuple[ModelCard, torch.jit.ScriptModule]:
    path = Path(weights_or_card)
    if not path.name.endswith(".card.yaml"):
        path = card_path_for(path)
    card, weights = load_card(path)
    model = torch.jit.load(str(weights), map_location="cpu").eval()
    return card, model


def score_frames(model, card: ModelCard, frames: FrameSet, ood_frames: int = 4) -> dict[str, float]:
    """Dice, HD95 (px) per label, catheter tip error (mm), ECE and garbage-frame confidence."""
    from monai.metrics import DiceMetric

    k = len(card.labels)
    names = [card.labels[i] for i in sorted(card.labels)]
    logits = predict_logits(model, frames.images, card)
    pred = logits.argmax(1)
    truth = torch.from_numpy(frames.targets.astype(np.int64))
    pred_1h = torch.nn.functional.one_hot(pred, k).permute(0, 3, 1, 2).float()
    truth_1h = torch.nn.functional.one_hot(truth, k).permute(0, 3, 1, 2).float()
    dice = DiceMetric(include_background=False, reduction="none", ignore_empty=True)(
        pred_1h, truth_1h
    ).numpy()
    hd = hausdorff95(pred.numpy(), frames.targets, k)
    metrics: dict[str, float] = {}
    for c in range(1, k):
        d, h = dice[:, c - 1], hd[:, c - 1]
        if np.isfinite(d).any():
            metrics[f"dice_{names[c]}"] = float(np.nanmean(d))
        if np.isfinite(h).any():
            metrics[f"hd95_px_{names[c]}"] = float(np.nanmean(np.where(np.isfinite(h), h, np.nan)))
    t = card.confidence.temperature
    margin = softmax_margin(logits, t).numpy()
    correct = pred.numpy() == frames.targets
    metrics["calibration_error"] = expected_calibration_error(
        margin[:, ::2, ::2], correct[:, ::2, ::2]
    )
    metrics["mean_confidence"] = float(margin.mean())
    if "device" in names:
        device = names.index("device")
        errors = []
        for i in range(len(frames)):
            if not np.isfinite(frames.tip[i]).all() or not (frames.targets[i] == device).any():
                continue
            tip = catheter_tip(pred[i].numpy() == device, frames.entry[i])
            err = np.inf if tip is None else float(np.hypot(*(tip - frames.tip[i])))
            errors.append(err * frames.spacing_mm)
        if errors:
            metrics["catheter_tip_mm"] = float(np.median(errors))
            metrics["catheter_tip_mm_p90"] = float(np.percentile(errors, 90))
    if ood_frames:
        rng = np.random.default_rng(0x00D)
        size = frames.images.shape[1]
        garbage = np.stack([out_of_distribution(rng, size) for _ in range(ood_frames)])
        metrics["garbage_confidence"] = float(
            softmax_margin(predict_logits(model, garbage, card), t).mean()
        )
    metrics["frames"] = float(len(frames))
    return metrics


def evaluate_segmentation(
    task: str,
    weights_or_card: Path | str,
    seeds: str = HELD_OUT_SEEDS,
    frames_per_seed: int = 8,
) -> dict[str, float]:
    """Score shipped or trained weights on held-out phantom seeds (never those below 1000)."""
    torch.set_num_threads(1)
    spec = task_spec(task)
    card, model = _load(weights_or_card)
    if list(card.labels.values()) != list(spec.classes):
        raise ValueError(f"{weights_or_card}: labels {card.labels} do not fit task {task}")
    frames = phantom_frames(task, parse_seeds(seeds), frames_per_seed, held_out=True)
    return score_frames(model, card, frames)
