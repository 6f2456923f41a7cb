"""The phantom's preoperative 3D model as a mesh: what registration aligns and viewers draw."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from igtflow.stream.messages import Mesh
from igtflow.stream.node import Count, Seed, Source
from igtflow.stream.phantom.anatomy import LESION, ORGAN, VESSEL, build_anatomy
from igtflow.stream.phantom.export import MESH_STRUCTURES, structure_mesh

SHARE = {ORGAN: 0.6, VESSEL: 0.3, LESION: 0.1}


class PhantomModel(Source):
    """Sends the preoperative model (organ, vessels, lesion; scalar = label) once a second.

    Repeating it lets a viewer or an OpenIGTLink client that joins late still get the model;
    consumers treat it as static (it never goes stale).
    """

    outputs = {"model": Mesh}
    rate_hz = 1.0

    def setup(
        self,
        seed: Seed = 0,
        triangles: Annotated[int, Field(ge=100)] = 20000,
        voxel_stride: Count = 2,
    ) -> None:
        """
        seed: phantom seed (the same as the imaging sources' for a matching model)
        triangles: triangle budget of the whole model (organ 60 %, vessels 30 %, lesion 10 %);
            at or under an OpenIGTLink server's budget, AR headsets get it undecimated
        voxel_stride: 1 = surfaces from the 0.5 mm label volume; 2 = from 1 mm (8x faster)
        """
        if voxel_stride < 1 or triangles < 100:
            raise ValueError("voxel_stride must be >= 1 and triangles >= 100")
        anatomy = build_anatomy(seed)
        vertices, faces, scalars = [], [], []
        offset = 0
        for label in MESH_STRUCTURES:
            budget = int(triangles * SHARE[label])
            mesh = structure_mesh(anatomy, label, budget, voxel_stride)
            points = np.asarray(mesh.vertices, dtype=np.float32)
            cells = np.asarray(mesh.cells, dtype=np.int32)
            vertices.append(points)
            faces.append(cells + offset)
            scalars.append(np.full(len(points), label, dtype=np.float32))
            offset += len(points)
        self.model = Mesh(
            vertices=np.concatenate(vertices),
            faces=np.concatenate(faces),
            scalars=np.concatenate(scalars),
            frame="Tracker",
            meta={"seed": seed, "labels": {str(k): v for k, v in _names().items()}},
        )
        self.log.info(
            "model: %d vertices, %d triangles", len(self.model.vertices), len(self.model.faces)
        )

    def tick(self) -> None:
        self.emit("model", self.model)


def _names() -> dict[int, str]:
    from igtflow.stream.phantom.anatomy import LABEL_NAMES

    return {label: LABEL_NAMES[label] for label in MESH_STRUCTURES}
