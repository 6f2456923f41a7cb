"""The preoperative model as fluoroscopy sees it: contour generators of its surfaces.

A surface's outline in a projection is its contour generator: the mesh edges whose two faces
turn one towards the focal spot and one away. Only those points can lie on a projected edge, so
they are all the registration projects (hundreds, not the tens of thousands of the surface), and
they are exact for the mesh, with no band of "nearly tangent" points biased inwards. Folds give
inner contour points too; they fall inside the projected region and the robust fit drops them.

Two groups match the two regions of :mod:`~igtflow.registration.fluoro_contours`: the organ's
outline (the silhouette) and the outlines of the vessels and the lesion (the contrast-filled
vessel region, the lesion inside it as the label map draws it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from igtflow.registration.case import PreopCase
from igtflow.registration.preop_model import SurfaceModel

SILHOUETTE_STRUCTURES = ("organ",)
VESSEL_STRUCTURES = ("vessel", "lesion")


@dataclass(frozen=True)
class ContourMesh:
    """Faces (centre, normal) and the interior edges (two faces, midpoint) of triangle meshes."""

    normals: np.ndarray  # F×3 face normals (not unit: only their sign against the ray counts)
    offsets: np.ndarray  # F: normal · centre
    edge_faces: np.ndarray  # E×2
    midpoints: np.ndarray  # E×3
    halves: np.ndarray  # E×3: half of each edge's vector (midpoint ± half = its ends)

    @classmethod
    def from_meshes(cls, meshes: Sequence[tuple[np.ndarray, np.ndarray]]) -> ContourMesh:
        normals, offsets, pairs, mids, halves = [], [], [], [], []
        face_base = 0
        for vertices, faces in meshes:
            v = np.asarray(vertices, np.float64)
            f = np.asarray(faces, np.int64)
            a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
            n = np.cross(b - a, c - a)
            normals.append(n)
            offsets.append(np.einsum("ij,ij->i", n, (a + b + c) / 3.0))
            edges = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
            owner = np.repeat(np.arange(len(f)), 3)
            key = edges[:, 0] * (len(v) + 1) + edges[:, 1]
            order = np.argsort(key, kind="stable")
            k = key[order]
            first = np.nonzero(k[:-1] == k[1:])[0]  # edges shared by two faces
            i, j = order[first], order[first + 1]
            pairs.append(np.stack([owner[i], owner[j]], axis=1) + face_base)
            e = edges[i]
            mids.append(0.5 * (v[e[:, 0]] + v[e[:, 1]]))
            halves.append(0.5 * (v[e[:, 1]] - v[e[:, 0]]))
            face_base += len(f)
        if not normals:
            none = np.zeros((0, 3))
            return cls(none, np.zeros(0), np.zeros((0, 2), np.int64), none, none)
        return cls(
            np.concatenate(normals),
            np.concatenate(offsets),
            np.concatenate(pairs),
            np.concatenate(mids),
            np.concatenate(halves),
        )

    def outline(self, eye: np.ndarray) -> np.ndarray:
        """Midpoints (K×3, model frame) of the edges on the contour generator seen from ``eye``
        (the focal spot in the model frame)."""
        return self.midpoints[self.turning(eye)]

    def turning(self, eye: np.ndarray) -> np.ndarray:
        """Mask of the edges on the contour generator seen from ``eye``."""
        facing = self.normals @ eye > self.offsets
        return facing[self.edge_faces[:, 0]] != facing[self.edge_faces[:, 1]]


@dataclass(frozen=True)
class FluoroModel:
    """Silhouette and vessel contour meshes and the named targets, in the model frame."""

    silhouette: ContourMesh
    vessels: ContourMesh
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    center: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @classmethod
    def from_case(
        cls,
        case: PreopCase | SurfaceModel,
        targets: Mapping[str, np.ndarray] | None = None,
        vessel_structures: tuple[str, ...] = VESSEL_STRUCTURES,
    ) -> FluoroModel:
        """From a loaded case (organ → silhouette; ``vessel_structures`` → vessels: leave the
        lesion out for label maps that draw it as organ; a case without an organ uses its first
        structure) or from one surface (silhouette only)."""
        if isinstance(case, SurfaceModel):
            silhouette, vessels, own = [case], [], {}
        elif isinstance(case, PreopCase):
            names = [s for s in SILHOUETTE_STRUCTURES if s in case.structures]
            names = names or list(case.structures)[:1]
            silhouette = [case.structures[s] for s in names]
            vessels = [case.structures[s] for s in vessel_structures if s in case.structures]
            own = case.targets
        else:
            raise TypeError(
                f"expected a PreopCase (load_case) or a SurfaceModel, got {type(case).__name__}"
            )
        chosen = dict(own if targets is None else targets)
        center = np.mean(np.concatenate([s.vertices for s in silhouette]), axis=0)
        return cls(
            ContourMesh.from_meshes([(s.vertices, s.faces) for s in silhouette]),
            ContourMesh.from_meshes([(s.vertices, s.faces) for s in vessels]),
            {k: np.asarray(v, np.float64).reshape(3) for k, v in chosen.items()},
            center,
        )
