"""Registration of a preoperative model to segmented ultrasound slices, as a stream: rigid,
then a deformable update.

Each segmented slice (``Image`` of modality ``LABELS`` in the Reference frame, see
:mod:`~igtflow.registration.us_points`) is lifted to boundary points and kept in a
:class:`~igtflow.registration.us_points.SliceWindow`; :meth:`UsRegistrar.update` registers the
window's cloud to the model with :class:`~igtflow.registration.icp.RigidTracker` (warm-started
from the last valid pose, globally re-initialised when that fails) and gives the
``ModelToReference`` transform, its quality and the model's targets moved into the Reference
frame. An estimate is never valid with fewer than ``min_points`` points, nor when the ICP's own
tests fail, nor when :class:`~igtflow.registration.plausibility.Plausibility` finds the fit
implausible or not yet confirmed, nor when no slice came for ``stale_after_s`` (``stale``); then
``reason`` says why, ``error_mm`` is infinite and the pose is the last valid one.

Breathing moves the organ almost rigidly; the smooth deformation (a few mm) left in the rigid
fit's residual can be taken up by :class:`~igtflow.registration.deformable.DeformableUpdate`
after each valid rigid fit (``deformable``): it bends the model and moves the targets with the
tissue. An implausible deformation (too large, folding, or fitting worse than the rigid
pose) makes the estimate not valid with its reason; without a valid rigid fit the field decays
toward zero. ``rigid_targets`` keep the targets moved by the pose alone, to compare.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from igtflow.registration.case import PreopCase
from igtflow.registration.closest_points import ModelTarget, mesh_area, sample_surface
from igtflow.registration.deformable import (
    DeformableUpdate,
    DeformationFit,
    DisplacementField,
    FieldSettings,
)
from igtflow.registration.icp import DEFAULT, Criteria, RigidResult, RigidTracker, invert
from igtflow.registration.plausibility import Limits, Plausibility, Verdict
from igtflow.registration.us_points import ORGAN_REGION, VESSEL_REGION, SliceWindow, lift_labels
from igtflow.stream.messages import Image

# Which label ids make up each preoperative structure's region in a label map.
REGIONS = {"organ": ORGAN_REGION, "vessel": VESSEL_REGION}
MIN_POINTS = 300  # fewer lifted points never give a valid estimate (a curve or two)
VIEWS = 3  # slices (spread over the window) whose label maps are checked against the model
STALE_AFTER_S = 1.0  # no new slice for this long: the organ may have moved since


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
    stale: bool = False  # no new slice within the registrar's stale_after_s
    age_s: float = math.inf  # since the newest slice came (the registrar's clock)
    verdict: Verdict | None = None
    rigid_targets: dict[str, np.ndarray] = field(default_factory=dict)  # moved by the pose alone
    displacement: DisplacementField | None = None  # bends the model (model frame)...
    deformed_pose: np.ndarray | None = None  # ...which this ModelToReference then places
    deformation: DeformationFit | None = None  # this update's deformable fit, when one ran

    def to_reference(self, model_points: np.ndarray) -> np.ndarray:
        """Model points (N×3) where this estimate puts them: bent with the tissue and placed
        (by the rigid pose alone without a deformable update)."""
        points = np.asarray(model_points, np.float64).reshape(-1, 3)
        if self.displacement is None or self.deformed_pose is None:
            m = self.model_to_reference
            return points @ m[:3, :3].T + m[:3, 3]
        return self.displacement.to_reference(points, self.deformed_pose)


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
    ``plausibility`` judges each fit (by default against the whole target as one surface;
    :meth:`from_case` gives it each structure's own); ``clock`` (seconds) times ``stale``;
    ``search_fits`` spreads a global search over updates (see
    :class:`~igtflow.registration.icp.RigidTracker`).
    ``deformable`` runs the deformable update with ``field_settings`` (off by default: on the
    phantom it does not yet beat the rigid pose, see ``igtflow eval registration``).
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
        plausibility: Plausibility | None = None,
        stale_after_s: float = STALE_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
        search_fits: int | None = None,
        deformable: bool = False,
        field_settings: FieldSettings | None = None,
    ) -> None:
        self.target = target
        self.model_targets = {
            k: np.asarray(v, np.float64).reshape(3) for k, v in (targets or {}).items()
        }
        self.regions = tuple(regions)
        self.window = window if window is not None else SliceWindow()
        self.min_points = min_points
        self.init = np.eye(4) if init is None else np.asarray(init, np.float64)
        self._start = None if init is None else invert(self.init)
        self.tracker = RigidTracker(target, self._start, criteria, search_fits)
        self.plausibility = plausibility or Plausibility([("model", target.points)])
        self.stale_after_s, self.clock = float(stale_after_s), clock
        self._accepted: np.ndarray | None = None  # the last valid ModelToReference
        self._added_at = -math.inf  # clock time of the newest slice
        self._added = self._judged = 0  # slices added in all; the count at the last fit
        anchors = np.array(list(self.model_targets.values())).reshape(-1, 3)
        self.deform = DeformableUpdate(target, anchors, field_settings) if deformable else None

    @classmethod
    def from_case(
        cls,
        case: PreopCase,
        structures: Sequence[str] | None = None,
        limits: Limits | None = None,
        **kwargs,
    ) -> UsRegistrar:
        """A registrar for ``structures`` of a loaded case (see ``load_case``) and its targets;
        by default the organ and the vessels, those the case has (the vessels' walls pin the
        pose along the organ's smooth surface: half the 95th-percentile TRE on the phantom).
        Each structure's points are judged against its own surface (see ``plausibility``), with
        ``limits`` (default: those measured on exact label maps)."""
        if structures is None:
            structures = [s for s in REGIONS if s in case.structures] or list(case.structures)[:1]
        meshes = [(case.structure(s).vertices, case.structure(s).faces) for s in structures]
        regions = [REGIONS[s] for s in structures if s in REGIONS]
        if "plausibility" not in kwargs and len(regions) == len(structures):
            kwargs["plausibility"] = Plausibility(
                [(s, surface_target([m]).points) for s, m in zip(structures, meshes, strict=True)],
                limits,
            )
        return cls(
            surface_target(meshes), case.targets, regions=regions or (ORGAN_REGION,), **kwargs
        )

    def add(self, labels: Image) -> int:
        """Lift one segmented slice into the window; the number of points it gave."""
        if labels.modality != "LABELS":
            raise ValueError(f"expected a label map (modality LABELS), got {labels.modality}")
        lifted = [lift_labels(labels, region) for region in self.regions]
        tags = np.repeat(np.arange(len(lifted), dtype=np.int8), [len(p) for p in lifted])
        self.add_points(np.concatenate(lifted), labels.stamp_ns * 1e-9, tags, labels)
        return len(tags)

    def add_points(
        self,
        points: np.ndarray,
        stamp_s: float,
        tags: np.ndarray | None = None,
        image: Image | None = None,
    ) -> None:
        """Add already lifted Reference points of one slice taken at ``stamp_s``; ``tags``:
        each point's region (index into ``regions``; all the first if None); ``image``: the
        label map they came from (then the model's surfaces crossing it must show in it)."""
        self.window.add(points, stamp_s, tags, image)
        self._added += 1
        self._added_at = self.clock()

    @property
    def model_to_reference(self) -> np.ndarray:
        """The last valid pose (or the initial guess)."""
        return self.init.copy() if self._accepted is None else self._accepted.copy()

    def update(self) -> UsEstimate:
        """Register the window's cloud now."""
        start = time.perf_counter()
        age = self.clock() - self._added_at
        cloud, tags, index = self.window.tagged_cloud()
        fresh, self._judged = self._added > self._judged, self._added
        result = verdict = None
        if not self.window:
            reason = "no slice yet"
        elif age > self.stale_after_s:
            reason = f"stale: no new slice for {age:.1f} s (over {self.stale_after_s:g} s)"
        elif len(cloud) < self.min_points:
            reason = (
                f"{len(cloud)} boundary points in {len(self.window)} slices, at least "
                f"{self.min_points} needed"
            )
        else:
            result = self.tracker.update(cloud)
            views = [(s.points, s.image) for s in self.window.slices if s.image is not None]
            views = views[:: max(1, len(views) // VIEWS)][-VIEWS:]
            verdict = self.plausibility.judge(result, cloud, tags, index, fresh, views)
            reason = verdict.reason
            if verdict.valid:
                self._accepted = result.model_to_reference
            elif result.valid and not verdict.plausible:
                self._back_to_valid()  # never warm-start from a fit judged wrong
        if verdict is None:
            self.plausibility.reset()
        valid = verdict is not None and verdict.valid
        deformation = field = bent = None
        if self.deform is not None:
            newest = self.window.slices[-1].stamp_s if self.window else 0.0
            if valid and result is not None:
                deformation = self.deform.fit(cloud, result.model_to_reference, newest)
                if not deformation.valid:
                    valid, reason = False, f"deformable update refused: {deformation.reason}"
            else:
                self.deform.decay(newest)
            field, bent = self.deform.field, self.deform.pose
        pose = self.model_to_reference
        if bent is None:
            field = None  # no deformable fit yet: the rigid pose places the model
        targets = _moved(pose, self.model_targets)
        bent_targets = targets
        if field is not None and bent is not None and self.model_targets:
            names = list(self.model_targets)
            moved = field.to_reference(np.array([self.model_targets[k] for k in names]), bent)
            bent_targets = dict(zip(names, moved, strict=True))
        return UsEstimate(
            pose,
            valid,
            verdict.error_mm if verdict is not None and valid else math.inf,
            reason,
            bent_targets,
            len(cloud),
            len(self.window),
            (time.perf_counter() - start) * 1e3,
            result,
            age > self.stale_after_s,
            age,
            verdict,
            targets,
            field,
            bent,
            deformation,
        )

    def _back_to_valid(self) -> None:
        """Warm-start the next fit from the last valid pose (or the start; globally without
        one) instead of the fit just judged implausible."""
        self.tracker.last = self._start if self._accepted is None else invert(self._accepted)


def _moved(
    model_to_reference: np.ndarray, points: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    m = model_to_reference
    return {name: m[:3, :3] @ p + m[:3, 3] for name, p in points.items()}
