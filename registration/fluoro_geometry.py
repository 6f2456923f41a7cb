"""The C-arm projection a fluoroscopy frame carries in its ``meta``, as registration uses it.

The phantom's C-arm (``igtflow.stream.phantom.carm.CArmGeometry.meta``) and the ``segment``
node's label maps of its frames carry ``projection`` (3×4: RAS homogeneous → (u w, v w, w), w the
depth from the source along the beam, mm), ``sid_mm``, ``sod_mm`` and ``pixel_spacing_mm``. The
source, the beam and the size of a pixel at the isocentre follow from them (the pinhole maths is
the overlay's, ``igtflow.render.image_geometry``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

REQUIRED = ("projection", "sid_mm", "sod_mm", "pixel_spacing_mm")


class FluoroGeometryError(ValueError):
    """A frame's meta lacks the C-arm geometry, or holds one that cannot project."""


@dataclass(frozen=True)
class CArmView:
    """Projection (3×4), focal spot and beam direction (RAS), and mm per pixel at the isocentre."""

    projection: np.ndarray
    source: np.ndarray
    beam: np.ndarray
    iso_mm_per_px: float
    isocentre: np.ndarray

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> CArmView:
        missing = [key for key in REQUIRED if key not in meta]
        if missing:
            raise FluoroGeometryError(
                f"the fluoroscopy frame's meta has no C-arm geometry ({', '.join(missing)} "
                "missing); pass the image's meta (the C-arm source puts it there) or give the "
                "registrar geometry=..."
            )
        from igtflow.render.image_geometry import GeometryError, projection_geometry

        try:
            spacing = float(np.mean(np.asarray(meta["pixel_spacing_mm"], dtype=np.float64)))
            sid, sod = float(meta["sid_mm"]), float(meta["sod_mm"])
            pinhole = projection_geometry(meta["projection"], sid)
        except (TypeError, ValueError) as exc:  # GeometryError is a ValueError
            kind = "bad" if isinstance(exc, GeometryError) else "not numeric"
            raise FluoroGeometryError(f"the C-arm geometry in meta is {kind}: {exc}") from exc
        if not (spacing > 0 and sid > sod > 0):
            raise FluoroGeometryError(
                f"need pixel_spacing_mm > 0 and sid_mm > sod_mm > 0, got {spacing}, {sid}, {sod}"
            )
        source, beam = pinhole.source, pinhole.axis
        return cls(pinhole.projection, source, beam, spacing * sod / sid, source + sod * beam)

    def project(self, ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (N×2) and depths w (N) of RAS points (N×3)."""
        h = ras @ self.projection[:, :3].T + self.projection[:, 3]
        return h[:, :2] / h[:, 2:3], h[:, 2]

    def ray(self, ras: np.ndarray) -> np.ndarray:
        """Unit directions from the source through RAS points (N×3)."""
        d = ras - self.source
        return d / np.linalg.norm(d, axis=-1, keepdims=True)
