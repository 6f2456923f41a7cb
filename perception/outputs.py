"""Network output into messages' pixels: label ids, confidence maps and displacement fields.

Pure functions: what the ``segment`` and ``track`` nodes send is computed here and tested without
processes. Outputs are put back on the grid of the frame that came in (labels nearest, confidence
linear, displacements resized *and* rescaled), so they lie on that frame with its ``ijk_to_ras``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

from igtflow.perception.card import Confidence

ConfidenceDtype = Literal["float32", "uint8"]


def segmentation_maps(
    logits: np.ndarray, label_ids: Sequence[int], confidence: Confidence
) -> tuple[np.ndarray, np.ndarray]:
    """Label ids (uint8 H×W) and per-pixel confidence (float32 0..1) from K×H×W logits.

    Class ``i`` becomes phantom label ``label_ids[i]``. Confidence is the softmax margin (top
    class minus runner-up) or the top probability, after the card's temperature; both are 0
    where the network cannot tell two classes apart.
    """
    scaled = np.asarray(logits, dtype=np.float32)
    classes = scaled.shape[0]
    if len(label_ids) != classes:
        raise ValueError(f"the network gave {classes} classes, the card names {len(label_ids)}")
    if confidence.temperature != 1.0:
        scaled = scaled / np.float32(confidence.temperature)
    # Top two logits and the winner in one branch-free pass over the few classes, into
    # preallocated planes: at 4×512² this is ~2 ms, against ~25 ms for a softmax over the class
    # axis with argmax and np.partition (boolean-mask writes alone cost 1 ms a plane).
    top = scaled[0].copy()
    second = np.full_like(top, -np.inf)
    winner = np.zeros(top.shape, np.uint8)
    scratch = np.empty_like(top)
    beats = np.empty(top.shape, np.bool_)
    for index in range(1, classes):
        logit = scaled[index]
        np.maximum(second, np.minimum(top, logit, out=scratch), out=second)
        np.greater(logit, top, out=beats)
        # classes come in rising order, so "index where it beats the top" is a maximum
        np.maximum(winner, beats.view(np.uint8) * np.uint8(index), out=winner)
        np.maximum(top, logit, out=top)
    total = np.zeros_like(top)  # softmax denominator relative to the top class
    for index in range(classes):
        total += np.exp(np.subtract(scaled[index], top, out=scratch), out=scratch)
    if confidence.method == "softmax-max" or classes < 2:
        conf = np.divide(1.0, total, out=total)  # the top probability
    else:
        gap = np.exp(np.subtract(second, top, out=scratch), out=scratch)
        conf = np.divide(np.subtract(1.0, gap, out=gap), total, out=total)  # top − runner-up
    labels = np.asarray(label_ids, dtype=np.uint8).take(winner)
    return labels, np.nan_to_num(conf, copy=False, nan=0.0)


def field_maps(prediction: np.ndarray, confidence: Confidence) -> tuple[np.ndarray, np.ndarray]:
    """Displacement (float32 H×W×2, dx dy in pixels) and confidence (0..1) from 3×H×W output.

    The tracker's third channel is a confidence logit; its sigmoid after the card's temperature
    is the confidence.
    """
    pred = np.asarray(prediction, dtype=np.float32)
    if pred.ndim != 3 or pred.shape[0] != 3:
        raise ValueError(f"a tracker gives 3×H×W (dx, dy, confidence), got {pred.shape}")
    field = np.ascontiguousarray(np.moveaxis(pred[:2], 0, -1))
    logit = np.clip(pred[2] / np.float32(confidence.temperature), -30.0, 30.0)
    conf = (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    return np.nan_to_num(field), np.nan_to_num(conf, nan=0.0)


def labels_on(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A label map put on an ``shape`` (H, W) grid: nearest, so no id is invented."""
    if labels.shape[:2] == shape:
        return labels
    return cv2.resize(labels, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def confidence_on(conf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A confidence map put on a ``shape`` (H, W) grid, linearly."""
    if conf.shape[:2] == shape:
        return conf
    return cv2.resize(conf, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def field_on(field: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A displacement field put on a ``shape`` (H, W) grid: resized, and its pixel displacements
    scaled by the same factors, so it still says where each pixel of *that* grid went."""
    height, width = field.shape[:2]
    if (height, width) == shape:
        return field
    resized = cv2.resize(field, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    resized[..., 0] *= shape[1] / width
    resized[..., 1] *= shape[0] / height
    return resized


def confidence_pixels(conf: np.ndarray, dtype: ConfidenceDtype) -> np.ndarray:
    """A 0..1 confidence map as sent: float32 as is, or uint8 0..255 (a quarter of the bytes)."""
    if dtype == "uint8":
        return np.clip(np.rint(conf * 255.0), 0, 255).astype(np.uint8)
    return conf.astype(np.float32, copy=False)


def target_confidence(conf: np.ndarray, labels: np.ndarray, targets: Sequence[int]) -> float:
    """Mean confidence over the pixels labelled as one of ``targets``; where none is found, the
    mean over the whole frame (a frame with nothing confidently found is not confident)."""
    mask = np.isin(labels, np.asarray(targets, dtype=labels.dtype)) if len(targets) else None
    if mask is not None and mask.any():
        return float(conf[mask].mean(dtype=np.float64))
    return float(conf.mean(dtype=np.float64)) if conf.size else 0.0


def sample_field(field: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """The displacement at each (x, y) of ``pixels`` (N×2), bilinear, clamped to the grid."""
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    if len(pixels) == 0:
        return np.zeros((0, 2), dtype=np.float32)
    height, width = field.shape[:2]
    x = np.clip(pixels[:, 0], 0, width - 1)
    y = np.clip(pixels[:, 1], 0, height - 1)
    x0 = np.clip(np.floor(x).astype(int), 0, max(width - 2, 0))
    y0 = np.clip(np.floor(y).astype(int), 0, max(height - 2, 0))
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    fx = (x - x0)[:, None]
    fy = (y - y0)[:, None]
    top = field[y0, x0] * (1 - fx) + field[y0, x1] * fx
    bottom = field[y1, x0] * (1 - fx) + field[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def sample_map(values: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """A scalar map (H×W) at each (x, y) of ``pixels`` (N×2), bilinear, clamped to the grid."""
    return sample_field(values[..., None], pixels)[:, 0]
