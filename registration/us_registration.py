"""Rigid registration of a preoperative model to segmented ultrasound slices, as a stream.

Each segmented slice (``Image`` of modality ``LABELS`` in the Reference frame, see
:mod:`~igtflow.registration.us_points`) is lifted to boundary points and kept in a
:class:`~igtflow.registration.us_points.SliceWindow`; :meth:`UsRegistrar.update` registers the
window's cloud to the model with :class:`~igtflow.registration.icp.RigidTracker` (warm-started
from the last valid pose, globally re-initialised when that fails) and gives the
``ModelToReference`` transform, its quality and the model's targets moved into the Reference
frame. An estimate is never valid with fewer than ``min_points`` points, nor when the ICP's own
tests fail (then ``reason`` says why, and the pose is the last valid one).

Rigid only: breathing moves the organ almost rigidly, but the phantom's smooth deformation
(a few mm) stays in the residual and in the target error. The deformable update is not here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from igtflow.registration.case import PreopCase
from igtflow.registration.closest_points import ModelTarget, mesh_area, sample_surface
from igtflow.registration.icp import DEFAULT, Criteria, RigidResult, RigidTracker, invert
from igtflow.registration.us_points import ORGAN_REGION, VESSEL_REGION, SliceWindow, lift_labels
from igtflow.stream.messages import Image

# Which label ids make up each preoperative structure's region in a label map.
REGIONS = {"organ": ORGAN_REGION, "vessel": VESSEL_REGION}
MIN_POINTS = 300  # fewer lifted points never give a valid estimate (a curve or two)


@dataclass(frozen=True)
class UsEstimate:
    """One update: ``model_to_reference`` (4×4), whether it may be trusted and why not."""

    model_to_reference: np.ndarray
    valid: bool
    error_mm: float
    reason: str
    targets: dict[str, np.ndarray] = field(default_factory=dict)  # name → Reference RAS
    points: int = 0
    slices: int = 0
    time_ms: float = 0.0
    rigid: RigidResult | None = None


def surface_target(
    meshes: Sequence[tuple[np.ndarray, np.ndarray]], spacing_mm: float = 1.0, seed: int = 0
) -> ModelTarget:
    """One registration target from several triangle meshes (vertices, faces), each sampled at
    about one point per ``spacing_mm``²: organ and vessel surfaces matched as one."""
    rng = np.random.default_rng(seed)
    points, normals = [], []
    for vertices, faces in meshes:
        count = max(1000, round(mesh_area(vertices, faces) / spacing_mm**2))
        p, n = sample_surface(vertices, faces, count, rng)
        points.append(p)
        normals.append(n)
    return ModelTarget.from_points(np.concatenate(points), np.concatenate(normals))


class UsRegistrar:
    """Slices in (:meth:`add`), ``ModelToReference`` estimates out (:meth:`update`).

    ``init`` is the starting ``ModelToReference`` guess (e.g. from patient landmarks); without
    one the first update searches globally, which needs the window to cover much of the organ.
    """

    def __init__(
        self,
        target: ModelTarget,
        targets: Mapping[str, np.ndarray] | None = None,
        init: np.ndarray | None = None,
        regions: Sequence[tuple[int, ...]] = (ORGAN_REGION,),
        window: SliceWindow | None = None,
        min_points: int = MIN_POINTS,
        criteria: Criteria = DEFAULT,
    ) -> None:
        self.target = target
        self.model_targets = {
            k: np.asarray(v, np.float64).reshape(3) for k, v in (targets or {}).items()
        }
        self.regions = tuple(regions)
        self.window = window if window is not None else SliceWindow()
        self.min_points = min_points
        start = None if init is None else invert(np.asarray(init, np.float64))
        self.tracker = RigidTracker(target, start, criteria)
        self.init = np.eye(4) if init is None else np.asarray(init, np.float64)

    @classmethod
    def from_case(
        cls, case: PreopCase, structures: Sequence[str] | None = None, **kwargs
    ) -> UsRegistrar:
        """A registrar for ``structures`` of a loaded case (see ``load_case``) and its targets;
        by default the organ and the vessels, those the case has (the vessels' walls pin the
        pose along the organ's smooth surface: half the 95th-percentile TRE on the phantom)."""
        if structures is None:
            structures = [s for s in REGIONS if s in case.structures] or list(case.structures)[:1]
        meshes = [(case.structure(s).vertices, case.structure(s).faces) for s in structures]
        regions = [REGIONS[s] for s in structures if s in REGIONS]
        return cls(
            surface_target(meshes), case.targets, regions=regions or (ORGAN_REGION,), **kwargs
        )

    def add(self, labels: Image) -> int:
        """Lift one segmented slice into the window; the number of points it gave."""
        if labels.modality != "LABELS":
            raise ValueError(f"expected a label map (modality LABELS), got {labels.modality}")
        points = np.concatenate([lift_labels(labels, region) for region in self.regions])
        self.add_points(points, labels.stamp_ns * 1e-9)
        return len(points)

    def add_points(self, points: np.ndarray, stamp_s: float) -> None:
        """Add already lifted Reference points of one slice taken at ``stamp_s``."""
        self.window.add(points, stamp_s)

    @property
    def model_to_reference(self) -> np.ndarray:
        """The last valid pose (or the initial guess)."""
        last = self.tracker.last
        return self.init.copy() if last is None else invert(last)

    def update(self) -> UsEstimate:
        """Register the window's cloud now."""
        start = time.perf_counter()
        cloud = self.window.cloud()
        if len(cloud) < self.min_points:
            pose = self.model_to_reference
            return UsEstimate(
                pose,
                False,
                float("inf"),
                f"{len(cloud)} boundary points in {len(self.window)} slices, at least "
                f"{self.min_points} needed",
                self._moved(pose),
                len(cloud),
                len(self.window),
                (time.perf_counter() - start) * 1e3,
            )
        result = self.tracker.update(cloud)
        pose = result.model_to_reference if result.valid else self.model_to_reference
        return UsEstimate(
            pose,
            result.valid,
            float(result.error_mm),
            result.reason,
            self._moved(pose),
            len(cloud),
            len(self.window),
            (time.perf_counter() - start) * 1e3,
            result,
        )

    def _moved(self, model_to_reference: np.ndarray) -> dict[str, np.ndarray]:
        m = model_to_reference
        return {name: m[:3, :3] @ p + m[:3, 3] for name, p in self.model_targets.items()}
