"""Where RAS millimetres land in a frame: the US image plane or the C-arm's projection.

Pure maths on numpy arrays, shared by the 2D overlay (points, mesh cuts, silhouettes) and the
3D scene (where to put the slice, the X-ray source and the detector).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from igtflow.stream.messages import Image


class GeometryError(ValueError):
    """A frame whose geometry cannot place anything (singular matrix, bad projection)."""


@dataclass(frozen=True)
class PlaneGeometry:
    """An image plane in RAS: ``ijk_to_ras`` of an ultrasound (or any planar) frame."""

    ijk_to_ras: np.ndarray
    ras_to_ijk: np.ndarray
    origin: np.ndarray  # RAS of pixel (0, 0)
    normal: np.ndarray  # unit normal of the image plane

    def to_pixels(self, points_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N×2 pixel (column, row), N signed distances to the plane in mm)."""
        pts = np.asarray(points_ras, dtype=np.float64).reshape(-1, 3)
        ijk = pts @ self.ras_to_ijk[:3, :3].T + self.ras_to_ijk[:3, 3]
        return ijk[:, :2], (pts - self.origin) @ self.normal

    def cut_mesh(self, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """Segments (K×2×2 pixels) where the mesh surface crosses the image plane."""
        verts = np.asarray(vertices, dtype=np.float64)
        dist = (verts - self.origin) @ self.normal
        tri = np.asarray(faces, dtype=np.int64)
        d = dist[tri]  # M×3
        above = d > 0
        n_above = above.sum(axis=1)
        crossing = (n_above == 1) | (n_above == 2)
        if not crossing.any():
            return np.empty((0, 2, 2))
        tri, d, above = tri[crossing], d[crossing], above[crossing]
        # The lone vertex (alone on its side) and the two edges leaving it cross the plane.
        lone_above = above.sum(axis=1) == 1
        lone = np.where(lone_above, np.argmax(above, axis=1), np.argmin(above, axis=1))
        rows = np.arange(len(tri))
        a = tri[rows, lone]
        b = tri[rows, (lone + 1) % 3]
        c = tri[rows, (lone + 2) % 3]
        da, db, dc = d[rows, lone], d[rows, (lone + 1) % 3], d[rows, (lone + 2) % 3]
        p1 = verts[a] + (da / (da - db))[:, None] * (verts[b] - verts[a])
        p2 = verts[a] + (da / (da - dc))[:, None] * (verts[c] - verts[a])
        uv1, _ = self.to_pixels(p1)
        uv2, _ = self.to_pixels(p2)
        return np.stack([uv1, uv2], axis=1)


@dataclass(frozen=True)
class ProjectionGeometry:
    """A C-arm's pinhole projection (fluoroscopy, modality XA): RAS → (column, row)."""

    projection: np.ndarray  # 3×4
    source: np.ndarray  # X-ray focal spot in RAS
    axis: np.ndarray  # unit principal axis, source → detector
    sid_mm: float

    def to_pixels(self, points_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N×2 pixel (column, row), N depths in mm from the source along the axis)."""
        pts = np.asarray(points_ras, dtype=np.float64).reshape(-1, 3)
        uvw = pts @ self.projection[:, :3].T + self.projection[:, 3]
        w = uvw[:, 2:3]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = uvw[:, :2] / w
        return uv, (pts - self.source) @ self.axis

    def pixel_rays(self, pixels: np.ndarray) -> np.ndarray:
        """Direction (N×3, not unit) of the ray from the source through each pixel."""
        uv1 = np.column_stack([np.asarray(pixels, dtype=np.float64), np.ones(len(pixels))])
        return uv1 @ np.linalg.inv(self.projection[:, :3]).T

    def detector_points(self, pixels: np.ndarray) -> np.ndarray:
        """RAS of pixels on the detector, ``sid_mm`` from the source along the axis."""
        rays = self.pixel_rays(pixels)
        return self.source + rays * (self.sid_mm / (rays @ self.axis))[:, None]


Geometry = PlaneGeometry | ProjectionGeometry


def plane_geometry(ijk_to_ras: np.ndarray) -> PlaneGeometry:
    """The plane of a frame whose pixels sit at ``ijk_to_ras @ (i, j, 0, 1)``."""
    m = np.asarray(ijk_to_ras, dtype=np.float64)
    normal = np.cross(m[:3, 0], m[:3, 1])
    length = float(np.linalg.norm(normal))
    if length < 1e-12:
        raise GeometryError("ijk_to_ras has parallel or zero column/row axes")
    normal /= length
    # The slice axis may be zero for a 2D frame: replace it by the normal to invert the matrix.
    full = m.copy()
    if abs(float(np.linalg.det(full[:3, :3]))) < 1e-12:
        full[:3, 2] = normal
    return PlaneGeometry(m, np.linalg.inv(full), m[:3, 3].copy(), normal)


def projection_geometry(projection: object, sid_mm: float | None = None) -> ProjectionGeometry:
    """The C-arm geometry of a 3×4 RAS → pixel projection (meta ``projection``)."""
    p = np.asarray(projection, dtype=np.float64)
    if p.shape != (3, 4) or not np.all(np.isfinite(p)):
        raise GeometryError(f"meta 'projection' must be a finite 3x4 matrix, got shape {p.shape}")
    m = p[:, :3]
    if abs(float(np.linalg.det(m))) < 1e-12:
        raise GeometryError("meta 'projection' is singular (no X-ray source position)")
    source = -np.linalg.solve(m, p[:, 3])
    # w = m[2]·(X - source) is positive in front of the source, so m[2] points at the detector.
    axis = m[2] / np.linalg.norm(m[2])
    if sid_mm is None or sid_mm <= 0:
        sid_mm = 1000.0
    return ProjectionGeometry(p, source, axis, float(sid_mm))


def frame_geometry(image: Image) -> Geometry:
    """The geometry that places RAS in ``image``: its projection for XA, its plane otherwise."""
    if image.modality == "XA" and "projection" in image.meta:
        return projection_geometry(image.meta["projection"], image.meta.get("sid_mm"))
    return plane_geometry(image.ijk_to_ras)
