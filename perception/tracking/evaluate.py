"""Scoring the tracker against the phantom's truth, side by side with OpenCV's DIS optical flow.

Frames: per held-out seed (default 1001–1010, never trained on) the default linear probe held
over the lesion of the breathing phantom (path ``static``: tracking a target during an
intervention), a key frame every 30 frames and the frames 10, 20 and 29 after it, so motion from
a few pixels to the largest the node sees before it re-keys. The same frames with the probe
sweeping are scored too (keys ``sweep_…``); there the plane moves ~0.3 mm a frame, more than the
phantom's 0.2 mm scatterer cell, so the speckle is new in every frame, the targets lie up to
~35 mm off the plane, and the in-plane motion is barely visible in the image: zero flow scores
about as well as DIS. Figures:

- end-point error (px): |predicted − true flow| averaged over tissue pixels (key labels > 0);
- target error (mm): the phantom's targets at the key frame moved by the field (bilinear at the
  key position), against their true pixels in the current frame, times the pixel spacing; the
  median over every target inside the image in both frames.

DIS (presets fast and medium) runs as ``calc(key, current)``: the same flow convention.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
import torch

from igtflow.perception.card import card_path_for, load_card
from igtflow.perception.tracking.pairs import Pair, held_out_pairs, normalise
from igtflow.perception.tracking.targets import confidence_of, move_targets
from igtflow.perception.tracking.train import GOOD_PX

DEFAULT_SEEDS = "1001-1010"
CALIBRATION_BINS = 10
SHIPPED = Path(__file__).resolve().parent.parent / "weights"
Tracker = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]]


def parse_seeds(seeds: str | Iterable[int]) -> list[int]:
    """``"1001-1010"`` or ``"3,5,9-11"`` (or a list of ints) → the seeds, in order."""
    if not isinstance(seeds, str):
        return [int(s) for s in seeds]
    out: list[int] = []
    for part in seeds.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"seeds: {part!r} is not a seed or a range A-B (e.g. 1001-1010)")
        out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return out


def resolve_weights(weights_or_card: str | Path) -> Path:
    """A shipped name (``tracker``), a card or a weights file → the checked weights' path."""
    path = Path(weights_or_card)
    if not path.suffix and not path.exists():
        path = SHIPPED / f"{weights_or_card}.pt"
    card = path if path.name.endswith(".card.yaml") else card_path_for(path)
    if card.is_file():
        return load_card(card)[1]
    return path


def torch_tracker(weights_or_card: str | Path) -> Tracker:
    """The network as ``(key, current) → (flow H×W×2, confidence H×W)``, one thread, batch 1."""
    torch.set_num_threads(1)
    model = torch.jit.load(str(resolve_weights(weights_or_card)), map_location="cpu").eval()

    def track(key: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(np.stack([normalise(key), normalise(current)])[None])
        with torch.inference_mode():
            out = model(x)[0].numpy()
        return np.ascontiguousarray(out[:2].transpose(1, 2, 0)), confidence_of(out[2])

    return track


def dis_tracker(preset: str) -> Tracker:
    """OpenCV DIS optical flow, preset ``fast`` or ``medium``, as a tracker without confidence."""
    cv2.setNumThreads(1)
    code = {"fast": cv2.DISOPTICAL_FLOW_PRESET_FAST, "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    dis = cv2.DISOpticalFlow_create(code[preset])

    def track(key: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, None]:
        return dis.calc(key, current, None), None

    return track


def target_errors_mm(pair: Pair, flow: np.ndarray) -> np.ndarray:
    """Distance (mm) between each target moved by ``flow`` and its true current pixel, for the
    targets inside the image in the key and the current frame."""
    inside = pair.key.target_in_fov & pair.current.target_in_fov
    moved = move_targets(pair.key.target_pixels[inside], flow)
    delta = (moved - pair.current.target_pixels[inside]) * np.asarray(pair.current.spacing)
    return np.hypot(delta[:, 0], delta[:, 1])


def _add_to_bins(bins: np.ndarray, confidence: np.ndarray, good: np.ndarray) -> None:
    index = np.minimum((confidence * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    bins[0] += np.bincount(index, minlength=CALIBRATION_BINS)
    bins[1] += np.bincount(index, weights=confidence, minlength=CALIBRATION_BINS)
    bins[2] += np.bincount(index, weights=good.astype(float), minlength=CALIBRATION_BINS)


def score_pairs(pairs: list[Pair], trackers: dict[str, Tracker]) -> dict[str, dict[str, float]]:
    """Per tracker: mean EPE over tissue pixels, median and 90th-percentile target error (mm),
    mean confidence and its expected calibration error (against "error < GOOD_PX", 10 bins)
    where the tracker gives one, and latency p50/p99 (ms). The trackers take
    turns on each pair, so a busy machine slows them alike and the latencies compare."""
    epe_sum = dict.fromkeys(trackers, 0.0)
    epe_count = dict.fromkeys(trackers, 0)
    targets: dict[str, list[np.ndarray]] = {name: [] for name in trackers}
    confidences: dict[str, list[float]] = {name: [] for name in trackers}
    times: dict[str, list[float]] = {name: [] for name in trackers}
    # Per confidence bin: pixel count, summed confidence, pixels whose error is below GOOD_PX.
    bins = {name: np.zeros((3, CALIBRATION_BINS)) for name in trackers}
    for track in trackers.values():
        for pair in pairs[:3]:  # warm-up: TorchScript optimises on its first calls
            track(pair.key.image, pair.current.image)
    for pair in pairs:
        tissue = pair.key.labels > 0
        for name, track in trackers.items():
            started = time.perf_counter()
            flow, confidence = track(pair.key.image, pair.current.image)
            times[name].append(time.perf_counter() - started)
            epe = np.hypot(*(flow - pair.flow).transpose(2, 0, 1))
            epe_sum[name] += float(epe[tissue].sum())
            epe_count[name] += int(tissue.sum())
            targets[name].append(target_errors_mm(pair, flow))
            if confidence is not None:
                confidences[name].append(float(confidence[tissue].mean()))
                _add_to_bins(bins[name], confidence[tissue], epe[tissue] < GOOD_PX)
    out: dict[str, dict[str, float]] = {}
    for name in trackers:
        errors = np.concatenate(targets[name]) if pairs else np.zeros(0)
        figures = {
            "epe_px": epe_sum[name] / max(epe_count[name], 1),
            "median_mm": float(np.median(errors)) if errors.size else float("nan"),
            "p90_mm": float(np.percentile(errors, 90)) if errors.size else float("nan"),
            "p50_ms": float(np.percentile(times[name], 50) * 1e3) if pairs else float("nan"),
            "p99_ms": float(np.percentile(times[name], 99) * 1e3) if pairs else float("nan"),
        }
        if confidences[name]:
            figures["confidence"] = float(np.mean(confidences[name]))
            count, total, good = bins[name]
            gap = np.abs(total - good)  # per bin: count × |mean confidence − accuracy|
            figures["calibration_error"] = float(gap.sum() / max(count.sum(), 1.0))
        out[name] = figures
    return out


def evaluate_tracking(
    weights_or_card: str | Path = "tracker",
    seeds: str | Iterable[int] = DEFAULT_SEEDS,
    keys: int = 4,
    gaps: tuple[int, ...] = (10, 20, 29),
    progress: bool = False,
    sweep: bool = True,
) -> dict[str, float]:
    """Tracking figures on held-out seeds for the network and DIS fast/medium on the same frames.

    Keys: ``track_median_mm``, ``dis_median_mm`` (DIS medium), ``dis_fast_median_mm``,
    ``track_epe_px``, ``dis_epe_px``, ``dis_fast_epe_px``, ``track_p90_mm``, ``dis_p90_mm``,
    ``track_confidence``, ``track_calibration_error``, ``track_p50_ms``/``track_p99_ms`` and
    ``dis_p99_ms`` (latency on these frames, one thread), ``pairs``; the same prefixed
    ``sweep_`` for the sweeping probe when ``sweep`` is true.
    """
    seed_list = parse_seeds(seeds)
    for seed in seed_list:
        if seed < 1000:
            raise ValueError(f"seed {seed} is a training seed (< 1000); evaluate on 1000 and up")
    trackers = {
        "track": torch_tracker(weights_or_card),
        "dis": dis_tracker("medium"),
        "dis_fast": dis_tracker("fast"),
    }
    out: dict[str, float] = {}
    for path, prefix in (("static", ""), ("sweep", "sweep_"))[: 2 if sweep else 1]:
        pairs: list[Pair] = []
        for seed in seed_list:
            if progress:
                print(f"rendering seed {seed} ({path})", flush=True)
            pairs.extend(held_out_pairs(seed, keys, gaps, path=path))
        out[f"{prefix}pairs"] = float(len(pairs))
        for name, figures in score_pairs(pairs, trackers).items():
            for key, value in figures.items():
                out[f"{prefix}{name}_{key}"] = value
    return out
