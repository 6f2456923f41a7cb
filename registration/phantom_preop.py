"""The phantom's preoperative case of one seed, built in memory: what ``igtflow phantom export``
would write to a folder and ``load_case`` read back, without the files.

The surfaces are taken from the 1 mm label volume (``stride`` 2), as a CT-like model would be;
the structures lie in the Reference frame at the undeformed pose, so the phantom's true
``ModelToReference`` is the breathing shift and deformation of the moment. Registration nodes
(``case: phantom:<seed>``) and the registration bench (``evaluate.phantom_case``) share this.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from igtflow.registration.case import PreopCase
from igtflow.registration.preop_model import build_surface

PREFIX = "phantom:"
STRUCTURES = ("organ", "vessel", "lesion")


def phantom_preop(
    seed: int, structures: Sequence[str] = STRUCTURES, stride: int = 2, triangles: int = 20000
) -> PreopCase:
    """Seed ``seed``'s preoperative ``structures`` (each at most ``triangles`` triangles) and
    targets (the lesion centre and the vessel bifurcation) in RAS mm."""
    from igtflow.stream.phantom.anatomy import LABEL_NAMES, build_anatomy
    from igtflow.stream.phantom.export import MESH_STRUCTURES, structure_mesh

    by_name = {LABEL_NAMES[label]: label for label in MESH_STRUCTURES}
    unknown = [s for s in structures if s not in by_name]
    if unknown:
        raise ValueError(
            f"the phantom has no structure {', '.join(map(repr, unknown))} "
            f"(it has: {', '.join(by_name)})"
        )
    anatomy = build_anatomy(seed)
    source = f"{PREFIX}{seed}"
    models = {}
    for name in structures:
        mesh = structure_mesh(anatomy, by_name[name], triangles, stride)
        vertices = np.asarray(mesh.vertices, np.float64)
        models[name] = build_surface(name, vertices, np.asarray(mesh.cells, np.int64), source)
    targets = {
        str(name): np.asarray(point, np.float64)
        for name, point in zip(anatomy.target_ids, anatomy.targets, strict=True)
    }
    names = {label: LABEL_NAMES[label] for label in MESH_STRUCTURES if LABEL_NAMES[label] in models}
    return PreopCase(models, targets, None, names, source)


def phantom_seed(spec: str) -> int | None:
    """The seed of a ``phantom:<seed>`` case spec; None for anything else (a folder)."""
    if not spec.startswith(PREFIX):
        return None
    text = spec[len(PREFIX) :].strip()
    if not text.isdigit():
        raise ValueError(f"{spec!r}: give the phantom's seed as a whole number, e.g. phantom:0")
    return int(text)
