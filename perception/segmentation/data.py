"""Training and held-out frames for the segmentation networks: the phantom, user folders, garbage.

Frames come from the phantom (``UltrasoundSim`` 256², ``FluoroSim`` 512²) rendered on the fly
into a pool per run and cached on disk (the anatomy of one seed takes seconds to build, a frame a
tenth of that), then cropped and augmented per step. Training seeds are below 1000; held-out
seeds start at 1001 (a user's own labelled frames are read by ``user_data``).
Out-of-distribution frames (noise, black, smooth textures) are drawn here too: the net learns to
answer them with a flat softmax, i.e. low confidence.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from igtflow.stream.phantom.anatomy import BACKGROUND, DEVICE, LESION, ORGAN, VESSEL, build_anatomy

TRAIN_SEED_LIMIT = 1000
HELD_OUT_SEEDS = "1001-1010"


@dataclass(frozen=True)
class TaskSpec:
    """One segmentation task: modality, frame size, output classes and the crop used to train."""

    name: str
    modality: str
    size: int
    classes: tuple[str, ...]  # phantom label names, class order
    crop: int
    batch: int
    class_weights: tuple[float, ...]  # cross-entropy weights: the thin catheter counts more


TASKS = {
    "us-seg": TaskSpec(
        "us-seg", "US", 256, ("background", "organ", "vessel", "lesion"), 128, 8, (1, 1, 2, 2)
    ),
    "fluoro-seg": TaskSpec(
        "fluoro-seg", "XA", 512, ("background", "organ", "vessel", "device"), 192, 4, (1, 1, 2, 6)
    ),
}


def task_spec(task: str) -> TaskSpec:
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    return TASKS[task]


def to_classes(task: str, labels: np.ndarray, contrast: bool = True) -> np.ndarray:
    """Phantom label ids → the task's class indices.

    Ultrasound: the catheter shows as vessel. Fluoroscopy: the lesion is organ (no contrast of its
    own), and vessels are organ unless contrast fills them (they are invisible otherwise).
    """
    lut = np.zeros(256, np.uint8)
    if task == "us-seg":
        lut[[ORGAN, VESSEL, LESION, DEVICE]] = (1, 2, 3, 2)
    else:
        lut[[ORGAN, VESSEL, LESION, DEVICE]] = (1, 2 if contrast else 1, 1, 3)
    lut[BACKGROUND] = 0
    return lut[labels]


def parse_seeds(text: str) -> list[int]:
    """``"1001-1010"`` or ``"3,5,9-11"`` → the seeds listed."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = (int(v) for v in part.split("-", 1))
            if hi < lo:
                raise ValueError(f"seed range {part!r} runs backwards")
            seeds.extend(range(lo, hi + 1))
        elif part:
            seeds.append(int(part))
    if not seeds:
        raise ValueError(f"no seeds in {text!r}; give e.g. 1001-1010")
    return seeds


def cache_dir() -> Path:
    """Where rendered phantom frames are kept between runs (``IGTFLOW_CACHE`` overrides)."""
    root = Path(os.environ.get("IGTFLOW_CACHE", Path.home() / ".cache" / "igtflow"))
    path = root / "segmentation-frames"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class FrameSet:
    """Frames with their class maps and, for fluoroscopy, the catheter's entry and tip (u, v)."""

    images: np.ndarray  # N×H×W uint8
    targets: np.ndarray  # N×H×W uint8 class indices
    seeds: np.ndarray  # N, the phantom seed of each frame (-1 for user frames)
    entry: np.ndarray  # N×2 pixels, NaN when unknown
    tip: np.ndarray  # N×2 pixels, NaN when unknown
    spacing_mm: float = 1.0  # detector pixel size (fluoroscopy) or mean pixel size (ultrasound)

    def __len__(self) -> int:
        return len(self.images)


def _us_frames(seed: int, indices: list[int], variant: int) -> list[tuple]:
    from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim

    config = UltrasoundConfig()  # held out (variant -1): the default linear probe
    if variant >= 0 and variant % 3 == 2:  # a third of the training seeds: a convex probe
        config = UltrasoundConfig(probe="curvilinear")
    sim = UltrasoundSim(anatomy=build_anatomy(seed), config=config)
    out = []
    for index in indices:
        frame = sim.render(index, truth=False)
        out.append((frame.image.copy(), to_classes("us-seg", frame.labels), None, None))
    return out


def _fluoro_frames(seed: int, indices: list[int], variant: int) -> list[tuple]:
    from igtflow.stream.phantom.carm import CArmGeometry
    from igtflow.stream.phantom.fluoro import FluoroConfig, FluoroSim

    anatomy = build_anatomy(seed)
    if variant < 0:  # held out: the default view, contrast on so vessels can be scored
        geometry, config = None, FluoroConfig(contrast=True)
    else:
        rng = np.random.default_rng([seed, 0x5E6])
        geometry = CArmGeometry(
            isocenter=tuple(anatomy.organ_center),
            lao_deg=float(rng.uniform(-25, 25)),
            cranial_deg=float(rng.uniform(-15, 15)),
        )
        config = FluoroConfig(
            contrast=bool(variant % 3 != 1), dose=float(rng.choice([800.0, 3000.0, 10000.0]))
        )
    sim = FluoroSim(anatomy=anatomy, geometry=geometry, config=config)
    out = []
    for index in indices:
        frame = sim.render(index, truth=False)
        t = sim.time_of(index)
        ends = sim.geometry.project(sim.motion.forward(anatomy.catheter[[0, -1]], t))
        labels = to_classes("fluoro-seg", frame.labels, config.contrast)
        out.append((frame.image.copy(), labels, ends[0], ends[1]))
    return out


def phantom_frames(
    task: str, seeds: list[int], frames_per_seed: int, held_out: bool, progress=None
) -> FrameSet:
    """Frames spread over the breathing/sweep cycle of each seed, cached on disk by content key."""
    spec = task_spec(task)
    key = f"{task}-{'held' if held_out else 'train'}-{seeds[0]}-{seeds[-1]}-{len(seeds)}"
    key += f"-{frames_per_seed}-{hashlib.sha1(str(seeds).encode()).hexdigest()[:8]}"
    key += "-v2" if held_out else "-v1"
    path = cache_dir() / f"{key}.npz"
    if path.is_file():
        data = np.load(path)
        return FrameSet(**{k: data[k] for k in data.files if k != "spacing_mm"}, **_spacing(task))
    render = _us_frames if task == "us-seg" else _fluoro_frames
    rows: list[tuple] = []
    seed_of: list[int] = []
    for n, seed in enumerate(seeds):
        if not held_out and seed >= TRAIN_SEED_LIMIT:
            raise ValueError(f"training seed {seed} is not below {TRAIN_SEED_LIMIT} (held out)")
        # A 10 s cycle: the sweep goes out and back (US) / five breaths (fluoro), 30 fps.
        rng = np.random.default_rng([seed, 0x5E9])
        if held_out:
            indices = [int(i) for i in np.linspace(0, 299, frames_per_seed).round()]
        else:
            indices = sorted(int(i) for i in rng.integers(0, 300, frames_per_seed))
        frames = render(seed, indices, -1 if held_out else n)
        rows.extend(frames)
        seed_of.extend([seed] * len(frames))
        if progress is not None:
            progress(n + 1, len(seeds))
    nan2 = np.full(2, np.nan)
    result = FrameSet(
        images=np.stack([r[0] for r in rows]),
        targets=np.stack([r[1] for r in rows]),
        seeds=np.array(seed_of),
        entry=np.stack([nan2 if r[2] is None else r[2] for r in rows]),
        tip=np.stack([nan2 if r[3] is None else r[3] for r in rows]),
        **_spacing(task),
    )
    assert result.images.shape[1:] == (spec.size, spec.size)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # two trainings may render the same pool
    np.savez(tmp, images=result.images, targets=result.targets, seeds=result.seeds,
             entry=result.entry, tip=result.tip)  # fmt: skip
    tmp.replace(path)
    return result


def _spacing(task: str) -> dict:
    if task == "fluoro-seg":
        from igtflow.stream.phantom.carm import CArmGeometry

        return {"spacing_mm": CArmGeometry().pixel_spacing_mm}
    from igtflow.stream.phantom.ultrasound import UltrasoundConfig

    return {"spacing_mm": float(np.mean(UltrasoundConfig().spacing))}


# --- user data ---------------------------------------------------------------------------------
# --- augmentation and garbage --------------------------------------------------------------------
def out_of_distribution(rng: np.random.Generator, size: int) -> np.ndarray:
    """A frame unlike any scan: noise, black, flat grey, or a smooth random texture."""
    kind = rng.integers(0, 5)
    if kind == 0:
        return rng.integers(0, 256, (size, size), dtype=np.uint8)
    if kind == 1:
        return np.full((size, size), rng.integers(0, 12), np.uint8)
    if kind == 2:
        return np.full((size, size), rng.integers(12, 256), np.uint8)
    # Natural-ish: noise blurred at a random scale, stretched to a random contrast.
    noise = rng.standard_normal((size, size)).astype(np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), float(rng.uniform(1.0, 24.0)))
    texture = (texture - texture.mean()) / (texture.std() + 1e-6)
    if kind == 4:  # with edges, like a photograph's objects
        texture = np.where(texture > rng.uniform(-0.5, 0.5), 1.0, -1.0) + 0.3 * texture
    out = 128 + rng.uniform(20, 90) * texture + rng.normal(0, rng.uniform(0, 20), texture.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gain, gamma, blur and noise within what another scanner setting could plausibly give."""
    x = image.astype(np.float32) / 255.0
    x = np.power(x, np.float32(rng.uniform(0.75, 1.35)))
    x *= np.float32(rng.uniform(0.7, 1.3))
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.4, 1.2)))
    if rng.random() < 0.5:
        x += rng.normal(0, rng.uniform(0.0, 0.04), x.shape).astype(np.float32)
    return np.clip(x * 255.0, 0, 255).astype(np.uint8)


def crop_pair(
    image: np.ndarray, target: np.ndarray, size: int, rng: np.random.Generator, focus: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """A random crop (a small shift, for a net that sees whole frames), centred on class ``focus``
    half the time when it is present, so thin rare structures are seen often enough."""
    h, w = image.shape
    if size >= h:
        return image, target
    cy, cx = rng.integers(size // 2, h - size // 2 + 1), rng.integers(size // 2, w - size // 2 + 1)
    if focus is not None and rng.random() < 0.5:
        ys, xs = np.nonzero(target == focus)
        if len(ys):
            pick = rng.integers(len(ys))
            cy = int(
                np.clip(
                    ys[pick] + rng.integers(-size // 4, size // 4 + 1), size // 2, h - size // 2
                )
            )
            cx = int(
                np.clip(
                    xs[pick] + rng.integers(-size // 4, size // 4 + 1), size // 2, w - size // 2
                )
            )
    y0, x0 = cy - size // 2, cx - size // 2
    return image[y0 : y0 + size, x0 : x0 + size], target[y0 : y0 + size, x0 : x0 + size]
