"""What 2D/3D fluoroscopy registration fits, taken from a fluoroscopy label map.

A fluoroscopy label map (the phantom's ids, ``igtflow.stream.phantom.anatomy.LABEL_NAMES``: 0
background, 1 organ, 2 vessel, 3 lesion, 4 device; each pixel holds the highest label its ray
crosses) gives two regions: the **silhouette** (label >= 1: organ with whatever sticks out of it)
and the **vessels** (label >= 2: contrast-filled vessels with the lesion and catheter inside them).
For each region this module keeps its edge pixels and a signed distance map, negative inside and
positive outside, zero half-way between the last pixel in and the first one out: the label maps
are cut at one half of a smooth cover, so that is where the true boundary lies. A projected model
contour point scores the map there (bilinear, with its gradient for Gauss-Newton): one lookup
per point instead of a nearest-edge search.

Edges the field of view makes (a round collimator, the image border) are not the anatomy's: those
edge pixels are dropped and the maps are read only inside ``field``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SILHOUETTE_MIN_LABEL = 1
VESSEL_MIN_LABEL = 2
FIELD_MARGIN_PX = 3.0


@dataclass(frozen=True)
class Region:
    """One region's edge pixels (K×2, column/row) and signed distance map (pixels, float32)."""

    edges: np.ndarray
    distance: np.ndarray

    @property
    def empty(self) -> bool:
        return len(self.edges) == 0


@dataclass(frozen=True)
class FluoroContours:
    """Silhouette and vessel regions of one frame, and where in the image they may be trusted."""

    silhouette: Region
    vessels: Region
    field: np.ndarray  # H×W bool: inside the field of view, away from its border

    @property
    def shape(self) -> tuple[int, int]:
        return self.field.shape  # type: ignore[return-value]


def round_field(height: int, width: int, round_: bool = True) -> np.ndarray:
    """The usable field: the image less a margin, and within the inscribed circle if ``round_``
    (an image intensifier's collimator, as the phantom draws it)."""
    v, u = np.mgrid[0:height, 0:width]
    m = FIELD_MARGIN_PX
    inside = (u >= m) & (u <= width - 1 - m) & (v >= m) & (v <= height - 1 - m)
    if round_:
        cu, cv = 0.5 * (width - 1), 0.5 * (height - 1)
        inside &= np.hypot(u - cu, v - cv) <= 0.5 * min(width, height) - 2.0 - m
    return inside


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Pixels to the boundary of ``mask``: negative inside, positive outside, 0 half-way between
    the pixels on either side of it (slope 1 across it, so bilinear reads are sub-pixel)."""
    inside = mask.astype(np.uint8)
    if not inside.any():
        return np.full(mask.shape, np.float32(1e4))
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_5)
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_5)
    return np.where(mask, np.float32(0.5) - d_in, d_out - np.float32(0.5)).astype(np.float32)


def edge_pixels(mask: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it, inside ``field`` (K×2, column/row)."""
    m = mask.astype(np.uint8)
    eroded = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)))
    rows, cols = np.nonzero((m > eroded) & field)
    return np.stack([cols, rows], axis=1).astype(np.float64)


def region(labels: np.ndarray, min_label: int, field: np.ndarray) -> Region:
    mask = labels >= min_label
    return Region(edge_pixels(mask, field), signed_distance(mask))


def extract_contours(labels: np.ndarray, field: np.ndarray | None = None) -> FluoroContours:
    """Silhouette and vessel regions of an H×W uint8 label map (``field`` defaults to the
    round collimated field of the phantom's C-arm)."""
    labels = np.asarray(labels)
    if labels.ndim == 3 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.ndim != 2:
        raise ValueError(f"expected an H×W label map, got shape {labels.shape}")
    if field is None:
        field = round_field(*labels.shape)
    elif field.shape != labels.shape:
        raise ValueError(f"field shape {field.shape} differs from the labels' {labels.shape}")
    return FluoroContours(
        region(labels, SILHOUETTE_MIN_LABEL, field), region(labels, VESSEL_MIN_LABEL, field), field
    )


def bilinear(image: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values and gradients (d/du, d/dv) of ``image`` at sub-pixel ``pixels`` (N×2, column/row),
    clamped to the image; the gradient is that of the bilinear interpolant."""
    h, w = image.shape
    u = np.clip(pixels[:, 0], 0.0, w - 1.001)
    v = np.clip(pixels[:, 1], 0.0, h - 1.001)
    u0, v0 = u.astype(np.int64), v.astype(np.int64)
    fu, fv = u - u0, v - v0
    flat = image.ravel()
    i = v0 * w + u0
    a, b, c, d = flat[i], flat[i + 1], flat[i + w], flat[i + w + 1]
    top = a + fu * (b - a)
    bottom = c + fu * (d - c)
    value = top + fv * (bottom - top)
    du = (b - a) + fv * ((d - c) - (b - a))
    dv = bottom - top
    return value, du, dv
