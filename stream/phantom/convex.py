"""Beam geometry of a convex (curvilinear) array: its sector, beam samples and scan conversion.

A convex array of radius R fires beams along the radii of a virtual apex R above the middle of
its surface. The echoes are formed on a polar grid (beams × samples along each beam, as the
scanner acquires them) and scan-converted onto the image's rectangular pixel grid, whose
pixel → plane mapping stays affine. Image plane coordinates here are the probe's (x lateral, y
depth, mm) with the origin at the middle of the array surface; the apex is at (0, -R).
Everything is computed once per configuration; a frame only looks the maps up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def sector_width_mm(radius_mm: float, depth_mm: float, sector_deg: float) -> float:
    """Lateral extent of the sector: its chord at the deepest arc (half angle <= 90°)."""
    return 2.0 * (radius_mm + depth_mm) * float(np.sin(np.deg2rad(0.5 * sector_deg)))


@dataclass(frozen=True)
class SectorGeometry:
    """A sector of ``n_beams`` beams × ``n_samples`` samples seen on a width × height pixel grid.

    Pixel (u, v) lies at x = (u - (width - 1) / 2) · spacing[0], y = v · spacing[1] mm.
    """

    radius_mm: float
    depth_mm: float
    sector_deg: float
    width: int
    height: int
    spacing: tuple[float, float]
    n_beams: int
    n_samples: int

    @property
    def half_angle(self) -> float:
        return float(np.deg2rad(0.5 * self.sector_deg))

    @property
    def beam_step(self) -> float:
        """Angle between neighbouring beams (rad)."""
        return 2.0 * self.half_angle / self.n_beams

    @property
    def sample_mm(self) -> float:
        """Distance between neighbouring samples along a beam."""
        return self.depth_mm / self.n_samples

    def sample_depths(self) -> np.ndarray:
        """Depth below the array surface of every sample along a beam (mm, float32)."""
        return ((np.arange(self.n_samples) + 0.5) * self.sample_mm).astype(np.float32)

    def beam_points(self) -> np.ndarray:
        """Plane position (x, y mm) of every beam sample (n_samples × n_beams × 2, float64)."""
        theta = -self.half_angle + (np.arange(self.n_beams) + 0.5) * self.beam_step
        r = self.radius_mm + (np.arange(self.n_samples) + 0.5) * self.sample_mm
        x = r[:, None] * np.sin(theta)[None, :]
        y = r[:, None] * np.cos(theta)[None, :] - self.radius_mm
        return np.stack([x, y], axis=-1)

    def beam_pixels(self) -> np.ndarray:
        """Pixel coordinates (u, v) of every beam sample (n_samples × n_beams × 2, float64)."""
        xy = self.beam_points()
        u = xy[..., 0] / self.spacing[0] + 0.5 * (self.width - 1)
        v = xy[..., 1] / self.spacing[1]
        return np.stack([u, v], axis=-1)

    def polar(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance from the apex (mm) and angle from the central beam (rad) of pixels (u, v)."""
        x = (u - 0.5 * (self.width - 1)) * self.spacing[0]
        y = v * self.spacing[1] + self.radius_mm
        return np.hypot(x, y), np.arctan2(x, y)

    def inside(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Which pixel positions (u, v) lie inside the sector."""
        r, theta = self.polar(u, v)
        return (
            (np.abs(theta) <= self.half_angle)
            & (r >= self.radius_mm)
            & (r <= self.radius_mm + self.depth_mm)
        )

    def fov(self) -> np.ndarray:
        """Pixels inside the sector (H×W bool): what the probe images; the rest is black."""
        return self.inside(*np.meshgrid(np.arange(self.width), np.arange(self.height)))

    def scan_conversion_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """cv2.remap maps from the beam grid to pixels: (beam, sample) index of every pixel.

        Pixels outside the sector point far off the grid (a constant border makes them 0);
        inside, the index is clamped to the grid so edge pixels never blend with that border.
        """
        r, theta = self.polar(*np.meshgrid(np.arange(self.width), np.arange(self.height)))
        beam = (theta + self.half_angle) / self.beam_step - 0.5
        sample = (r - self.radius_mm) / self.sample_mm - 0.5
        inside = self.fov()
        beam = np.where(inside, np.clip(beam, 0, self.n_beams - 1), -10.0)
        sample = np.where(inside, np.clip(sample, 0, self.n_samples - 1), -10.0)
        return beam.astype(np.float32), sample.astype(np.float32)

    def meta(self) -> dict[str, object]:
        """The field of view for an image's meta: enough for a consumer to rebuild the mask."""
        return {
            "shape": "sector",
            "apex_px": [0.5 * (self.width - 1), -self.radius_mm / self.spacing[1]],
            "radius_mm": self.radius_mm,
            "depth_mm": self.depth_mm,
            "sector_deg": self.sector_deg,
        }
