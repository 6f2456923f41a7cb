"""Writing the phantom to files Slicer opens: label volume, meshes, truth JSON, sample frames.

``export_phantom(dir, seed)`` writes
  labels.nrrd                 preoperative label volume (uint8, RAS, 0.5 mm, gzip)
  organ|vessel|lesion.vtk/.stl surface meshes in RAS mm (the preoperative 3D model)
  truth.json                  targets, volume geometry, motion, probe calibration, C-arm geometry
  contact_sheet.png           ultrasound and fluoroscopy frames, raw and with the truth drawn on

Each file appears whole or not at all; files already in the folder are kept unless ``force``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from igtflow.stream.atomic_file import atomic_output, check_target
from igtflow.stream.phantom.anatomy import LABEL_NAMES, LESION, ORGAN, VESSEL, Anatomy
from igtflow.stream.phantom.anatomy import build_anatomy as _build
from igtflow.stream.phantom.carm import CArmGeometry
from igtflow.stream.phantom.sheet import contact_sheet, write_png
from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim

MESH_STRUCTURES = (ORGAN, VESSEL, LESION)


class ExportError(RuntimeError):
    """A phantom file could not be written; the message names the file."""


def write_label_volume(anatomy: Anatomy, path: Path) -> Path:
    """The preoperative labels as NRRD with RAS space directions and origin."""
    import nrrd

    header = {
        "type": "uint8",
        "dimension": 3,
        "space": "right-anterior-superior",
        "space directions": np.diag([anatomy.voxel_mm] * 3),
        "space origin": anatomy.origin.astype(float),
        "kinds": ["domain", "domain", "domain"],
        "encoding": "gzip",
    }
    try:
        nrrd.write(str(path), anatomy.preoperative_labels(), header, index_order="F")
    except (OSError, nrrd.NRRDError) as exc:
        raise ExportError(f"{path}: could not write the label volume: {exc}") from exc
    return path


def structure_mesh(anatomy: Anatomy, label: int, target_faces: int = 20000, stride: int = 1) -> Any:
    """A smoothed, decimated surface (vedo Mesh, RAS mm) of one structure by marching cubes.

    ``stride`` 2 samples the label volume at every other voxel (1 mm for the 0.5 mm phantom):
    the surface of a CT-like preoperative model, made about 8 times faster.
    """
    import vedo

    labels = anatomy.preoperative_labels()
    mask = anatomy.organ_mask if label == ORGAN else labels == label
    mask = mask[::stride, ::stride, ::stride]
    volume = vedo.Volume(
        mask.astype(np.float32), spacing=[anatomy.voxel_mm * stride] * 3, origin=anatomy.origin
    )
    mesh = volume.isosurface(0.5).smooth(niter=15)
    if mesh.ncells > target_faces:
        mesh = mesh.decimate(fraction=target_faces / mesh.ncells)
    return mesh.compute_normals()


MESH_SUFFIXES = (".vtk", ".stl")


def write_meshes(anatomy: Anatomy, out_dir: Path, force: bool = False) -> list[Path]:
    """``<structure>.vtk`` and ``.stl`` for organ, vessel and lesion."""
    paths = []
    for label in MESH_STRUCTURES:
        mesh = structure_mesh(anatomy, label)
        for suffix in MESH_SUFFIXES:
            path = out_dir / f"{LABEL_NAMES[label]}{suffix}"
            with atomic_output(path, force) as partial:
                try:
                    mesh.write(str(partial))
                except Exception as exc:  # VTK raises bare errors; name the file instead
                    raise ExportError(f"{path}: could not write the mesh: {exc}") from exc
                if not partial.exists() or partial.stat().st_size == 0:
                    raise ExportError(f"{path}: the mesh writer produced no data")
            paths.append(path)
    return paths


def export_names() -> list[str]:
    """The files ``export_phantom`` writes into its folder."""
    meshes = [f"{LABEL_NAMES[s]}{x}" for s in MESH_STRUCTURES for x in MESH_SUFFIXES]
    return ["labels.nrrd", *meshes, "truth.json", "us_sweep.seq.nrrd", "contact_sheet.png"]


def truth_dict(anatomy: Anatomy, us: UltrasoundSim, carm: CArmGeometry) -> dict[str, Any]:
    """What is true about the phantom, independent of time (per-frame truth is in the frames)."""
    motion = us.motion
    return {
        "seed": anatomy.seed,
        "labels": {str(k): v for k, v in LABEL_NAMES.items()},
        "volume": {
            "shape": list(anatomy.shape),
            "voxel_mm": anatomy.voxel_mm,
            "origin_ras": anatomy.origin.tolist(),
            "ijk_to_ras": anatomy.ijk_to_ras.tolist(),
        },
        "targets": [
            {"id": tid, "ras": pos.tolist()}
            for tid, pos in zip(anatomy.target_ids, anatomy.targets, strict=True)
        ],
        "lesion_radius_mm": anatomy.lesion_radius_mm,
        "motion": {
            "breathing_amplitude_mm": motion.amplitude_mm,
            "breathing_period_s": motion.period_s,
            "deformation_mm": motion.deformation_mm,
            "control_centers": motion.centers.tolist(),
            "control_sigmas_mm": motion.sigmas.tolist(),
            "control_vectors_mm": motion.vectors.tolist(),
            "control_freqs_hz": motion.freqs_hz.tolist(),
            "control_phases": motion.phases.tolist(),
        },
        "ultrasound": {
            "config": asdict(us.config),
            "image_to_probe": us.image_to_probe.tolist(),
            "spacing_mm": list(us.config.spacing),
        },
        "carm": {"width": carm.width, "height": carm.height, **carm.meta()},
    }


def us_case(
    seed: int, n_frames: int, path: str = "sweep", rate_hz: float = 30.0, **motion: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float], np.ndarray]:
    """N ultrasound frames with their poses, for sequence files (e.g. a PLUS ``.seq.nrrd``).

    Returns (frames N×H×W uint8, ProbeToTracker N×4×4, ImageToProbe 4×4, (column, row) spacing
    in mm, stamps N in seconds from the first frame).
    """
    if not isinstance(n_frames, int) or n_frames < 1:
        raise ValueError(f"n_frames must be a whole number >= 1, got {n_frames!r}")
    sim = UltrasoundSim(seed, UltrasoundConfig(path=path, rate_hz=rate_hz), **motion)
    frames, poses = [], []
    for index in range(n_frames):
        frame = sim.render(index, truth=False)
        frames.append(frame.image)
        poses.append(frame.probe_to_tracker)
    stamps = np.arange(n_frames) / rate_hz
    return np.stack(frames), np.stack(poses), sim.image_to_probe, sim.config.spacing, stamps


def write_us_sequence(path: Path, seed: int, n_frames: int = 60, rate_hz: float = 15.0) -> Path:
    """A short tracked sweep as a PLUS ``.seq.nrrd`` that 3D Slicer's Sequences module plays,
    with ``ImageToProbe`` and ``ProbeToTracker`` per frame, so the slice moves in 3D.
    """
    from igtflow.stream.readers.plus_writer import write_seq_nrrd

    frames, probe_to_tracker, image_to_probe, spacing, stamps = us_case(
        seed, n_frames, path="sweep", rate_hz=rate_hz
    )
    valid = np.ones(n_frames, dtype=bool)
    transforms = {
        "ProbeToTracker": (probe_to_tracker, valid),
        "ImageToProbe": (np.repeat(image_to_probe[None], n_frames, axis=0), valid),
    }
    return write_seq_nrrd(path, frames, spacing, stamps, transforms)


def export_phantom(
    out_dir: Path, seed: int = 0, step: Callable[[str], None] | None = None, force: bool = False
) -> dict[str, Any]:
    """Write every phantom file for ``seed`` into ``out_dir``; returns {what: path}.

    Refuses (``OutputError``) before any work if one of the files exists and not ``force``.
    """
    say = step or (lambda _: None)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"{out_dir}: cannot create the output folder: {exc}") from exc
    for name in export_names():
        check_target(out_dir / name, force)

    def write(name: str, writer: Callable[[Path], object]) -> str:
        with atomic_output(out_dir / name, force) as partial:
            writer(partial)
        return str(out_dir / name)

    say("anatomy")
    anatomy = _build(seed)
    written: dict[str, Any] = {}
    say("label volume")
    written["labels"] = write("labels.nrrd", lambda p: write_label_volume(anatomy, p))
    say("meshes")
    written["meshes"] = [str(p) for p in write_meshes(anatomy, out_dir, force)]
    say("frames")
    us = UltrasoundSim(seed)
    carm = CArmGeometry(isocenter=tuple(anatomy.organ_center))
    truth = json.dumps(truth_dict(anatomy, us, carm), indent=2)
    written["truth"] = write("truth.json", lambda p: p.write_text(truth))
    say("ultrasound sweep")
    written["us_sweep"] = write("us_sweep.seq.nrrd", lambda p: write_us_sequence(p, seed))
    sheet = contact_sheet(seed)
    written["contact_sheet"] = write("contact_sheet.png", lambda p: write_png(p, sheet))
    return written
