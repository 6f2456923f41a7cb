"""The preoperative surface model as registration uses it: triangles in RAS millimetres.

A ``SurfaceModel`` is what every loader returns (mesh files, label volumes by marching cubes, the
phantom's export), so registration never sees a file format, an LPS coordinate or a metre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class PreopModelError(ValueError):
    """A preoperative model file or folder cannot be used; the message names it and the fix."""


@dataclass(frozen=True)
class SurfaceModel:
    """A triangle surface in RAS mm: ``vertices`` N×3 float64, ``faces`` M×3 int32 (counter-
    clockwise seen from outside when the surface is closed), ``normals`` N×3 unit float64.
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        for field in ("vertices", "faces", "normals"):
            array = getattr(self, field)
            if array.ndim != 2 or array.shape[1] != 3:
                raise ValueError(f"SurfaceModel.{field} must be K×3, got shape {array.shape}")
            array.setflags(write=False)

    @property
    def bounds(self) -> np.ndarray:
        """2×3: lowest and highest RAS corner."""
        return np.stack([self.vertices.min(axis=0), self.vertices.max(axis=0)])

    @property
    def enclosed_volume_mm3(self) -> float:
        """Signed volume by the divergence theorem: positive for a closed surface whose faces
        turn outwards; meaningless for an open one.
        """
        return float(signed_volume(self.vertices, self.faces))


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Sum of the tetrahedra (origin, triangle): the enclosed volume of a closed surface."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def is_closed(faces: np.ndarray) -> bool:
    """Whether every edge is shared by exactly two triangles (a watertight surface)."""
    if len(faces) == 0:
        return False
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1).astype(np.int64)
    keys = edges[:, 0] * (int(edges.max()) + 1) + edges[:, 1]
    _, counts = np.unique(keys, return_counts=True)
    return bool(np.all(counts == 2))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted mean of the face normals around each vertex, unit length (0 if isolated)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    face_normals = np.cross(b - a, c - a)  # length = twice the area: the weight
    normals = np.zeros_like(vertices)
    for axis in range(3):
        weights = np.repeat(face_normals[:, axis], 3)
        normals[:, axis] = np.bincount(faces.ravel(), weights, minlength=len(vertices))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def build_surface(name: str, vertices: np.ndarray, faces: np.ndarray, source: str) -> SurfaceModel:
    """A SurfaceModel with outward faces (a closed surface turned inside out is turned back) and
    vertex normals; ``vertices`` and ``faces`` are already checked.
    """
    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int32)
    if is_closed(faces) and signed_volume(vertices, faces) < 0:
        faces = np.ascontiguousarray(faces[:, ::-1])
    return SurfaceModel(name, vertices, faces, vertex_normals(vertices, faces), source)
