"""A picture of one tracked pair, to look at: key, current, predicted and true flow, confidence.

Flow is drawn in the usual optical-flow colours (hue = direction, brightness = magnitude, the
same scale in both panels); targets are marked in the key (true), and in the current frame truth
(green) against the moved target (red).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from igtflow.perception.tracking.evaluate import dis_tracker, torch_tracker
from igtflow.perception.tracking.pairs import held_out_pairs
from igtflow.perception.tracking.targets import move_targets


def flow_colour(flow: np.ndarray, scale_px: float) -> np.ndarray:
    """H×W×2 flow → H×W×3 uint8 BGR (hue = direction, value = |flow| / ``scale_px``)."""
    magnitude, angle = cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)
    hsv = np.empty((*flow.shape[:2], 3), np.uint8)
    hsv[..., 0] = (angle / 2).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / max(scale_px, 1e-6) * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def _panel(image: np.ndarray, title: str) -> np.ndarray:
    panel = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    panel = cv2.copyMakeBorder(panel, 22, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    cv2.putText(panel, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return panel


def _mark(image: np.ndarray, pixels: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    out = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    for u, v in np.asarray(pixels):
        cv2.drawMarker(out, (round(u), round(v)), colour, cv2.MARKER_CROSS, 12, 2)
    return out


def field_figure(weights: str | Path = "tracker", seed: int = 1001, key: int = 3, gap: int = 20):
    """BGR image of held-out pair (key ``key``·30, current + ``gap``): 2 rows of 3 panels."""
    pair = held_out_pairs(seed, keys=key + 1, gaps=(gap,))[-1]
    flow, confidence = torch_tracker(weights)(pair.key.image, pair.current.image)
    dis, _ = dis_tracker("medium")(pair.key.image, pair.current.image)
    scale = float(np.percentile(np.hypot(*pair.flow.transpose(2, 0, 1)), 99)) + 1.0
    inside = pair.key.target_in_fov & pair.current.target_in_fov
    truth_now = pair.current.target_pixels[inside]
    moved = move_targets(pair.key.target_pixels[inside], flow)
    current = _mark(_mark(pair.current.image.copy(), truth_now, (0, 200, 0)), moved, (0, 0, 255))
    tissue = pair.key.labels > 0
    epe = np.hypot(*(flow - pair.flow).transpose(2, 0, 1))[tissue].mean()
    epe_dis = np.hypot(*(dis - pair.flow).transpose(2, 0, 1))[tissue].mean()
    confidence_img = cv2.applyColorMap((confidence * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    top = [
        _panel(_mark(pair.key.image.copy(), pair.key.target_pixels[inside], (0, 200, 0)), "key"),
        _panel(current, f"current (+{gap}): truth green, moved red"),
        _panel(flow_colour(pair.flow, scale), f"true flow (max {scale:.0f} px)"),
    ]
    bottom = [
        _panel(flow_colour(flow, scale), f"tracker flow, EPE {epe:.2f} px"),
        _panel(flow_colour(dis, scale), f"DIS medium flow, EPE {epe_dis:.2f} px"),
        _panel(confidence_img, f"tracker confidence (mean {confidence[tissue].mean():.2f})"),
    ]
    return np.vstack([np.hstack(top), np.hstack(bottom)])


def save_field_figure(path: Path | str, weights: str | Path = "tracker", seed: int = 1001) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), field_figure(weights, seed))
    return path
