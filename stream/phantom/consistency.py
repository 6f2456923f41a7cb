"""Truth consistency of the phantom: do its labels, target pixels and flow agree with its model?

Each figure is computed independently of the renderer's own shortcuts (exact inverse motion at
every pixel instead of the coarse grid, the contract matrices a consumer receives instead of the
simulator's internals), so it measures how far the truth a learner is scored against can be off.
The tests hold these numbers to thresholds; ``igtflow bench phantom`` reports them over seeds.
"""

from __future__ import annotations

import cv2
import numpy as np

from igtflow.stream.phantom.anatomy import LABEL_NAMES, LESION
from igtflow.stream.phantom.fluoro import XaFrame
from igtflow.stream.phantom.ultrasound import UltrasoundSim, UsFrame

FOREGROUND = 0  # label argument meaning "any structure" (labels > 0)

# What the truth must meet, held by the tests and reported by ``igtflow bench phantom``.
LABEL_AGREEMENT_MIN = 0.99  # fraction of field-of-view pixels, linear and curvilinear probes
TARGET_PX_MAX = 0.5  # target reprojection error, ultrasound and fluoroscopy
LESION_CENTROID_PX_MAX = 0.75  # fluoroscopy; ultrasound reported only
FLOW_DICE_MIN = 0.98  # overall, and per structure for organ, lesion and foreground
# Per report key: (comparison, limit) on every value, or None: reported, not held to a threshold.
THRESHOLDS: dict[str, tuple[str, float] | None] = {
    "us_label_agreement": (">=", LABEL_AGREEMENT_MIN),
    "us_curvilinear_label_agreement": (">=", LABEL_AGREEMENT_MIN),
    "us_target_px": ("<", TARGET_PX_MAX),
    "fluoro_target_px": ("<", TARGET_PX_MAX),
    "us_lesion_centroid_px": None,
    "fluoro_lesion_centroid_px": ("<", LESION_CENTROID_PX_MAX),
    "us_flow_dice": (">=", FLOW_DICE_MIN),
    "fluoro_flow_dice": (">=", FLOW_DICE_MIN),
}
STRUCTURE_THRESHOLD = FLOW_DICE_MIN  # organ, lesion and foreground flow Dice; vessel/device none


def pixel_ras(ijk_to_ras: np.ndarray, height: int, width: int) -> np.ndarray:
    """RAS (H×W×3) of every pixel centre of an image with this ``ijk_to_ras``."""
    i, j = np.meshgrid(np.arange(width), np.arange(height))
    ijk = np.stack([i, j, np.zeros_like(i), np.ones_like(i)], axis=-1).astype(np.float64)
    return (ijk @ ijk_to_ras.T)[..., :3]


def contract_ijk_to_ras(frame: UsFrame) -> np.ndarray:
    """ProbeToTracker @ ImageToProbe @ diag(spacing): what a consumer of the outputs computes."""
    return frame.probe_to_tracker @ frame.image_to_probe @ np.diag([*frame.spacing, 1.0, 1.0])


def us_label_agreement(sim: UltrasoundSim, frame: UsFrame) -> float:
    """Fraction of pixels in the field of view whose label equals the label volume resampled at
    the probe pose (a curvilinear probe's labels are 0 outside its sector: nothing is imaged).

    Pixel → RAS at time t (contract matrices) → exact inverse motion → nearest voxel; the renderer
    instead interpolates reference positions from a coarse grid, so boundaries may differ.
    """
    h, w = frame.labels.shape
    reference = sim.motion.inverse(pixel_ras(contract_ijk_to_ras(frame), h, w), frame.time_s)
    agree = sim.anatomy.sample_nearest(reference) == frame.labels
    return float(np.mean(agree[sim.fov]))


def us_target_reprojection_px(frame: UsFrame) -> float:
    """Largest in-plane distance (px) between each target mapped through the contract matrices
    and its marked pixel (``truth_targets`` meta ``pixels``)."""
    m = contract_ijk_to_ras(frame)
    ras = np.c_[frame.targets_ras, np.ones(len(frame.targets_ras))]
    ijk = np.linalg.solve(m, ras.T).T
    return float(np.max(np.hypot(*(ijk[:, :2] - frame.target_pixels).T)))


def fluoro_target_reprojection_px(frame: XaFrame) -> float:
    """Largest distance (px) between each target projected through meta ``projection`` and its
    marked pixel."""
    projection = np.array(frame.geometry.meta()["projection"])
    h = np.c_[frame.targets_ras, np.ones(len(frame.targets_ras))] @ projection.T
    pixels = h[:, :2] / h[:, 2:3]
    return float(np.max(np.hypot(*(pixels - frame.target_pixels).T)))


def lesion_centroid_px(frame: UsFrame | XaFrame) -> float:
    """Distance (px) from the lesion label's centroid to the lesion target's marked pixel.

    NaN when no lesion pixel is in the image. Not zero by construction: in fluoroscopy the
    centroid of a projected sphere is off its centre's projection by perspective; in ultrasound
    the plane cuts an irregular lesion off its centre.
    """
    rows_cols = np.argwhere(frame.labels == LESION)
    if len(rows_cols) == 0:
        return float("nan")
    v, u = rows_cols.mean(axis=0)
    index = list(frame.target_ids).index("lesion") if "lesion" in frame.target_ids else 0
    target_u, target_v = frame.target_pixels[index]
    return float(np.hypot(u - target_u, v - target_v))


def warp_to_key(current: np.ndarray, flow: np.ndarray, label: int) -> tuple[np.ndarray, np.ndarray]:
    """Mask of ``label`` in current(x + flow(x)) on the key grid, and where x + flow(x) is inside.

    The mask is interpolated linearly and cut at 0.5: one rounding less than nearest-neighbour.
    ``label`` FOREGROUND takes every structure.
    """
    h, w = flow.shape[:2]
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = u + flow[..., 0], v + flow[..., 1]
    valid = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    mask = (current == label) if label != FOREGROUND else (current > 0)
    return cv2.remap(mask.astype(np.float32), mx, my, cv2.INTER_LINEAR) > 0.5, valid


def dice(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    """Dice of two masks inside ``where``; 1 when both are empty there."""
    a, b = a & where, b & where
    total = int(np.sum(a) + np.sum(b))
    return 2.0 * float(np.sum(a & b)) / total if total else 1.0


def flow_dice(
    current: np.ndarray, key: np.ndarray, flow: np.ndarray, labels: tuple[int, ...]
) -> dict[str, float]:
    """Dice of current labels warped by the truth flow onto the key frame vs the key's labels.

    One entry per structure name in ``labels`` (key "foreground" for FOREGROUND), plus "overall":
    the Dice of the whole label map (pixels whose warped label equals the key label, i.e. the
    multi-class agreement over structure pixels).
    """
    scores: dict[str, float] = {}
    for label in labels:
        warped, valid = warp_to_key(current, flow, label)
        truth = (key == label) if label != FOREGROUND else (key > 0)
        scores[LABEL_NAMES.get(label, "foreground")] = dice(warped, truth, valid)
    # Overall: every present structure warped at once (argmax of the interpolated one-hot masks).
    present = [int(k) for k in np.union1d(np.unique(current), np.unique(key)) if k]
    hits, total = 0, 0
    valid = None
    for label in present:
        warped, valid = warp_to_key(current, flow, label)
        truth = key == label
        hits += int(np.sum(warped & truth & valid))
        total += int(np.sum(warped & valid) + np.sum(truth & valid))
    scores["overall"] = 2.0 * hits / total if total else 1.0
    return scores


__all__ = [
    "FOREGROUND",
    "contract_ijk_to_ras",
    "dice",
    "flow_dice",
    "fluoro_target_reprojection_px",
    "lesion_centroid_px",
    "pixel_ras",
    "us_label_agreement",
    "us_target_reprojection_px",
    "warp_to_key",
]
