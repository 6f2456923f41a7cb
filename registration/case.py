"""A preoperative case: the named structures and targets registration aligns to, from a folder.

Two kinds of folder load the same way:
- ``igtflow phantom export DIR``: organ|vessel|lesion meshes, ``labels.nrrd`` and the targets
  of ``truth.json`` (the label names come from there too);
- any folder of Slicer exports: one mesh file per structure, named by its file name, a label
  volume named ``labels.nrrd|.nhdr|.nii|.nii.gz`` (its surfaces stand in when there is no
  mesh file), and targets from ``*.mrk.json`` and ``*.fcsv`` files.
When a structure comes as several mesh formats (the phantom writes .vtk and .stl), the first of
.vtp, .vtk, .ply, .obj, .stl is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from igtflow.registration.label_surfaces import surfaces_from_labels
from igtflow.registration.preop_mesh import MESH_SUFFIXES, load_mesh
from igtflow.registration.preop_model import PreopModelError, SurfaceModel
from igtflow.registration.preop_targets import load_targets, phantom_targets, target_suffix
from igtflow.registration.preop_volume import LabelVolume, load_label_volume, volume_suffix

LABEL_VOLUME_STEM = "labels"
TRUTH_FILE = "truth.json"


@dataclass(frozen=True)
class PreopCase:
    """Structures {name: SurfaceModel} and targets {name: RAS point} in RAS mm."""

    structures: dict[str, SurfaceModel]
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    labels: LabelVolume | None = None
    label_names: dict[int, str] = field(default_factory=dict)
    source: str = ""

    def structure(self, name: str) -> SurfaceModel:
        """The structure called ``name``; the error lists those there are."""
        if name not in self.structures:
            raise KeyError(
                f"{self.source}: no structure {name!r} (there are: {', '.join(self.structures)})"
            )
        return self.structures[name]


def load_case(folder: str | Path) -> PreopCase:
    """Read the preoperative case in ``folder`` (see the module docstring for what it reads)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PreopModelError(
            f"{folder}: no such folder; give the folder of a case (e.g. one written by "
            "`igtflow phantom export DIR`)"
        )
    files = sorted(p for p in folder.iterdir() if p.is_file())
    truth = _truth(folder / TRUTH_FILE) if (folder / TRUTH_FILE).is_file() else None
    names = _label_names(folder / TRUTH_FILE, truth) if truth else {}

    volumes = [p for p in files if _is_label_volume(p)]
    labels = load_label_volume(volumes[0]) if volumes else None
    structures = {}
    for path in _one_file_per_structure(files):
        model = load_mesh(path)
        structures[model.name] = model
    if not structures and labels is not None:
        structures = surfaces_from_labels(labels, names or None)
    if not structures:
        raise PreopModelError(
            f"{folder}: no surface model in this folder: it needs mesh files "
            f"({', '.join(MESH_SUFFIXES)}) or a label volume ({LABEL_VOLUME_STEM}.nrrd or "
            f"{LABEL_VOLUME_STEM}.nii.gz); export them from Slicer, or write a phantom case "
            "with `igtflow phantom export DIR`"
        )

    targets: dict[str, np.ndarray] = {}
    sources = [folder / TRUTH_FILE] if truth else []
    sources += [p for p in files if target_suffix(p)]
    for path in sources:
        found = phantom_targets(path, truth) if path.name == TRUTH_FILE else load_targets(path)
        for name, point in found.items():
            if name in targets:
                raise PreopModelError(
                    f"{path}: target {name!r} is also in another file of {folder}; rename one"
                )
            targets[name] = point
    return PreopCase(structures, targets, labels, names, str(folder))


def _is_label_volume(path: Path) -> bool:
    suffix = volume_suffix(path)
    return bool(suffix) and path.name[: -len(suffix)] == LABEL_VOLUME_STEM


def _one_file_per_structure(files: list[Path]) -> list[Path]:
    """One mesh file per name: the first of MESH_SUFFIXES when a name comes in several."""
    chosen: dict[str, Path] = {}
    for suffix in MESH_SUFFIXES:
        for path in files:
            if path.suffix.lower() == suffix:
                chosen.setdefault(path.name[: -len(suffix)], path)
    return sorted(chosen.values())


def _truth(path: Path) -> dict:
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PreopModelError(f"{path}: not readable JSON ({exc}); export it again") from exc
    if not isinstance(truth, dict) or "targets" not in truth:
        raise PreopModelError(
            f"{path}: not the truth of `igtflow phantom export` (no 'targets'); remove or rename it"
        )
    return truth


def _label_names(path: Path, truth: dict) -> dict[int, str]:
    """{label value: name} of the structures, from the truth's 'labels' (background left out)."""
    try:
        names = {int(k): str(v) for k, v in truth.get("labels", {}).items()}
    except (ValueError, AttributeError) as exc:
        raise PreopModelError(f"{path}: 'labels' must map numbers to names ({exc})") from exc
    return {k: v for k, v in names.items() if k != 0}
