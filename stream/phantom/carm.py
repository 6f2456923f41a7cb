"""C-arm geometry: pose from LAO/RAO and cranial/caudal angles, projection matrix, image meta.

C-arm frame: origin at the isocentre, x = detector columns (u), y = detector rows (v), z = beam
direction (source → detector). At LAO 0 / cranial 0 the beam runs posterior → anterior (source
under the table) and the image is shown as if facing the patient: patient's right on the left of
the image, head at the top. +LAO turns the detector towards the patient's left, +cranial tilts it
towards the head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from igtflow.stream.phantom.motion import check_range


@dataclass(frozen=True)
class CArmGeometry:
    """Everything needed to project RAS points onto the detector of a width×height image."""

    width: int = 512
    height: int = 512
    pixel_spacing_mm: float = 0.6
    sid_mm: float = 1000.0
    sod_mm: float = 750.0
    lao_deg: float = 0.0
    cranial_deg: float = 0.0
    isocenter: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 16 <= value <= 4096:
                raise ValueError(f"{name} must be whole pixels in 16..4096, got {value!r}")
        check_range("pixel_spacing_mm", self.pixel_spacing_mm, 0.05, 5.0, " mm")
        check_range("sid_mm", self.sid_mm, 300.0, 2000.0, " mm")
        check_range("sod_mm", self.sod_mm, 100.0, self.sid_mm - 50.0, " mm (below sid_mm)")
        check_range("lao_deg", self.lao_deg, -120.0, 120.0, " degrees")
        check_range("cranial_deg", self.cranial_deg, -60.0, 60.0, " degrees")

    @property
    def rotation(self) -> np.ndarray:
        """Columns: u, v and beam directions in RAS."""
        lao, cra = np.deg2rad(self.lao_deg), np.deg2rad(self.cranial_deg)
        # AP view: u → patient left (-R), v → inferior (-S), beam → anterior (+A).
        ap = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
        c, s = np.cos(lao), np.sin(lao)
        about_s = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # LAO: about the S axis
        c, s = np.cos(cra), np.sin(cra)
        about_r = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])  # cranial: about R
        return about_r @ about_s @ ap

    @property
    def carm_to_ras(self) -> np.ndarray:
        matrix = np.eye(4)
        matrix[:3, :3] = self.rotation
        matrix[:3, 3] = self.isocenter
        return matrix

    @property
    def source(self) -> np.ndarray:
        """Focal spot in RAS."""
        return np.asarray(self.isocenter) - self.sod_mm * self.rotation[:, 2]

    @property
    def principal_point(self) -> tuple[float, float]:
        return (0.5 * (self.width - 1), 0.5 * (self.height - 1))

    @property
    def projection(self) -> np.ndarray:
        """3×4: RAS homogeneous → (u w, v w, w), w = depth from the source along the beam (mm)."""
        f = self.sid_mm / self.pixel_spacing_mm
        cu, cv = self.principal_point
        k = np.array([[f, 0.0, cu], [0.0, f, cv], [0.0, 0.0, 1.0]])
        ras_to_carm = np.linalg.inv(self.carm_to_ras)
        extrinsic = ras_to_carm[:3].copy()
        extrinsic[2, 3] += self.sod_mm  # depth from the source, not from the isocentre
        return k @ extrinsic

    @property
    def ijk_to_ras(self) -> np.ndarray:
        """Pixel (column, row) → its place on the detector plane in RAS."""
        r = self.rotation
        cu, cv = self.principal_point
        d = self.pixel_spacing_mm
        matrix = np.eye(4)
        matrix[:3, 0], matrix[:3, 1], matrix[:3, 2] = r[:, 0] * d, r[:, 1] * d, r[:, 2]
        matrix[:3, 3] = self.isocenter + r @ [-cu * d, -cv * d, self.sid_mm - self.sod_mm]
        return matrix

    def project(self, ras: np.ndarray) -> np.ndarray:
        """Pixel (u, v) of RAS points (…×3)."""
        p = self.projection
        h = ras @ p[:, :3].T + p[:, 3]
        return h[..., :2] / h[..., 2:3]

    def ray_directions(self, pixels: np.ndarray) -> np.ndarray:
        """Unit RAS directions from the source through pixel centres (…×2 → …×3)."""
        cu, cv = self.principal_point
        d = self.pixel_spacing_mm
        local = np.stack(
            [
                (pixels[..., 0] - cu) * d,
                (pixels[..., 1] - cv) * d,
                np.full(pixels.shape[:-1], self.sid_mm),
            ],
            axis=-1,
        )
        rays = local @ self.rotation.T
        return rays / np.linalg.norm(rays, axis=-1, keepdims=True)

    def meta(self) -> dict[str, Any]:
        """The geometry as the fluoroscopy Image contract puts it in ``meta``."""
        return {
            "projection": self.projection.tolist(),
            "sid_mm": self.sid_mm,
            "sod_mm": self.sod_mm,
            "pixel_spacing_mm": [self.pixel_spacing_mm, self.pixel_spacing_mm],
            "lao_deg": self.lao_deg,
            "cranial_deg": self.cranial_deg,
            "carm_to_ras": self.carm_to_ras.tolist(),
        }
