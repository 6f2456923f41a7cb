"""Scores 2D/3D fluoroscopy-to-model registration on held-out phantom seeds.

Per seed: the preoperative model is the undeformed anatomy's organ, vessel and lesion surfaces
(:func:`~igtflow.registration.evaluate.phantom_preop_case`); the C-arm looks at the breathing,
deforming phantom from one of three poses (AP, LAO 30 / caudal 15, RAO 25 / cranial 10, by seed),
and the phantom's true fluoroscopy label maps feed a
:class:`~igtflow.registration.fluoro_registration.FluoroRegistrar` started from a known
misalignment and tracked frame to frame.

Errors per target and update, against where the phantom says the target is at that frame:
- projected: between the projected estimate and the true pixel, in mm at the isocentre plane;
- in-plane: the 3D error across the ray through the true target; out-of-plane: along it, beside
  the SD the registrar states for it.
Capture range: the largest starting misalignment, from a short list (seed of the first), after
which the last of a few tracked updates is valid with every in-plane error within
``capture_mm``. False valid rate: estimates called valid on hopeless input (an empty label map, a
blank frame, another seed's model on this seed's frames, random blobs), on every seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from igtflow.registration.evaluate import (
    DEFAULT_SEEDS,
    misalignment,
    parse_seeds,
    phantom_preop_case,
)
from igtflow.registration.fluoro_contours import round_field
from igtflow.registration.fluoro_registration import FluoroEstimate, FluoroRegistrar
from igtflow.stream.messages import Image

POSES = ((0.0, 0.0), (30.0, -15.0), (-25.0, 10.0))  # (LAO, cranial) degrees, by seed
MISALIGNMENTS = ((10.0, 10.0), (20.0, 15.0), (30.0, 15.0), (40.0, 20.0), (50.0, 25.0))
HOPELESS = ("empty", "blank", "other_seed_model", "random_blobs")


@dataclass
class _Errors:
    projected: list[float]
    in_plane: list[float]
    out_of_plane: list[float]
    stated_sd: list[float]


def fluoro_sim(seed: int, contrast: bool = False) -> Any:
    """The phantom's fluoroscopy of seed ``seed`` from its C-arm pose in POSES."""
    from igtflow.stream.phantom.anatomy import build_anatomy
    from igtflow.stream.phantom.carm import CArmGeometry
    from igtflow.stream.phantom.fluoro import FluoroConfig, FluoroSim

    lao, cranial = POSES[seed % len(POSES)]
    center = tuple(build_anatomy(seed).organ_center)
    geometry = CArmGeometry(lao_deg=lao, cranial_deg=cranial, isocenter=center)
    return FluoroSim(seed, geometry, FluoroConfig(contrast=contrast))


def label_image(sim: Any, index: int, network: Any = None) -> tuple[Image, Any]:
    """Frame ``index``'s label map with the C-arm geometry in its meta, and the frame: the
    phantom's true labels, or those ``network`` (a fluoroscopy segmentation Predictor) sees."""
    frame = sim.render(index, truth=False)
    meta = {"index": index, "seed": sim.seed, **sim.geometry.meta()}
    labels = frame.labels if network is None else network_labels(network, frame.image)
    image = Image(data=labels, modality="LABELS", spacing=(0.6, 0.6), meta=meta)
    return image, frame


def network_labels(predictor: Any, pixels: np.ndarray) -> np.ndarray:
    """The segmentation network's label map of a fluoroscopy frame, as the ``segment`` node
    makes it (phantom label ids; the lesion shows as organ)."""
    from igtflow.perception.frames import network_input
    from igtflow.perception.outputs import labels_on, segmentation_maps

    card = predictor.card
    plane = network_input(pixels, card.input, card.normalisation)
    logits = predictor(plane[None, None])
    labels, _ = segmentation_maps(logits[0], card.label_ids(), card.confidence)
    return labels_on(labels, pixels.shape[:2])


def eval_fluoro_network(
    seeds: str | list[int] = DEFAULT_SEEDS,
    frames: int = 90,
    every: int = 3,
    start: tuple[float, float] = (10.0, 10.0),
    model: str = "fluoro-seg",
) -> dict[str, Any]:
    """The tracking figures of :func:`eval_fluoro` on the shipped segmentation network's label
    maps of contrast-filled frames instead of the truth (keys ``fluoro_seg_*``). The network
    draws the lesion as organ, so the model's vessel outlines leave the lesion out, and it sees
    the organ's faint shadow poorly: the vessels are fitted alone."""
    from igtflow.perception.inference import Predictor
    from igtflow.registration.fluoro_model import FluoroModel

    cv2.setNumThreads(1)
    predictor = Predictor(model, device="cpu", threads=1)
    errors = _Errors([], [], [], [])
    valid = []
    for seed in parse_seeds(seeds):
        case = FluoroModel.from_case(phantom_preop_case(seed), vessel_structures=("vessel",))
        sim = fluoro_sim(seed, contrast=True)
        init = misalignment(*start, sim.anatomy.organ_center, seed)
        registrar = FluoroRegistrar(case, init=init, silhouette=False)
        for index in range(0, frames, every):
            image, frame = label_image(sim, index, predictor)
            estimate = registrar.update(image)
            valid.append(estimate.valid)
            if estimate.valid:
                score(estimate, frame, errors)

    def stat(values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else float("nan")

    return {
        "fluoro_seg_model": model,
        "fluoro_seg_projected_mm": stat(errors.projected, 50),
        "fluoro_seg_projected_p95_mm": stat(errors.projected, 95),
        "fluoro_seg_tre_mm": stat(errors.in_plane, 50),
        "fluoro_seg_tre_p95_mm": stat(errors.in_plane, 95),
        "fluoro_seg_out_of_plane_mm": stat(errors.out_of_plane, 50),
        "fluoro_seg_valid_fraction": float(np.mean(valid)) if valid else 0.0,
        "fluoro_seg_updates": len(valid),
    }


def score(estimate: FluoroEstimate, frame: Any, errors: _Errors) -> float:
    """Add the estimate's errors per target; return its worst in-plane error (mm)."""
    g = frame.geometry
    iso = g.pixel_spacing_mm * g.sod_mm / g.sid_mm
    worst = 0.0
    for name, truth, pixel in zip(
        frame.target_ids, frame.targets_ras, frame.target_pixels, strict=True
    ):
        error = estimate.targets[name] - truth
        ray = g.ray_directions(pixel[None])[0]
        along = float(error @ ray)
        across = float(np.linalg.norm(error - along * ray))
        errors.projected.append(
            float(np.linalg.norm(estimate.projected_targets[name] - pixel)) * iso
        )
        errors.in_plane.append(across)
        errors.out_of_plane.append(abs(along))
        errors.stated_sd.append(estimate.out_of_plane_sd_mm)
        worst = max(worst, across)
    return worst


def capture(
    case: Any, sim: Any, seed: int, capture_mm: float, frames: int = 4
) -> tuple[float, float]:
    """The largest (mm, degrees) of MISALIGNMENTS from which tracking ends valid and close."""
    captured = (0.0, 0.0)
    for shift, angle in MISALIGNMENTS:
        init = misalignment(shift, angle, sim.anatomy.organ_center, seed + 1)
        registrar = FluoroRegistrar(case, init=init)
        for index in range(frames):
            image, frame = label_image(sim, 3 * index)
            estimate = registrar.update(image)
        worst = score(estimate, frame, _Errors([], [], [], []))
        if not (estimate.valid and worst <= capture_mm):
            break
        captured = (shift, angle)
    return captured


def hopeless(case: Any, other_case: Any, sim: Any, seed: int) -> list[bool]:
    """Validity on input that cannot match ``case`` (see HOPELESS)."""
    image, _ = label_image(sim, 0)
    shape = image.data.shape
    rng = np.random.default_rng(seed)
    blobs = np.zeros(shape, np.uint8)
    for _ in range(12):
        center = tuple(int(c) for c in rng.integers(60, 450, 2))
        axes = tuple(int(a) for a in rng.integers(10, 80, 2))
        cv2.ellipse(
            blobs, center, axes, float(rng.uniform(0, 180)), 0, 360, int(rng.integers(1, 5)), -1
        )
    inputs = [
        (case, np.zeros(shape, np.uint8)),
        (case, round_field(*shape).astype(np.uint8)),
        (other_case, image.data),
        (case, blobs),
    ]
    return [FluoroRegistrar(model).update(image.with_data(data)).valid for model, data in inputs]


def eval_fluoro(
    seeds: str | list[int] = DEFAULT_SEEDS,
    frames: int = 90,
    every: int = 3,
    start: tuple[float, float] = (10.0, 10.0),
    capture_mm: float = 2.5,
    hopeless_seeds: int = 10,
) -> dict[str, Any]:
    """Fluoroscopy registration figures over ``seeds`` (see the module docstring); ``start`` is
    the (mm, degrees) misalignment tracking starts from. Updates run on one thread (OpenCV's
    too); ``fluoro_hz`` counts their CPU time, so that other load on a shared machine does not,
    and ``fluoro_update_ms`` is the wall clock."""
    cv2.setNumThreads(1)
    seed_list = parse_seeds(seeds)
    errors = _Errors([], [], [], [])
    valid, ms, cpu_ms, false_valid = [], [], [], []
    captured = (0.0, 0.0)
    cases = {}
    for n, seed in enumerate(seed_list):
        case = cases.pop(seed, None) or phantom_preop_case(seed)
        sim = fluoro_sim(seed)
        registrar = FluoroRegistrar(case, init=misalignment(*start, sim.anatomy.organ_center, seed))
        for index in range(0, frames, every):
            image, frame = label_image(sim, index)
            estimate = registrar.update(image)
            valid.append(estimate.valid)
            ms.append(estimate.time_ms)
            cpu_ms.append(estimate.cpu_ms)
            if estimate.valid:
                score(estimate, frame, errors)
        if n == 0:
            captured = capture(case, sim, seed, capture_mm)
        if n < hopeless_seeds:
            other_seed = seed_list[n + 1] if n + 1 < len(seed_list) else seed + 1
            cases[other_seed] = phantom_preop_case(other_seed)
            false_valid += hopeless(case, cases[other_seed], sim, seed)
    return summary(errors, valid, (ms, cpu_ms), false_valid, captured, seed_list, start)


def summary(
    errors: _Errors,
    valid: list[bool],
    times: tuple[list[float], list[float]],
    false_valid: list[bool],
    captured: tuple[float, float],
    seeds: list[int],
    start: tuple[float, float],
) -> dict[str, Any]:
    def stat(values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else float("nan")

    ms, cpu_ms = times
    kinds = len(HOPELESS)
    return {
        "fluoro_seeds": seeds,
        "fluoro_projected_mm": stat(errors.projected, 50),
        "fluoro_projected_p95_mm": stat(errors.projected, 95),
        "fluoro_tre_mm": stat(errors.in_plane, 50),
        "fluoro_tre_p95_mm": stat(errors.in_plane, 95),
        "fluoro_out_of_plane_mm": stat(errors.out_of_plane, 50),
        "fluoro_out_of_plane_p95_mm": stat(errors.out_of_plane, 95),
        "fluoro_out_of_plane_sd_mm": stat(errors.stated_sd, 50),
        "fluoro_out_of_plane_sd_p95_mm": stat(errors.stated_sd, 95),
        "fluoro_hz": 1e3 / stat(cpu_ms, 50),
        "fluoro_update_cpu_ms": stat(cpu_ms, 50),
        "fluoro_update_cpu_p95_ms": stat(cpu_ms, 95),
        "fluoro_update_ms": stat(ms, 50),
        "fluoro_update_p95_ms": stat(ms, 95),
        "fluoro_valid_fraction": float(np.mean(valid)) if valid else 0.0,
        "fluoro_updates": len(valid),
        "fluoro_start_misalignment": {"mm": start[0], "deg": start[1]},
        "fluoro_capture_mm": captured[0],
        "fluoro_capture_deg": captured[1],
        "fluoro_false_valid_rate": float(np.mean(false_valid)) if false_valid else float("nan"),
        "fluoro_false_valid": {
            kind: int(sum(false_valid[i::kinds])) for i, kind in enumerate(HOPELESS)
        },
        "fluoro_hopeless_trials": len(false_valid),
        "fluoro_labels": "phantom truth labels",
        "fluoro_scope": "rigid; depth mostly from the initial pose (fluoro_out_of_plane_sd_mm)",
    }
