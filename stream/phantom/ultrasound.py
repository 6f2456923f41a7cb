"""A tracked ultrasound probe over the phantom: B-mode-like frames with their ground truth.

The probe (linear, or curvilinear: a convex array whose beams fan out from a virtual apex) lies
on the anterior skin in a sagittal (longitudinal) plane, image columns going inferior and rows
going posterior, so breathing moves the liver mostly within the image. It is either static over
the lesion or sweeps left-right across the organ.

Rendering, per pixel: reference position x_ref = motion.inverse(pixel in RAS, t) → tissue label →
scatterer amplitude from a hash of the reference cell (speckle bound to tissue: it moves with it)
plus specular echoes at label boundaries → anisotropic Gaussian point-spread function on the
complex field → envelope → depth attenuation along each beam (lesion and catheter shadow, fluid
enhancement behind vessels) with time-gain compensation → electronic noise → log compression.
A linear probe's beams are the image columns. A curvilinear probe forms the echo on its beam grid
(beams × samples, see convex.py), so speckle, attenuation, shadows and gain follow the radial
beams, then scan-converts it onto the pixel grid; outside the sector the image is black and
the labels are 0 (nothing is imaged there), while flow and targets stay defined everywhere.
Frame content depends on (seed, parameters, frame index) only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from igtflow.stream.phantom.anatomy import Anatomy, build_anatomy, sample_labels
from igtflow.stream.phantom.convex import SectorGeometry, sector_width_mm
from igtflow.stream.phantom.grid import CoarseGrid
from igtflow.stream.phantom.motion import Motion, check_range, make_motion

PATHS = ("sweep", "static")
PROBES = ("linear", "curvilinear")
SCATTER_CELL_MM = 0.2
# Per label (background, organ, vessel, lesion, device): scatterer amplitude, specular
# impedance, amplitude attenuation per mm (two-way).
SCATTER = np.array([0.35, 0.6, 0.025, 2.2, 3.0], dtype=np.float32)
# How much the slow texture modulates each label's echogenicity (fat and muscle are patchy).
PATCHINESS = np.array([0.7, 0.15, 0.0, 0.25, 0.0], dtype=np.float32)
IMPEDANCE = np.array([1.0, 1.12, 0.92, 1.5, 3.0], dtype=np.float32)
ATTENUATION = np.array([0.012, 0.011, 0.001, 0.1, 0.9], dtype=np.float32)
DYNAMIC_RANGE_DB = 48.0
DISPLAY_FLOOR_DB = -24.0  # echo level shown black; the organ's speckle shows at about 90 of 255
NOISE_LEVEL = 0.02  # electronic noise rms, relative to the echo of SCATTER 1
NOISE_MARGIN = 64
TEXTURE_CELL_MM = 6.0  # scale of the slow echogenicity variation within tissues


@dataclass(frozen=True)
class UltrasoundConfig:
    """Probe, image and path parameters (checked on construction, errors name the parameter)."""

    width: int = 256
    height: int = 256
    width_mm: float = 60.0
    depth_mm: float = 80.0
    path: str = "sweep"
    sweep_speed_mm_s: float = 10.0
    sweep_range_mm: float = 50.0
    rate_hz: float = 30.0
    key_every: int = 30
    probe: str = "linear"
    radius_mm: float = 50.0  # curvilinear only: radius of the convex array
    sector_deg: float = 70.0  # curvilinear only: angle between the outermost beams

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 16 <= value <= 2048:
                raise ValueError(f"{name} must be whole pixels in 16..2048, got {value!r}")
        check_range("width_mm", self.width_mm, 10.0, 200.0, " mm")
        check_range("depth_mm", self.depth_mm, 10.0, 250.0, " mm")
        check_range("sweep_speed_mm_s", self.sweep_speed_mm_s, 0.0, 200.0, " mm/s")
        check_range("sweep_range_mm", self.sweep_range_mm, 0.0, 120.0, " mm")
        check_range("rate_hz", self.rate_hz, 0.1, 10000.0, " Hz")
        if self.path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {self.path!r}")
        if not isinstance(self.key_every, int) or self.key_every < 1:
            raise ValueError(f"key_every must be a whole number >= 1, got {self.key_every!r}")
        if self.probe not in PROBES:
            raise ValueError(f"probe must be one of {PROBES}, got {self.probe!r}")
        check_range("radius_mm", self.radius_mm, 10.0, 200.0, " mm")
        check_range("sector_deg", self.sector_deg, 10.0, 150.0, "°")

    @property
    def lateral_mm(self) -> float:
        """Image width in mm: the aperture (linear) or the sector's widest chord (curvilinear)."""
        if self.probe == "curvilinear":
            return sector_width_mm(self.radius_mm, self.depth_mm, self.sector_deg)
        return self.width_mm

    @property
    def spacing(self) -> tuple[float, float]:
        """(column, row) pixel size in mm."""
        return (self.lateral_mm / self.width, self.depth_mm / self.height)

    @property
    def sector(self) -> SectorGeometry | None:
        """The curvilinear probe's beam geometry, one beam per column and sample per row."""
        if self.probe != "curvilinear":
            return None
        return SectorGeometry(
            self.radius_mm,
            self.depth_mm,
            self.sector_deg,
            self.width,
            self.height,
            self.spacing,
            n_beams=self.width,
            n_samples=self.height,
        )


@dataclass
class UsFrame:
    """One ultrasound frame and everything true about it."""

    index: int
    time_s: float
    image: np.ndarray  # H×W uint8 B-mode
    labels: np.ndarray  # H×W uint8
    flow: np.ndarray  # H×W×2 float32, key grid → current frame (pixels)
    key_index: int
    probe_to_tracker: np.ndarray
    image_to_probe: np.ndarray
    ijk_to_ras: np.ndarray
    spacing: tuple[float, float]
    target_ids: tuple[str, ...]
    targets_ras: np.ndarray  # N×3 at time t
    target_pixels: np.ndarray  # N×2 (u, v)
    target_out_of_plane_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    target_in_fov: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # in-plane


_CORNERS = np.array(list(np.ndindex(2, 2, 2)), dtype=np.int32)


def _value_noise(x: np.ndarray, cell_mm: float) -> np.ndarray:
    """Smooth zero-mean noise in [-1, 1] at points (…×3 mm): trilinear blend of cell hashes."""
    scaled = x / cell_mm
    base = np.floor(scaled)
    frac = scaled - base
    w = frac * frac * (3 - 2 * frac)  # smoothstep: no visible grid lines
    value, _ = _hash_pair(base.astype(np.int32)[..., None, :] + _CORNERS)
    weight = np.prod(np.where(_CORNERS.astype(bool), w[..., None, :], 1 - w[..., None, :]), -1)
    return np.sum(weight * value, axis=-1)


def _hash_pair(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two zero-mean uniform values per integer cell (…×3 int32): a texture that never repeats."""
    c = cells.view(np.uint32)
    h = c[..., 0] * np.uint32(0x8DA6B343) ^ c[..., 1] * np.uint32(0xD8163841)
    h ^= c[..., 2] * np.uint32(0xCB1AB31F)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x7FEB352D)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x846CA68B)
    h ^= h >> np.uint32(16)
    re = (h & np.uint32(0xFFFF)).astype(np.float32) * np.float32(1 / 32768) - np.float32(1)
    im = (h >> np.uint32(16)).astype(np.float32) * np.float32(1 / 32768) - np.float32(1)
    return re, im


class UltrasoundSim:
    """Renders frame ``index`` of the phantom's ultrasound stream for one seed and config."""

    def __init__(
        self,
        seed: int = 0,
        config: UltrasoundConfig | None = None,
        breathing_amplitude_mm: float = 10.0,
        breathing_period_s: float = 4.0,
        deformation_mm: float = 4.0,
        anatomy: Anatomy | None = None,
    ) -> None:
        self.config = config or UltrasoundConfig()
        self.anatomy = anatomy or build_anatomy(seed)
        self.seed = self.anatomy.seed
        self.motion: Motion = make_motion(
            self.seed,
            self.anatomy.organ_center,
            breathing_amplitude_mm,
            breathing_period_s,
            deformation_mm,
        )
        cfg = self.config
        sx, sy = cfg.spacing
        self.grid = CoarseGrid(cfg.width, cfg.height)
        self.image_to_probe = np.eye(4)
        self.image_to_probe[0, 3] = -0.5 * (cfg.width - 1) * sx  # image centre line = probe axis
        self._pixel_to_probe = self.image_to_probe @ np.diag([sx, sy, 1.0, 1.0])
        self._skin_y = self._skin_height()
        self.sector = cfg.sector
        # The echo is formed on the beam grid: rows are samples along a beam, columns are beams.
        if self.sector is None:
            depth = (np.arange(cfg.height, dtype=np.float32) + 0.5) * np.float32(sy)
            # Point-spread function: ~0.8 mm laterally, ~0.3 mm axially (sigmas in pixels).
            self._psf = (max(0.8 / sx, 0.5), max(0.3 / sy, 0.5))
            self._sample_mm = np.float32(sy)
            self.fov = np.ones((cfg.height, cfg.width), bool)
        else:
            sector = self.sector
            depth = sector.sample_depths()
            # A convex array's beams are ~0.8 mm wide at mid-depth, wider deeper (sigmas in
            # beams and samples).
            mid_mm = (sector.radius_mm + 0.5 * sector.depth_mm) * sector.beam_step
            self._psf = (max(0.8 / mid_mm, 0.5), max(0.3 / sector.sample_mm, 0.5))
            self._sample_mm = np.float32(sector.sample_mm)
            self._beam_maps = self.grid.maps_at(sector.beam_pixels())
            self._scan_maps = sector.scan_conversion_maps()
            self.fov = sector.fov()
        self._depth_mm = depth
        # Time-gain compensation undoes the organ's mean attenuation, leaving a gentle fall-off.
        self._tgc = np.exp(0.85 * ATTENUATION[1] * depth).astype(np.float32)[:, None]
        # Body wall attached to the probe: bright skin line, darker fat, striated muscle.
        wall = 0.55 + 0.45 * np.cos(depth / 1.7) ** 2
        wall = np.where(depth < 1.2, 3.0, np.where(depth < 7.0, 0.45, wall))
        self._wall = np.where(depth < 14.0, wall, 1.0).astype(np.float32)[:, None]
        self._wall_rows = int(np.searchsorted(depth, 14.0))
        # Blurred white noise of variance 1/3 has this rms; dividing by it makes 0 dB = SCATTER 1.
        self._gain = np.float32(np.sqrt(4 * np.pi * self._psf[0] * self._psf[1] * 3.0))
        self._key_cache: tuple[int, np.ndarray] | None = None
        bank = np.random.default_rng([self.seed, 0x0B])
        shape = (2, cfg.height + NOISE_MARGIN, cfg.width + NOISE_MARGIN)
        self._noise = bank.standard_normal(shape, dtype=np.float32) * np.float32(NOISE_LEVEL)

    # --- geometry -------------------------------------------------------------------------
    def _skin_height(self) -> float:
        """Anterior skin plane: a little above the organ's top anywhere the probe may go."""
        a = self.anatomy
        half = 0.5 * self.config.sweep_range_mm + 0.5 * self.config.lateral_mm
        lo = a.lesion_center - half
        hi = a.lesion_center + half
        ii = np.arange(a.shape[0])
        kk = np.arange(a.shape[2])
        xs = a.origin[0] + a.voxel_mm * ii
        zs = a.origin[2] + a.voxel_mm * kk
        sel = a.labels[(xs >= lo[0]) & (xs <= hi[0])][:, :, (zs >= lo[2]) & (zs <= hi[2])]
        rows = np.nonzero(sel.any(axis=(0, 2)))[0]
        return float(a.origin[1] + a.voxel_mm * rows.max() + 12.0)

    def time_of(self, index: int) -> float:
        return index / self.config.rate_hz

    def key_of(self, index: int) -> int:
        return index - index % self.config.key_every

    def probe_to_tracker(self, index: int) -> np.ndarray:
        """Probe pose at frame ``index``: x lateral (inferior), y depth (posterior), z elevation."""
        cfg = self.config
        t = self.time_of(index)
        offset, tilt = 0.0, 0.0
        if cfg.path == "sweep" and cfg.sweep_range_mm > 0:
            # Triangle wave across the organ, left-right, with the probe fanning a few degrees.
            period = 2 * cfg.sweep_range_mm / max(cfg.sweep_speed_mm_s, 1e-9)
            phase = (t / period + 0.25) % 1.0
            offset = cfg.sweep_range_mm * (2 * abs(phase - 0.5) - 0.5)
            tilt = np.deg2rad(8.0) * offset / cfg.sweep_range_mm
        c, s = np.cos(tilt), np.sin(tilt)
        x_axis = np.array([0.0, 0.0, -1.0])
        y_axis = np.array([-s, -c, 0.0])
        z_axis = np.cross(x_axis, y_axis)
        pose = np.eye(4)
        pose[:3, 0], pose[:3, 1], pose[:3, 2] = x_axis, y_axis, z_axis
        lesion = self.anatomy.lesion_center
        pose[:3, 3] = [lesion[0] + offset, self._skin_y, lesion[2]]
        return pose

    def ijk_to_ras(self, index: int) -> np.ndarray:
        return self.probe_to_tracker(index) @ self._pixel_to_probe

    def _reference_coarse(self, index: int) -> np.ndarray:
        """Reference RAS of the coarse grid pixels of frame ``index`` (ny×nx×3)."""
        m = self.ijk_to_ras(index)
        px = self.grid.pixels
        ras = px[..., 0:1] * m[:3, 0] + px[..., 1:2] * m[:3, 1] + m[:3, 3]
        return self.motion.inverse(ras, self.time_of(index))

    # --- rendering ------------------------------------------------------------------------
    def reference_positions(self, index: int) -> np.ndarray:
        """Reference RAS (H×W×3 float32) of every pixel of frame ``index``."""
        return self.grid.upsample(self._reference_coarse(index))

    def _coarse_tissue(self, index: int) -> np.ndarray:
        """Reference RAS and slow tissue texture on the coarse grid (ny×nx×4), to upsample."""
        coarse = self._reference_coarse(index)
        texture = _value_noise(coarse, TEXTURE_CELL_MM)
        return np.concatenate([coarse, texture[..., None]], axis=-1)

    def render(self, index: int, out: np.ndarray | None = None, truth: bool = True) -> UsFrame:
        """Frame ``index``: the B-mode image (into ``out`` when given) and, with ``truth``, flow."""
        cfg = self.config
        a = self.anatomy
        t = self.time_of(index)
        coarse = self._coarse_tissue(index)
        fine = self.grid.upsample(coarse)
        x_ref = fine[..., :3]
        labels = sample_labels(a.labels, a.origin, a.voxel_mm, x_ref)
        image = out if out is not None else np.empty((cfg.height, cfg.width), np.uint8)
        if self.sector is None:
            np.copyto(image, self._echo(index, labels, x_ref, fine[..., 3]), casting="unsafe")
        else:
            beam = self.grid.upsample(coarse, self._beam_maps)
            beam_labels = sample_labels(a.labels, a.origin, a.voxel_mm, beam[..., :3])
            echo = self._echo(index, beam_labels, beam[..., :3], beam[..., 3])
            # Scan conversion: pixels off the sector read the constant border, i.e. black.
            shown = cv2.remap(echo, *self._scan_maps, cv2.INTER_LINEAR, borderValue=0)
            np.copyto(image, shown, casting="unsafe")
            labels[~self.fov] = 0

        probe_to_tracker = self.probe_to_tracker(index)
        ijk_to_ras = probe_to_tracker @ self._pixel_to_probe
        targets = self.motion.forward(a.targets, t)
        ijk = np.linalg.solve(ijk_to_ras, np.c_[targets, np.ones(len(targets))].T).T
        if self.sector is None:
            in_fov = (ijk[:, 0] >= -0.5) & (ijk[:, 0] <= cfg.width - 0.5)
            in_fov &= (ijk[:, 1] >= -0.5) & (ijk[:, 1] <= cfg.height - 0.5)
        else:
            in_fov = self.sector.inside(ijk[:, 0], ijk[:, 1])
        key = self.key_of(index)
        flow = self.flow(key, index) if truth else np.zeros((0, 0, 2), np.float32)
        return UsFrame(
            index=index,
            time_s=t,
            image=image,
            labels=labels,
            flow=flow,
            key_index=key,
            probe_to_tracker=probe_to_tracker,
            image_to_probe=self.image_to_probe.copy(),
            ijk_to_ras=ijk_to_ras,
            spacing=cfg.spacing,
            target_ids=a.target_ids,
            targets_ras=targets,
            target_pixels=ijk[:, :2],
            target_out_of_plane_mm=ijk[:, 2],
            target_in_fov=in_fov,
        )

    def _echo(
        self, index: int, labels: np.ndarray, x_ref: np.ndarray, texture: np.ndarray
    ) -> np.ndarray:
        """Display grey levels (float32, 0..255) on the beam grid: rows are samples along a beam,
        columns are beams, with the tissue's labels, reference RAS and texture there."""
        cells = np.floor(x_ref * np.float32(1 / SCATTER_CELL_MM)).astype(np.int32)
        re, im = _hash_pair(cells)
        amp = SCATTER[labels] * (np.float32(1) + PATCHINESS[labels] * texture)
        rows = self._wall_rows
        amp[:rows] *= np.where(labels[:rows] == 0, self._wall[:rows], np.float32(1))
        # Specular echoes where the impedance changes along the beam (capsule, vessel walls).
        z = IMPEDANCE[labels]
        spec = np.zeros_like(z)
        spec[1:] = np.abs(z[1:] - z[:-1])
        spec[:-1] += spec[1:]
        re = re * amp + spec * np.float32(5.0)
        im = im * amp
        sigma_x, sigma_y = self._psf
        re = cv2.GaussianBlur(re, (0, 0), sigmaX=sigma_x, sigmaY=sigma_y)
        im = cv2.GaussianBlur(im, (0, 0), sigmaX=sigma_x, sigmaY=sigma_y)
        env = cv2.magnitude(re, im)
        env *= self._gain

        # Attenuation along each beam: absorption plus what strong reflectors take away.
        loss = ATTENUATION[labels] * self._sample_mm + spec * np.float32(0.25)
        # Column sums of an integral image: an order of magnitude faster than np.cumsum(axis=0).
        integral = cv2.integral(loss, sdepth=cv2.CV_32F)
        loss = integral[1:, 1:] - integral[1:, :-1]
        env *= np.exp(-loss) * self._tgc

        rng = np.random.default_rng([self.seed, 0x05, index])
        noise = rng.standard_normal((2, *env.shape), dtype=np.float32)
        env = cv2.magnitude(env + noise[0] * np.float32(0.02), noise[1] * np.float32(0.02))
        db = np.log10(env + np.float32(1e-6)) * np.float32(20.0)
        # 0 dB = rms echo of SCATTER 1; map [floor, floor + DR] dB to 0..255.
        scale = 255.0 / DYNAMIC_RANGE_DB
        return np.clip((db - np.float32(DISPLAY_FLOOR_DB)) * np.float32(scale), 0, 255, out=db)

    def flow(self, key: int, index: int) -> np.ndarray:
        """In-plane displacement (pixels) from frame ``key`` to frame ``index`` on the key grid.

        A key pixel's tissue point is moved to time t and projected into the current image
        plane; the out-of-plane part of the motion is dropped (it is small for a sagittal plane).
        """
        if self._key_cache is None or self._key_cache[0] != key:
            self._key_cache = (key, self._reference_coarse(key))
        x_now = self.motion.forward(self._key_cache[1], self.time_of(index))
        inv = np.linalg.inv(self.ijk_to_ras(index))
        ij = x_now @ inv[:2, :3].T + inv[:2, 3]
        return self.grid.upsample(ij - self.grid.pixels)
