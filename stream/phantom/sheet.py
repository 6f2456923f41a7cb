"""A contact sheet of phantom frames, raw above and with their truth drawn on below.

Truth colours (BGR): organ green, vessel blue, lesion yellow, device magenta; targets are red
crosses at their true pixel, so a reviewer sees at once whether truth and image agree.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from igtflow.stream.phantom.anatomy import DEVICE, LESION, ORGAN, VESSEL
from igtflow.stream.phantom.carm import CArmGeometry
from igtflow.stream.phantom.fluoro import FluoroConfig, FluoroSim
from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim

COLOURS = {
    ORGAN: (80, 200, 60),
    VESSEL: (255, 140, 40),
    LESION: (0, 230, 255),
    DEVICE: (230, 60, 230),
}
CELL = 256


def _in_view(frame: object) -> np.ndarray:
    """Target pixels of the targets that the frame shows (ultrasound: near the image plane)."""
    off = getattr(frame, "target_out_of_plane_mm", None)
    pixels = frame.target_pixels  # type: ignore[attr-defined]
    if off is None or len(off) == 0:
        return pixels
    in_fov = getattr(frame, "target_in_fov", np.ones(len(off), bool))
    return pixels[(np.abs(off) < 3.0) & in_fov]


def overlay(image: np.ndarray, labels: np.ndarray, target_pixels: np.ndarray) -> np.ndarray:
    """The grey ``image`` in colour with label contours and target crosses (same pixel grid)."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    thickness = max(1, image.shape[0] // 256)
    for label, colour in COLOURS.items():
        mask = (labels == label).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, thickness, cv2.LINE_AA)
    size = 6 * thickness
    for u, v in target_pixels:
        if 0 <= u < image.shape[1] and 0 <= v < image.shape[0]:
            centre = (round(u), round(v))
            cv2.drawMarker(out, centre, (40, 40, 255), cv2.MARKER_CROSS, size, thickness + 1)
    return out


def _cell(image: np.ndarray, title: str, aspect: float | None = None) -> np.ndarray:
    """A CELL×CELL tile; with ``aspect`` (width / height in mm) true to scale, padded black."""
    colour = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if aspect is None:
        cell = cv2.resize(colour, (CELL, CELL), interpolation=cv2.INTER_AREA)
    else:
        w, h = (CELL, round(CELL / aspect)) if aspect >= 1 else (round(CELL * aspect), CELL)
        cell = np.zeros((CELL, CELL, 3), np.uint8)
        top, left = (CELL - h) // 4, (CELL - w) // 2  # a little above centre: room for the title
        cell[top : top + h, left : left + w] = cv2.resize(
            colour, (w, h), interpolation=cv2.INTER_AREA
        )
    cv2.putText(cell, title, (4, CELL - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 255, 255), 1)
    return cell


def contact_sheet(seed: int = 0) -> np.ndarray:
    """Two US frames (linear static, curvilinear sweep) and two fluoro frames (AP, LAO 25 with
    contrast), BGR; the curvilinear frame is shown true to scale."""
    static = UltrasoundSim(seed, UltrasoundConfig(path="static"))
    convex = UltrasoundConfig(path="sweep", probe="curvilinear", depth_mm=110.0, sector_deg=60.0)
    sweep = UltrasoundSim(seed, convex, anatomy=static.anatomy)
    ap = FluoroSim(seed, anatomy=static.anatomy)
    lao = FluoroSim(
        seed,
        CArmGeometry(lao_deg=25.0, cranial_deg=10.0, isocenter=tuple(static.anatomy.organ_center)),
        FluoroConfig(contrast=True),
        anatomy=static.anatomy,
    )
    frames = [
        ("US static", static.render(40)),
        ("US convex sweep", sweep.render(75)),
        ("XA AP", ap.render(40)),
        ("XA LAO25 CRA10 contrast", lao.render(70)),
    ]
    sx, sy = convex.spacing
    aspects = [None, convex.width * sx / (convex.height * sy), None, None]
    raw = [_cell(f.image, title, a) for (title, f), a in zip(frames, aspects, strict=True)]
    truth = [
        _cell(overlay(f.image, f.labels, _in_view(f)), title + " + truth", a)
        for (title, f), a in zip(frames, aspects, strict=True)
    ]
    return np.vstack([np.hstack(raw), np.hstack(truth)])


def write_png(path: Path, image: np.ndarray) -> Path:
    """Write ``image`` as PNG; raise OSError naming the file when that fails."""
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"{path}: could not write the PNG (folder missing or not writable?)")
    return path
