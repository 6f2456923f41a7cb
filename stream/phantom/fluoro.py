"""Fluoroscopy of the breathing phantom: C-arm projections with quantum noise and a catheter.

Speed scheme (60+ frames/s on one core): the attenuation line integrals of the reference body are
computed once per C-arm pose, in two layers. The static layer (torso, spine, ribs) does not move.
The moving layer (organ, vessels, lesion, lungs, catheter) is warped per frame by the motion
projected through the geometry: each pixel's ray is represented by one reference point on a
smooth depth surface (the organ's mid-depth along the ray, pulled to the target depths around the
targets), moved by the 3D motion and projected again. Out-of-plane motion is thus modelled by its
projection; labels are the warped reference labels, so the truth flow is exact by construction.
Frame content depends on (seed, parameters, frame index) only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from igtflow.stream.phantom.anatomy import (
    CATHETER_RADIUS_MM,
    DEVICE,
    LESION,
    VESSEL,
    Anatomy,
    build_anatomy,
)
from igtflow.stream.phantom.carm import CArmGeometry
from igtflow.stream.phantom.grid import CoarseGrid
from igtflow.stream.phantom.motion import Motion, check_range, make_motion

POLARITIES = ("fluoro", "radiograph")
MU_SOFT = 0.02  # 1/mm, soft tissue at ~60 keV
# Excess attenuation over soft tissue per label: organ, vessel, lesion (contrast: vessels +0.03).
MU_LABEL = np.array([0.0, 0.0015, 0.0, 0.004, 0.0], dtype=np.float32)
MU_CONTRAST = 0.12
MU_BONE = 0.035
MU_CATHETER = 0.8
MARCH_STEP_MM = 0.5


@dataclass(frozen=True)
class FluoroConfig:
    """Imaging parameters beyond the geometry (checked; errors name the parameter)."""

    dose: float = 3000.0  # photons per pixel through air: lower = noisier
    polarity: str = "fluoro"
    contrast: bool = False
    collimate: bool = True
    rate_hz: float = 30.0
    key_every: int = 30

    def __post_init__(self) -> None:
        check_range("dose", self.dose, 1.0, 1e7, " photons/pixel")
        check_range("rate_hz", self.rate_hz, 0.1, 10000.0, " Hz")
        if self.polarity not in POLARITIES:
            raise ValueError(f"polarity must be one of {POLARITIES}, got {self.polarity!r}")
        if not isinstance(self.key_every, int) or self.key_every < 1:
            raise ValueError(f"key_every must be a whole number >= 1, got {self.key_every!r}")


@dataclass
class XaFrame:
    """One fluoroscopy frame and everything true about it."""

    index: int
    time_s: float
    image: np.ndarray  # H×W uint8, dense = dark for polarity "fluoro"
    labels: np.ndarray  # H×W uint8: 0 background, 1 organ, 2 vessel, 3 lesion, 4 device
    flow: np.ndarray  # H×W×2 float32, key grid → current frame (pixels)
    key_index: int
    geometry: CArmGeometry
    target_ids: tuple[str, ...]
    targets_ras: np.ndarray  # N×3 at time t
    target_pixels: np.ndarray  # N×2 (u, v)


def _chords(
    source: np.ndarray, dirs: np.ndarray, center: np.ndarray, radii: np.ndarray, rot: np.ndarray
) -> np.ndarray:
    """Length (mm) of each ray inside an ellipsoid (semi-axes ``radii`` along columns of ``rot``).

    Closed form (a quadratic per ray) instead of ray marching: exact and cheap for bones and lungs.
    """
    m = rot.T / radii[:, None]
    o = m @ (source - center)
    d = dirs @ m.T
    a = np.sum(d * d, axis=-1)
    b = d @ o
    disc = b * b - a * (o @ o - 1.0)
    return 2.0 * np.sqrt(np.maximum(disc, 0.0)) / a


def _cylinder_chords(
    source: np.ndarray, dirs: np.ndarray, center: np.ndarray, radii: np.ndarray
) -> np.ndarray:
    """Length of each ray inside an upright elliptic cylinder of half-height ``radii[2]``."""
    scale = np.array([1 / radii[0], 1 / radii[1], 0.0])
    o = (source - center) * scale
    d = dirs * scale
    a = np.maximum(np.sum(d * d, axis=-1), 1e-12)
    b = d @ o
    root = np.sqrt(np.maximum(b * b - a * (o @ o - 1.0), 0.0)) / a
    t0, t1 = -b / a - root, -b / a + root
    dz = np.where(np.abs(dirs[..., 2]) < 1e-9, 1e-9, dirs[..., 2])
    z0 = (center[2] - radii[2] - source[2]) / dz
    z1 = (center[2] + radii[2] - source[2]) / dz
    lo = np.maximum(t0, np.minimum(z0, z1))
    hi = np.minimum(t1, np.maximum(z0, z1))
    return np.maximum(hi - lo, 0.0)


def _unsharp(line_integrals: np.ndarray, sigma: float = 10.0, amount: float = 0.8) -> np.ndarray:
    blurred = cv2.GaussianBlur(line_integrals, (0, 0), sigma)
    return line_integrals + np.float32(amount) * (line_integrals - blurred)


def _axis_rotation(tangent: np.ndarray) -> np.ndarray:
    """A rotation whose first column is ``tangent`` (third column as close to S as possible)."""
    t = tangent / np.linalg.norm(tangent)
    side = np.cross([0.0, 0.0, 1.0], t)
    side /= np.linalg.norm(side)
    return np.stack([t, side, np.cross(t, side)], axis=1)


class FluoroSim:
    """Renders frame ``index`` of the phantom's fluoroscopy stream for one seed, pose and config."""

    def __init__(
        self,
        seed: int = 0,
        geometry: CArmGeometry | None = None,
        config: FluoroConfig | None = None,
        breathing_amplitude_mm: float = 10.0,
        breathing_period_s: float = 4.0,
        deformation_mm: float = 4.0,
        anatomy: Anatomy | None = None,
    ) -> None:
        self.anatomy = anatomy or build_anatomy(seed)
        self.seed = self.anatomy.seed
        self.config = config or FluoroConfig()
        self.geometry = geometry or CArmGeometry(isocenter=tuple(self.anatomy.organ_center))
        self.motion: Motion = make_motion(
            self.seed,
            self.anatomy.organ_center,
            breathing_amplitude_mm,
            breathing_period_s,
            deformation_mm,
        )
        g = self.geometry
        self.grid = CoarseGrid(g.width, g.height)
        self._source = g.source
        self._reference()
        bank = np.random.default_rng([self.seed, 0x0C])
        self._noise = bank.standard_normal((g.height + 64, g.width + 64), dtype=np.float32)
        self._key_cache: tuple[int, np.ndarray] | None = None

    # --- reference projection (once per pose) -----------------------------------------------
    def _pixel_dirs(self) -> np.ndarray:
        g = self.geometry
        u, v = np.meshgrid(np.arange(g.width, dtype=np.float64), np.arange(g.height))
        return g.ray_directions(np.stack([u, v], axis=-1))

    def _torso(self) -> tuple[np.ndarray, float, float]:
        """Torso ellipse (centre, semi-axis R-L, semi-axis A-P); the liver sits right-anterior."""
        c = self.anatomy.organ_center + np.array([-45.0, -20.0, 0.0])
        return c, 165.0, 115.0

    def _static_layer(self, dirs: np.ndarray) -> np.ndarray:
        """Line integrals (unitless) of the torso's soft tissue and its bones."""
        src = self._source
        center, a, b = self._torso()
        scale = np.array([1 / a, 1 / b, 0.0])
        o = (src - center) * scale
        d = dirs * scale
        aa = np.sum(d * d, axis=-1)
        bb = d @ o
        disc = np.maximum(bb * bb - aa * (o @ o - 1.0), 0.0)
        mu = MU_SOFT * 2.0 * np.sqrt(disc) / np.maximum(aa, 1e-12)
        for c, radii, rot, excess in self._bones(center, a, b):
            mu += excess * self._culled_chords(dirs, c, radii, rot)
        return mu.astype(np.float32) + self._ribs(center, a, b)

    def _bones(self, torso: np.ndarray, a: float, b: float) -> list[tuple]:
        """Vertebrae (body, pedicles, processes) and ribs as ellipsoids: centre, radii, rotation."""
        eye = np.eye(3)
        bones = []
        spine = torso + np.array([0.0, -0.55 * b, 0.0])
        # (offset from the body centre, semi-axes, density relative to MU_BONE)
        parts = [
            ((0.0, -38.0, -4.0), (4.0, 13.0, 9.0), 1.0),  # spinous process
            *[((s * 14.0, -19.0, 2.0), (4.5, 9.0, 6.5), 1.2) for s in (-1.0, 1.0)],  # pedicles
            *[((s * 27.0, -24.0, 2.0), (13.0, 5.0, 5.0), 1.0) for s in (-1.0, 1.0)],  # transverse
        ]
        for z in np.arange(-200.0, 201.0, 33.0):
            body = spine + np.array([0.0, 0.0, z])
            # Vertebral body as an upright elliptic cylinder: square end plates in the AP view.
            bones.append((body, np.array([21.0, 16.0, 12.5]), None, 0.6 * MU_BONE))
            for offset, radii, density in parts:
                bones.append((body + np.array(offset), np.array(radii), eye, density * MU_BONE))
        return bones

    def _ribs(self, torso: np.ndarray, a: float, b: float) -> np.ndarray:
        """Ribs drawn as projected bands (flat bones: a band with denser cortical edges)."""
        g = self.geometry
        spine_x = torso[0]
        layer = np.zeros((g.height, g.width), np.float32)
        theta = np.linspace(np.deg2rad(-80), np.deg2rad(60), 60)
        shift = 4
        for rib in range(10):
            z0 = 170.0 - 30.0 * rib
            for side in (-1.0, 1.0):
                x = spine_x + side * (a - 14.0) * np.cos(theta) * np.where(theta < 0, 0.9, 1.0)
                y = torso[1] + (b - 12.0) * np.sin(theta)
                z = z0 - 50.0 * (theta - theta[0]) / (theta[-1] - theta[0])
                pts = g.project(np.stack([x, y, z], axis=1))
                depth = np.linalg.norm(np.stack([x, y, z], axis=1).mean(0) - self._source)
                width = 9.0 * (g.sid_mm / depth) / g.pixel_spacing_mm
                poly = [np.round(pts * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)]
                band = np.zeros_like(layer)
                cv2.polylines(band, poly, False, 1.0, int(width), cv2.LINE_AA, shift)
                marrow = np.zeros_like(layer)
                cv2.polylines(
                    marrow, poly, False, 1.0, max(int(width * 0.6), 1), cv2.LINE_AA, shift
                )
                layer += band - 0.45 * marrow
        layer = cv2.GaussianBlur(layer, (0, 0), 1.5)
        return layer * np.float32(MU_BONE * 8.0)

    def _culled_chords(
        self, dirs: np.ndarray, center: np.ndarray, radii: np.ndarray, rot: np.ndarray
    ) -> np.ndarray:
        """Ellipsoid chords, computed only in the pixel box its bounding sphere projects to."""
        g = self.geometry
        out = np.zeros(dirs.shape[:2])
        h = g.projection @ np.append(center, 1.0)
        if h[2] <= 1.0:
            return out
        u, v = h[:2] / h[2]
        r = radii.max() * (g.sid_mm / h[2]) / g.pixel_spacing_mm + 2.0
        u0, u1 = int(max(u - r, 0)), int(min(u + r + 1, g.width))
        v0, v1 = int(max(v - r, 0)), int(min(v + r + 1, g.height))
        if u0 >= u1 or v0 >= v1:
            return out
        block = dirs[v0:v1, u0:u1]
        if rot is None:
            out[v0:v1, u0:u1] = _cylinder_chords(self._source, block, center, radii)
        else:
            out[v0:v1, u0:u1] = _chords(self._source, block, center, radii, rot)
        return out

    def _march_organ(self, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ray-march the label volume: excess line integral, top label, organ mid-depth per ray."""
        a = self.anatomy
        g = self.geometry
        mu_lut = MU_LABEL.copy()
        mu_lut[DEVICE] = MU_LABEL[VESSEL]
        if self.config.contrast:
            mu_lut[[VESSEL, DEVICE]] += MU_CONTRAST
        label_lut = np.array([0, 1, 2, 3, 2], dtype=np.uint8)  # catheter is drawn, not marched
        # Depth range along the rays that the volume's corners span.
        corners = np.array(np.meshgrid(*[[0, 1]] * 3, indexing="ij")).reshape(3, -1).T
        corners = a.bounds[corners, [0, 1, 2]]
        depth = (corners - self._source) @ g.rotation[:, 2]
        cos = dirs @ g.rotation[:, 2]
        t_lo, t_hi = depth.min() / cos.max(), depth.max() / cos.min()
        shape = np.array(a.shape)
        vol = a.labels.ravel()
        start = ((self._source - a.origin) / a.voxel_mm).astype(np.float32)
        step_vox = (dirs / a.voxel_mm).astype(np.float32)
        mu = np.zeros(dirs.shape[:2], np.float32)
        top = np.zeros(dirs.shape[:2], np.uint8)
        t_sum = np.zeros(dirs.shape[:2], np.float32)
        hits = np.zeros(dirs.shape[:2], np.float32)
        for t in np.arange(t_lo, t_hi, MARCH_STEP_MM, dtype=np.float32):
            flat = None
            for axis in range(3):
                f = start[axis] + t * step_vox[..., axis] + np.float32(0.5)
                np.clip(f, 0, shape[axis] - 1, out=f)
                idx = f.astype(np.int32)
                flat = idx if flat is None else flat * np.int32(shape[axis]) + idx
            lab = vol.take(flat)
            mu += mu_lut[lab]
            np.maximum(top, label_lut[lab], out=top)
            inside = (lab > 0).astype(np.float32)
            hits += inside
            t_sum += inside * t
        mu *= np.float32(MARCH_STEP_MM)
        mid = np.where(hits > 0, t_sum / np.maximum(hits, 1), 0.0)
        return mu, top, np.where(hits > 0, mid, np.nan)

    def _moving_extras(self, dirs: np.ndarray) -> np.ndarray:
        """Lungs (air where soft tissue would be) above the diaphragm, over the liver's dome."""
        a = self.anatomy
        torso, ta, _ = self._torso()
        organ_rows = np.nonzero(a.labels.any(axis=(0, 1)))[0]
        dome = a.origin[2] + a.voxel_mm * organ_rows.max()
        mu = np.zeros(dirs.shape[:2])
        for side in (1.0, -1.0):
            center = np.array([torso[0] + side * 0.45 * ta, torso[1] + 5.0, dome + 100.0])
            radii = np.array([0.42 * ta, 85.0, 112.0 if side > 0 else 125.0])
            mu -= MU_SOFT * 0.85 * self._culled_chords(dirs, center, radii, np.eye(3))
        return mu.astype(np.float32)

    def _draw_catheter(self, mu: np.ndarray, labels: np.ndarray) -> None:
        """The catheter as a dense antialiased curve of its projected width (sub-pixel accurate)."""
        g = self.geometry
        pts = g.project(self.anatomy.catheter)
        h = g.projection @ np.append(self.anatomy.catheter.mean(axis=0), 1.0)
        width_px = 2 * CATHETER_RADIUS_MM * (g.sid_mm / h[2]) / g.pixel_spacing_mm
        shift = 4
        poly = np.round(pts * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)
        layer = np.zeros(mu.shape, np.float32)
        cv2.polylines(layer, [poly], False, 1.0, max(round(width_px), 1), cv2.LINE_AA, shift)
        layer = cv2.GaussianBlur(layer, (0, 0), 0.6)
        mu += layer * np.float32(MU_CATHETER * 2 * CATHETER_RADIUS_MM * 0.8)
        labels[layer > 0.5] = DEVICE

    def _depth_surface(self, mid: np.ndarray) -> np.ndarray:
        """Smooth per-pixel reference depth: organ mid-depth, filled, blurred, pinned at targets."""
        g = self.geometry
        iso_depth = g.sod_mm / (self._dirs @ g.rotation[:, 2])
        known = np.isfinite(mid)
        value = np.where(known, mid - iso_depth, 0.0).astype(np.float32)
        weight = known.astype(np.float32)
        sigma = 40.0
        value = cv2.GaussianBlur(value, (0, 0), sigma)
        weight = cv2.GaussianBlur(weight, (0, 0), sigma)
        depth = iso_depth + value / np.maximum(weight, 1e-3)
        u, v = np.meshgrid(np.arange(g.width), np.arange(g.height))
        for target, radius in zip(self.anatomy.targets, self._target_radii(), strict=True):
            tu, tv = g.project(target[None])[0]
            t_target = np.linalg.norm(target - self._source)
            r_px = radius * (g.sid_mm / t_target) / g.pixel_spacing_mm
            w = np.exp(-((u - tu) ** 2 + (v - tv) ** 2) / (2 * (2.0 * r_px) ** 2))
            depth = (1 - w) * depth + w * t_target
        return depth

    def _target_radii(self) -> list[float]:
        return [self.anatomy.lesion_radius_mm] + [6.0] * (len(self.anatomy.targets) - 1)

    def _reference(self) -> None:
        g = self.geometry
        self._dirs = dirs = self._pixel_dirs()
        static = self._static_layer(dirs)
        moving, labels, mid = self._march_organ(dirs)
        moving += self._moving_extras(dirs)
        self._draw_catheter(moving, labels)
        self._depth = self._depth_surface(mid)
        # Unsharp masking, as fluoroscopy processing does, applied to the line integrals once
        # per pose (it commutes with the smooth per-frame warp to a good approximation).
        static, moving = _unsharp(static), _unsharp(moving)
        i0 = np.float32(self.config.dose)
        self._static_transmission = (i0 * np.exp(-static)).astype(np.float32)
        self._moving_transmission = np.exp(-moving).astype(np.float32)
        self._ref_labels = labels
        # Nested masks (label >= k), smoothed, warped bilinearly and cut at one half: label
        # boundaries then move by sub-pixel amounts with the flow instead of whole-pixel jumps.
        cover = np.stack([(labels >= k) for k in (1, 2, 3, 4)], axis=-1).astype(np.float32)
        cover = cv2.GaussianBlur(cover, (0, 0), 1.0) * np.float32(255)
        self._ref_cover = np.rint(cover).astype(np.uint8)
        u, v = np.meshgrid(np.arange(g.width), np.arange(g.height))
        cu, cv = g.principal_point
        radius = 0.5 * min(g.width, g.height) - 2.0
        inside = np.hypot(u - cu, v - cv) <= radius
        self._fov = inside if self.config.collimate else np.ones((g.height, g.width), dtype=bool)
        self._fov_u8 = self._fov.astype(np.uint8)
        counts = self._static_transmission * self._moving_transmission
        log = np.log(counts[self._fov])
        self._log_lo, self._log_hi = np.percentile(log, [0.5, 99.8])
        # Reference RAS point of every coarse grid pixel, for the per-frame warp.
        self._coarse_ref = self._reference_point(self.grid.pixels)

    def _reference_point(self, pixels: np.ndarray) -> np.ndarray:
        """The reference 3D point that stands for the ray through ``pixels`` (…×2)."""
        depth = cv2.remap(
            self._depth.astype(np.float32),
            pixels[..., 0].astype(np.float32),
            pixels[..., 1].astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return self._source + depth[..., None] * self.geometry.ray_directions(pixels)

    # --- frames ---------------------------------------------------------------------------
    def time_of(self, index: int) -> float:
        return index / self.config.rate_hz

    def key_of(self, index: int) -> int:
        return index - index % self.config.key_every

    def _backward_coarse(self, t: float) -> np.ndarray:
        """For each coarse current pixel q, the reference pixel p with project(move(p)) = q."""
        q = self.grid.pixels
        p = q.copy()
        for _ in range(4):
            moved = self.geometry.project(self.motion.forward(self._reference_point(p), t))
            p = p - (moved - q)
        return p

    def render(self, index: int, out: np.ndarray | None = None, truth: bool = True) -> XaFrame:
        """Frame ``index``: the fluoroscopy image (into ``out`` when given), labels and flow."""
        g = self.geometry
        t = self.time_of(index)
        back = self.grid.upsample(self._backward_coarse(t))
        map_x, map_y = back[..., 0], back[..., 1]
        moving = cv2.remap(
            self._moving_transmission,
            map_x,
            map_y,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        counts = moving * self._static_transmission
        # Quantum noise: Poisson counts ~ N + sqrt(N) z, z a window of a fixed normal bank.
        dy, dx = np.random.default_rng([self.seed, 0x0D, index]).integers(0, 64, 2)
        z = self._noise[dy : dy + g.height, dx : dx + g.width]
        counts += cv2.sqrt(counts) * z
        np.maximum(counts, np.float32(0.5), out=counts)
        counts = cv2.GaussianBlur(counts, (0, 0), 0.5)  # detector blur correlates the noise
        log = cv2.log(counts)
        scale = 255.0 / (self._log_hi - self._log_lo)
        if self.config.polarity == "fluoro":
            display = (log - np.float32(self._log_lo)) * np.float32(scale)
        else:
            display = (np.float32(self._log_hi) - log) * np.float32(scale)
        image = out if out is not None else np.empty((g.height, g.width), np.uint8)
        np.clip(display, 0, 255, out=display)
        np.copyto(image, display, casting="unsafe")
        if self.config.collimate:
            image *= self._fov_u8

        cover = cv2.remap(self._ref_cover, map_x, map_y, cv2.INTER_LINEAR)
        half = np.uint8(128)
        labels = (cover[..., 0] >= half).view(np.uint8)
        for k in (1, 2, 3):
            labels += (cover[..., k] >= half).view(np.uint8)
        if self.config.collimate:
            labels *= self._fov_u8
        targets = self.motion.forward(self.anatomy.targets, t)
        key = self.key_of(index)
        flow = self.flow(key, index) if truth else np.zeros((0, 0, 2), np.float32)
        return XaFrame(
            index=index,
            time_s=t,
            image=image,
            labels=labels,
            flow=flow,
            key_index=key,
            geometry=g,
            target_ids=self.anatomy.target_ids,
            targets_ras=targets,
            target_pixels=g.project(targets),
        )

    def flow(self, key: int, index: int) -> np.ndarray:
        """Displacement (pixels) from frame ``key`` to frame ``index`` on the key frame's grid."""
        if self._key_cache is None or self._key_cache[0] != key:
            ref_pixels = self._backward_coarse(self.time_of(key))
            self._key_cache = (key, self._reference_point(ref_pixels))
        now = self.geometry.project(self.motion.forward(self._key_cache[1], self.time_of(index)))
        return self.grid.upsample(now - self.grid.pixels)


__all__ = ["LESION", "FluoroConfig", "FluoroSim", "XaFrame"]
