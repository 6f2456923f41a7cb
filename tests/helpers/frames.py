"""Plausible frames with known geometry for viewer tests: US-like speckle and XA-like projections.

Everything is placed through one consistent geometry, so a test knows where each thing must be
drawn: the US plane is RAS x-z (column → R, row → inferior) through A = 0; the C-arm looks AP
(source posterior, detector anterior). Not the phantom: only enough to look like the real thing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from igtflow.stream.messages import Image, Mesh, Points, Transform

US_SPACING = 0.15  # mm per pixel
SID_MM, SOD_MM, XA_SPACING = 1100.0, 700.0, 0.3


@dataclass(frozen=True)
class Scene:
    """One frame of a case and its layers, plus the pixels a test expects them at."""

    image: Image
    labels: Image
    targets: Points
    model: Mesh
    probe: Transform | None
    organ_centre_px: tuple[int, int]
    organ_axes_px: tuple[int, int]
    target_px: tuple[float, float]
    model_centre_px: tuple[float, float]
    model_radius_px: float


def us_ijk_to_ras(size: int, a_mm: float = 0.0) -> np.ndarray:
    """Column → +R, row → -S (depth), plane at A = ``a_mm``; pixel (size/2, 0) at the skin."""
    m = np.eye(4)
    m[:3, 0] = (US_SPACING, 0, 0)
    m[:3, 1] = (0, 0, -US_SPACING)
    m[:3, 2] = (0, US_SPACING, 0)
    m[:3, 3] = (-size / 2 * US_SPACING, a_mm, 40.0)
    return m


def pixel_to_ras(ijk_to_ras: np.ndarray, u: float, v: float) -> np.ndarray:
    return (ijk_to_ras @ np.array([u, v, 0.0, 1.0]))[:3]


def sphere(
    centre: np.ndarray, radius: float, resolution: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh.create_sphere(radius=radius, resolution=resolution)
    vertices = np.asarray(mesh.vertices) + centre
    return vertices.astype(np.float32), np.asarray(mesh.triangles, dtype=np.int32)


def us_scene(size: int = 512, stamp_ns: int | None = None, seed: int = 0) -> Scene:
    """A B-mode-like frame: speckle, a brighter elliptic organ, a dark lesion, depth fall-off."""
    stamp = time.time_ns() if stamp_ns is None else stamp_ns
    rng = np.random.default_rng(seed)
    m = us_ijk_to_ras(size)
    centre = (size // 2, int(size * 0.55))
    axes = (int(size * 0.3), int(size * 0.2))
    lesion = (int(size * 0.62), int(size * 0.58))
    lesion_r = size // 20
    labels = np.zeros((size, size), np.uint8)
    cv2.ellipse(labels, centre, axes, 0, 0, 360, 1, -1)
    cv2.circle(labels, lesion, lesion_r, 3, -1)
    echo = np.full((size, size), 0.35, np.float32)
    echo[labels == 1] = 0.7
    echo[labels == 3] = 0.15
    echo = cv2.GaussianBlur(echo, (0, 0), 2.0)
    speckle = rng.rayleigh(0.55, (size, size)).astype(np.float32)
    depth = np.exp(-np.linspace(0, 1.2, size, dtype=np.float32))[:, None]
    data = np.clip(echo * speckle * depth * 255, 0, 255).astype(np.uint8)
    model_c = (size * 0.33, size * 0.4)
    radius_mm = 8.0
    vertices, faces = sphere(pixel_to_ras(m, *model_c), radius_mm)
    target_ras = pixel_to_ras(m, *lesion)
    # 10 mm anterior of the slice, seen "through" it beside the organ.
    off_plane = pixel_to_ras(m, size * 0.75, size * 0.3) + np.array([0.0, 10.0, 0.0])
    probe = np.eye(4)
    probe[:3, 3] = pixel_to_ras(m, size / 2, 0)
    common = {"stamp_ns": stamp, "ijk_to_ras": m, "spacing": (US_SPACING, US_SPACING)}
    return Scene(
        image=Image(data=data, modality="US", frame="Image", **common),
        labels=Image(data=labels, modality="LABELS", frame="Image", **common),
        targets=Points(
            points=np.array([target_ras, off_plane]), labels=["T1", "T2"], stamp_ns=stamp
        ),
        model=Mesh(vertices=vertices, faces=faces, stamp_ns=stamp, frame="RAS"),
        probe=Transform(matrix=probe, from_frame="Probe", to_frame="Tracker", stamp_ns=stamp),
        organ_centre_px=centre,
        organ_axes_px=axes,
        target_px=(float(lesion[0]), float(lesion[1])),
        model_centre_px=model_c,
        model_radius_px=radius_mm / US_SPACING,
    )


def xa_projection(size: int) -> tuple[np.ndarray, np.ndarray]:
    """AP C-arm: source at A = -SOD, detector at A = SID - SOD; u → +R, v → inferior."""
    f = SID_MM / XA_SPACING
    k = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]])
    rot = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # rows: camera x, y, z in RAS
    source = np.array([0.0, -SOD_MM, 0.0])
    projection = k @ np.column_stack([rot, -rot @ source])
    carm = np.eye(4)
    carm[:3, :3] = rot.T
    return projection, carm


def xa_scene(size: int = 512, stamp_ns: int | None = None, seed: int = 0) -> Scene:
    """A fluoroscopy-like frame: a smooth dark blob (the organ) and a thin dark catheter line."""
    stamp = time.time_ns() if stamp_ns is None else stamp_ns
    rng = np.random.default_rng(seed)
    projection, carm = xa_projection(size)
    centre_ras = np.array([10.0, 0.0, -5.0])
    radius_mm = 30.0
    # The model sits 4 mm right of the organ's shadow: a registration error a viewer must show.
    model_centre = centre_ras + np.array([4.0, 0.0, 0.0])
    vertices, faces = sphere(model_centre, radius_mm)
    m_uvw = projection @ np.append(model_centre, 1.0)
    uvw = projection @ np.append(centre_ras, 1.0)
    cu, cv = uvw[:2] / uvw[2]
    r_px = radius_mm * SID_MM / SOD_MM / XA_SPACING
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dist2 = ((xx - cu) ** 2 + (yy - cv) ** 2) / r_px**2
    thickness = np.sqrt(np.clip(1 - dist2, 0, None))
    intensity = 0.85 - 0.45 * thickness
    line = np.zeros((size, size), np.uint8)
    cv2.line(line, (size // 8, size - size // 8), (int(cu), int(cv)), 1, 3)
    intensity = intensity - 0.3 * cv2.GaussianBlur(line.astype(np.float32), (0, 0), 1.2)
    noisy = intensity + rng.normal(0, 0.02, (size, size)).astype(np.float32)
    data = np.clip(noisy * 255, 0, 255).astype(np.uint8)
    labels = ((dist2 <= 1.0).astype(np.uint8)) * 1
    labels[line > 0] = 4
    meta = {
        "projection": projection.tolist(),
        "sid_mm": SID_MM,
        "sod_mm": SOD_MM,
        "pixel_spacing_mm": [XA_SPACING, XA_SPACING],
        "lao_deg": 0.0,
        "cranial_deg": 0.0,
        "carm_to_ras": carm.tolist(),
    }
    target = centre_ras + np.array([0.0, 0.0, 10.0])
    t_uvw = projection @ np.append(target, 1.0)
    common = {"stamp_ns": stamp, "spacing": (XA_SPACING, XA_SPACING), "frame": "Detector"}
    return Scene(
        image=Image(data=data, modality="XA", meta=meta, **common),
        labels=Image(data=labels, modality="LABELS", meta=meta, **common),
        targets=Points(points=target[None], labels=["T1"], stamp_ns=stamp),
        model=Mesh(vertices=vertices, faces=faces, stamp_ns=stamp, frame="RAS"),
        probe=None,
        organ_centre_px=(round(cu), round(cv)),
        organ_axes_px=(int(r_px), int(r_px)),
        target_px=(float(t_uvw[0] / t_uvw[2]), float(t_uvw[1] / t_uvw[2])),
        model_centre_px=(float(m_uvw[0] / m_uvw[2]), float(m_uvw[1] / m_uvw[2])),
        model_radius_px=float(r_px),
    )
