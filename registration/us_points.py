"""Segmented ultrasound slices lifted to 3D boundary points, and a sliding window of them.

A label map (``Image`` of modality ``LABELS``, the ``segment`` node's output or the phantom's
``truth_labels``) carries ``ijk_to_ras``, which already maps pixel (column, row) to the Reference
frame through probe pose and calibration. A structure's surface crosses the slice where its
region ends, so its boundary pixels, mapped through that matrix, are points on the surface in
the Reference frame: what rigid ICP registers to the preoperative model.

Why a morphological edge and half a pixel outwards: the region's inner edge pixels lie up to
half a pixel inside the surface; moving each half a pixel towards its background neighbours
puts it on the boundary between them (the label map's own resolution, 0.2–0.3 mm).
Edges on the image border (and, for a curvilinear probe, where the sector ends) are the field of
view cutting the structure, not its surface, so they are left out.

One slice is a curve, which constrains a rigid pose poorly; :class:`SliceWindow` stacks the
points of the last slices of a sweep (by count and age) into one bounded cloud.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from igtflow.stream.messages import Image
from igtflow.stream.phantom.anatomy import DEVICE, LESION, ORGAN, VESSEL

# The organ's region holds what lies inside it (the preoperative organ surface is the outside
# of the whole organ); a vessel's holds the catheter in it (preoperative scans show no device).
ORGAN_REGION = (ORGAN, VESSEL, LESION, DEVICE)
VESSEL_REGION = (VESSEL, DEVICE)
BORDER_PX = 2  # edges this close to the image border are the field of view, not a surface
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
_NEIGHBOURS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # (row, column) offsets


def boundary_pixels(labels: np.ndarray, region: tuple[int, ...]) -> np.ndarray:
    """Sub-pixel (column, row) points (N×2 float64) on the edge of the region whose labels are
    in ``region``, half a pixel outward from its inner edge pixels; border edges left out."""
    data = np.asarray(labels)
    if data.ndim == 3:
        data = data[..., 0]
    mask = np.isin(data, region).astype(np.uint8)
    if not mask.any():
        return np.zeros((0, 2))
    inner = mask & ~cv2.erode(mask, _CROSS, borderType=cv2.BORDER_REPLICATE) & 1
    h, w = mask.shape
    inner[:BORDER_PX] = inner[h - BORDER_PX :] = 0
    inner[:, :BORDER_PX] = inner[:, w - BORDER_PX :] = 0
    rows, cols = np.nonzero(inner)
    if len(rows) == 0:
        return np.zeros((0, 2))
    outward = np.zeros((len(rows), 2))
    for dr, dc in _NEIGHBOURS:
        outside = mask[rows + dr, cols + dc] == 0
        outward[outside] += (dc, dr)
    norm = np.linalg.norm(outward, axis=1, keepdims=True)
    outward = np.divide(outward, norm, out=np.zeros_like(outward), where=norm > 0)
    return np.column_stack([cols, rows]).astype(np.float64) + 0.5 * outward


def inside_fov(image: Image, pixels: np.ndarray, margin_px: float = 2.0) -> np.ndarray:
    """Which (column, row) points lie at least ``margin_px`` inside a curvilinear sector given
    in ``meta['fov']`` (the phantom's: apex pixel, radius and depth in mm, angle); all of them
    for a linear probe. A sector description this does not know keeps every point."""
    fov = image.meta.get("fov") if isinstance(image.meta, dict) else None
    keep = np.ones(len(pixels), bool)
    if not isinstance(fov, dict):
        return keep
    try:
        apex = np.asarray(fov["apex_px"], dtype=np.float64)
        r0 = float(fov["radius_mm"])
        r1 = r0 + float(fov["depth_mm"])
        half = 0.5 * np.radians(float(fov["sector_deg"]))
    except (KeyError, TypeError, ValueError):
        return keep
    spacing = np.asarray(image.spacing[:2], dtype=np.float64)
    margin = margin_px * float(spacing.max())
    d = (pixels - apex) * spacing
    r = np.hypot(d[:, 0], d[:, 1])
    keep &= (r >= r0 + margin) & (r <= r1 - margin)
    keep &= (half - np.abs(np.arctan2(d[:, 0], d[:, 1]))) * r >= margin
    return keep


def lift_labels(image: Image, region: tuple[int, ...] = ORGAN_REGION) -> np.ndarray:
    """The boundary of ``region`` in a label map as N×3 points (mm) in the Reference frame."""
    pixels = boundary_pixels(image.data, region)
    pixels = pixels[inside_fov(image, pixels)]
    m = image.ijk_to_ras
    return pixels @ m[:3, :2].T + m[:3, 3]


@dataclass(frozen=True)
class LiftedSlice:
    stamp_s: float
    points: np.ndarray
    tags: np.ndarray  # per point: which structure (index into the registrar's regions)
    image: Image | None = None  # the label map it came from: its plane and field of view


class SliceWindow:
    """The lifted points of the last ``max_slices`` slices no older than ``max_age_s`` (relative
    to the newest), as one cloud of at most ``max_points`` (an even subsample: ICP cost and the
    weight of each slice stay bounded however fast slices come).

    Why short by default: the organ moves while the probe sweeps, so a long window stacks
    slices from different breathing states into one smeared cloud, registered as their average.
    On the phantom (30 Hz, 30 mm/s sweep, 10 mm breathing, organ surface, seeds 1001-1003) 10
    slices (a third of a second, 10 mm of sweep) gave a p95 TRE 1.1-1.6× lower than 30 (1 s)."""

    def __init__(
        self, max_slices: int = 10, max_age_s: float = 0.5, max_points: int = 6000
    ) -> None:
        self.max_slices, self.max_age_s, self.max_points = max_slices, max_age_s, max_points
        self.slices: deque[LiftedSlice] = deque(maxlen=max_slices)

    def add(
        self,
        points: np.ndarray,
        stamp_s: float,
        tags: np.ndarray | None = None,
        image: Image | None = None,
    ) -> None:
        """Add one slice's points; ``tags`` (one small int per point, 0 if None) say which
        structure each came from, ``image`` the label map they were lifted from (its plane
        and field of view), for the checks of a plausibility verdict."""
        points = np.asarray(points, np.float64).reshape(-1, 3)
        tags = np.zeros(len(points), np.int8) if tags is None else np.asarray(tags, np.int8)
        if tags.shape != (len(points),):
            raise ValueError(f"{len(tags)} tags for {len(points)} points: give one per point")
        self.slices.append(LiftedSlice(float(stamp_s), points, tags, image))
        newest = max(s.stamp_s for s in self.slices)
        while self.slices and newest - self.slices[0].stamp_s > self.max_age_s:
            self.slices.popleft()

    def clear(self) -> None:
        self.slices.clear()

    def __len__(self) -> int:
        return len(self.slices)

    def cloud(self) -> np.ndarray:
        """All the window's points (N×3), evenly subsampled to at most ``max_points``."""
        return self.tagged_cloud()[0]

    def tagged_cloud(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The cloud of :meth:`cloud`, each point's tag and the index of its slice."""
        if not self.slices:
            return np.zeros((0, 3)), np.zeros(0, np.int8), np.zeros(0, np.intp)
        points = np.concatenate([s.points for s in self.slices])
        tags = np.concatenate([s.tags for s in self.slices])
        index = np.repeat(np.arange(len(self.slices)), [len(s.points) for s in self.slices])
        if len(points) > self.max_points:
            pick = np.linspace(0, len(points) - 1, self.max_points).round().astype(np.intp)
            points, tags, index = points[pick], tags[pick], index[pick]
        return points, tags, index
