"""Meshes for viewers: a change detector and Open3D quadric decimation to a triangle budget.

Slicer re-uploads a whole POLYDATA on every message, so the server sends a mesh only when its
arrays changed and never more than ``budget`` triangles of it.
"""

from __future__ import annotations

import hashlib

import numpy as np


def mesh_digest(vertices: np.ndarray, faces: np.ndarray, scalars: np.ndarray | None) -> bytes:
    """A 16-byte hash of the arrays (and their shapes): equal digests, same mesh."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (vertices, faces, scalars):
        if array is None:
            digest.update(b"none")
            continue
        digest.update(repr((array.dtype.str, array.shape)).encode())
        digest.update(memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8)))
    return digest.digest()


def decimate(
    vertices: np.ndarray, faces: np.ndarray, scalars: np.ndarray | None, budget: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """At most ``budget`` triangles (Open3D ``simplify_quadric_decimation``).

    Up to three scalar components ride through as vertex colours, which the decimation
    interpolates; wider scalars are dropped. Meshes within budget come back unchanged.
    """
    if budget <= 0 or len(faces) <= budget:
        return vertices, faces, scalars
    import open3d as o3d  # heavy: only imported when a mesh is over budget

    # np.array copies: Open3D refuses the read-only arrays a received message holds.
    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.array(vertices, dtype=np.float64)),
        o3d.utility.Vector3iVector(np.array(faces, dtype=np.int32)),
    )
    columns = 0
    if scalars is not None:
        values = np.asarray(scalars, dtype=np.float64).reshape(len(vertices), -1)
        columns = values.shape[1] if values.shape[1] <= 3 else 0
        if columns:
            colours = np.zeros((len(vertices), 3))
            colours[:, :columns] = values
            mesh.vertex_colors = o3d.utility.Vector3dVector(colours)
    small = mesh.simplify_quadric_decimation(target_number_of_triangles=int(budget))
    out_scalars = None
    if columns:
        colours = np.asarray(small.vertex_colors, dtype=np.float32)[:, :columns]
        out_scalars = colours[:, 0] if np.ndim(scalars) == 1 else colours
    return (
        np.asarray(small.vertices, dtype=np.float32),
        np.asarray(small.triangles, dtype=np.int32),
        out_scalars,
    )
