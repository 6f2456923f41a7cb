"""The phantom's preoperative anatomy: a liver-like organ, a vessel tree, a lesion and a catheter.

Everything is drawn from one seed with numpy's PCG64, so the same seed gives a bit-identical label
volume in any process. The volume is indexed ``[i, j, k]`` = (R, A, S) with isotropic voxels, so
``ras = origin + voxel_mm * ijk`` (no rotation), the geometry Slicer expects from an NRRD file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

BACKGROUND, ORGAN, VESSEL, LESION, DEVICE = 0, 1, 2, 3, 4
LABEL_NAMES = {ORGAN: "organ", VESSEL: "vessel", LESION: "lesion", DEVICE: "device"}
VOXEL_MM = 0.5
CATHETER_RADIUS_MM = 0.9


@dataclass(frozen=True)
class VesselBranch:
    """One tube of the vessel tree: centreline samples (N×3 mm, RAS) and radius per sample."""

    points: np.ndarray
    radii: np.ndarray


@dataclass(frozen=True, eq=False)
class Anatomy:
    """The reference (undeformed) body: label volume plus the analytic shapes it was drawn from."""

    seed: int
    labels: np.ndarray  # uint8 [i, j, k] = (R, A, S); see LABEL_NAMES
    organ_mask: np.ndarray  # bool, the whole organ with the vessels and lesion inside it
    voxel_mm: float
    origin: np.ndarray  # RAS mm of voxel (0, 0, 0)
    organ_center: np.ndarray
    lesion_center: np.ndarray
    lesion_radius_mm: float
    vessels: tuple[VesselBranch, ...]
    catheter: np.ndarray  # M×3 centreline of the device, inside the vessel tree
    target_ids: tuple[str, ...]
    targets: np.ndarray  # N×3 reference RAS positions of the targets

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.labels.shape  # type: ignore[return-value]

    @property
    def ijk_to_ras(self) -> np.ndarray:
        matrix = np.diag([self.voxel_mm, self.voxel_mm, self.voxel_mm, 1.0])
        matrix[:3, 3] = self.origin
        return matrix

    @property
    def bounds(self) -> np.ndarray:
        """2×3 RAS box [min, max] covered by voxel centres."""
        return np.stack([self.origin, self.origin + self.voxel_mm * (np.array(self.shape) - 1)])

    def preoperative_labels(self) -> np.ndarray:
        """The label volume as a preoperative scan would show it: no catheter (device → vessel)."""
        labels = self.labels.copy()
        labels[labels == DEVICE] = VESSEL
        return labels

    def sample_nearest(self, ras: np.ndarray) -> np.ndarray:
        """Labels at RAS points (…×3), nearest voxel; 0 outside the volume."""
        return sample_labels(self.labels, self.origin, self.voxel_mm, ras)


def sample_labels(
    labels: np.ndarray, origin: np.ndarray, voxel_mm: float, ras: np.ndarray
) -> np.ndarray:
    """Nearest-voxel lookup by integer indexing (several times faster than map_coordinates).

    Points outside the volume read its border voxels, which ``build_anatomy`` keeps background.
    """
    scale = np.float32(1.0 / voxel_mm)
    flat = None
    for axis, n in enumerate(labels.shape):
        # +0.5 then truncation = rounding, once clipped to the non-negative range.
        f = (ras[..., axis] - np.float32(origin[axis])) * scale + np.float32(0.5)
        np.clip(f, 0, n - 1, out=f)
        index = f.astype(np.int32)
        flat = index if flat is None else flat * np.int32(n) + index
    return labels.ravel().take(flat)


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, step_mm: float) -> np.ndarray:
    """Quadratic Bézier p0 → p2 pulled towards p1, sampled about every ``step_mm``."""
    length = np.linalg.norm(p1 - p0) + np.linalg.norm(p2 - p1)
    t = np.linspace(0.0, 1.0, max(int(length / step_mm), 2))[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _organ_field(rng: np.random.Generator) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple]:
    """Axis-aligned Gaussian blobs (centre, semi-axes) and a low-frequency surface ripple."""
    # right lobe, left lobe, inferior (caudate-like) bulge; liver sits right of the midline.
    base = [
        ((25.0, 0.0, 0.0), (58.0, 44.0, 50.0)),
        ((-38.0, 12.0, 12.0), (42.0, 24.0, 30.0)),
        ((12.0, -12.0, -32.0), (36.0, 30.0, 26.0)),
    ]
    blobs = []
    for center, axes in base:
        c = np.array(center) + rng.uniform(-6, 6, 3)
        a = np.array(axes) * rng.uniform(0.88, 1.12, 3)
        blobs.append((c, a))
    ripple = (rng.uniform(14, 22, 3), rng.uniform(0, 2 * np.pi, 3), rng.uniform(0.05, 0.09))
    return blobs, ripple


def _vessel_tree(
    rng: np.random.Generator, organ_center: np.ndarray
) -> tuple[tuple[VesselBranch, ...], np.ndarray]:
    """A portal-vein-like tree entering from below: trunk, two branches, two twigs."""

    def jitter(p: tuple[float, float, float], s: float = 5.0) -> np.ndarray:
        return organ_center + np.array(p) + rng.uniform(-s, s, 3)

    entry, hilum = jitter((8, -22, -62), 3), jitter((10, -8, -14), 3)
    right_end, left_end = jitter((58, 4, 12)), jitter((-52, 12, 14))
    twig_a, twig_b = jitter((55, -20, 34)), jitter((50, 22, -18))
    right_mid = hilum + 0.5 * (right_end - hilum)
    specs = [  # (start, control, end, radius start, radius end)
        (entry, jitter((12, -14, -40), 3), hilum, 6.0, 5.5),
        (hilum, jitter((35, -6, 4)), right_end, 5.0, 3.0),
        (hilum, jitter((-20, 4, -2)), left_end, 4.5, 2.8),
        (right_mid, jitter((45, -14, 22)), twig_a, 3.2, 2.2),
        (right_mid, jitter((40, 14, -6)), twig_b, 3.0, 2.0),
    ]
    branches = []
    for p0, p1, p2, r0, r1 in specs:
        pts = _bezier(p0, p1, p2, 0.4)
        branches.append(VesselBranch(pts, np.linspace(r0, r1, len(pts))))
    return tuple(branches), hilum


def _paint_tubes(
    labels: np.ndarray,
    origin: np.ndarray,
    points: np.ndarray,
    radii: np.ndarray,
    value: int,
    keep: tuple[int, ...] = (),
) -> None:
    """Union of spheres along a centreline, painted ``value`` except over labels in ``keep``."""
    shape = np.array(labels.shape)
    for p, r in zip(points, radii, strict=True):
        lo = np.maximum(np.floor((p - r - origin) / VOXEL_MM).astype(int), 0)
        hi = np.minimum(np.ceil((p + r - origin) / VOXEL_MM).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        axes = [origin[d] + VOXEL_MM * np.arange(lo[d], hi[d]) - p[d] for d in range(3)]
        d2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
        block = labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        mask = d2 <= r * r
        for k in keep:
            mask &= block != k
        block[mask] = value


def _place_lesion(
    rng: np.random.Generator,
    labels: np.ndarray,
    origin: np.ndarray,
    organ_center: np.ndarray,
    vessel_points: np.ndarray,
    radius: float,
) -> np.ndarray:
    """A lesion centre deep in the organ, clear of the vessels but near one crossing its plane."""
    directions = rng.normal(size=(64, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    for _ in range(4000):
        c = organ_center + rng.uniform([-10, 8, -30], [55, 28, 30])
        shell = c + (radius + 6.0) * directions
        if not np.all(sample_labels(labels, origin, VOXEL_MM, shell) == ORGAN):
            continue
        near = vessel_points[np.abs(vessel_points[:, 0] - c[0]) < 1.5]
        if len(near) == 0 or np.min(np.linalg.norm(vessel_points - c, axis=1)) <= radius + 6.0:
            continue
        # A vessel crosses the sagittal plane through the lesion, so both show in one image.
        if np.min(np.linalg.norm(near[:, 1:] - c[1:], axis=1)) < radius + 18.0:
            return c
    raise RuntimeError("could not place the lesion; this seed's organ is too small")


@functools.lru_cache(maxsize=2)
def build_anatomy(seed: int) -> Anatomy:
    """The phantom body for ``seed`` (cached: several sources in one process share it)."""
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    rng = np.random.default_rng([int(seed), 0xA7])
    organ_center = np.zeros(3)
    blobs, (wavelength, phase, ripple_amp) = _organ_field(rng)

    lo = np.min([c - 1.3 * a for c, a in blobs], axis=0) - 4.0
    hi = np.max([c + 1.3 * a for c, a in blobs], axis=0) + 4.0
    lo[2] = min(lo[2], -75.0)  # room for the vessel trunk entering from below
    origin = np.floor(lo / VOXEL_MM) * VOXEL_MM
    shape = tuple(int(n) for n in np.ceil((hi - origin) / VOXEL_MM) + 1)
    axes = [(origin[d] + VOXEL_MM * np.arange(shape[d])).astype(np.float32) for d in range(3)]

    # Separable blobs: the field is a sum of outer products, cheap even on 20 M voxels.
    field = np.zeros(shape, dtype=np.float32)
    for c, a in blobs:
        g = [np.exp(-(((axes[d] - c[d]) / a[d]) ** 2)).astype(np.float32) for d in range(3)]
        field += g[0][:, None, None] * g[1][None, :, None] * g[2][None, None, :]
    r = [np.sin(axes[d] / wavelength[d] + phase[d]).astype(np.float32) for d in range(3)]
    field *= 1.0 + ripple_amp * (r[0][:, None, None] * r[1][None, :, None] * r[2][None, None, :])
    organ_mask = field > 0.5
    labels = organ_mask.astype(np.uint8)
    del field

    vessels, hilum = _vessel_tree(rng, organ_center)
    for branch in vessels:
        _paint_tubes(labels, origin, branch.points, branch.radii, VESSEL)
    all_vessel_points = np.concatenate([b.points for b in vessels])

    lesion_radius = float(rng.uniform(7.0, 10.0))
    lesion_center = _place_lesion(
        rng, labels, origin, organ_center, all_vessel_points, lesion_radius
    )
    _paint_tubes(labels, origin, lesion_center[None], np.array([lesion_radius]), LESION)

    # Catheter: up the trunk and into the right branch, on the vessels' centrelines.
    trunk, right = vessels[0].points, vessels[1].points
    catheter = np.concatenate([trunk, right[1 : int(0.7 * len(right))]])
    _paint_tubes(
        labels, origin, catheter, np.full(len(catheter), CATHETER_RADIUS_MM), DEVICE, keep=(0,)
    )

    for axis in range(3):  # border stays background: sample_labels clamps to it
        edge = [slice(None)] * 3
        for side in (0, -1):
            edge[axis] = side
            labels[tuple(edge)] = BACKGROUND

    target_ids = ("lesion", "bifurcation")
    targets = np.stack([lesion_center, hilum])
    labels.setflags(write=False)
    organ_mask.setflags(write=False)
    return Anatomy(
        seed=int(seed),
        labels=labels,
        organ_mask=organ_mask,
        voxel_mm=VOXEL_MM,
        origin=origin,
        organ_center=organ_center,
        lesion_center=lesion_center,
        lesion_radius_mm=lesion_radius,
        vessels=vessels,
        catheter=catheter,
        target_ids=target_ids,
        targets=targets,
    )
