"""Whether a registration may be called valid: checks an ICP cannot make on its own.

A rigid surface fit judges itself by how well the points it was given lie on the model, and a
patch of a smooth organ lies well on any smooth organ: another patient's model, a shuffled label
map or a stray frame can fit and look confident. What makes validity honest is to ask what a
wrong fit cannot fake at once:

- each structure on its own surface: organ boundary points near the organ, vessel wall points
  near the vessels (``inlier_mm``), for every structure the window shows; the first (the organ)
  must be shown. A wrong model puts its vessels elsewhere even where its organ fits;
- the point-to-surface residual small and its spread narrow (median and 90th percentile);
- model → data: where the fitted model's surfaces cross a few of the window's label maps (inside
  their field of view), those maps show a contour (``shown_mm``): a wrong model predicts a
  vessel or an organ edge where the image has none;
- enough distinct slices (planes) in the window: slices in one plane leave a direction unseen;
- a motion prior: breathing does not turn the organ by ``max_jump_deg`` or move it by
  ``max_jump_mm`` between two consecutive estimates, so such a jump is a wrong fit (or the last
  one was);
- confirmation: a fit is valid only when the one before it, on older slices, was plausible too
  and agrees with it within the motion prior: a first fit, or the first after a jump or a
  failure, is held back one update.

:class:`Plausibility` holds the chain of fits; :meth:`Plausibility.judge` returns a
:class:`Verdict` with the reason a person can read. ``error_mm`` of a valid verdict is the ICP's
bound or the 90th-percentile residual, whichever is larger; of an invalid one, infinite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from igtflow.registration.icp import RigidResult
from igtflow.registration.us_points import BORDER_PX, inside_fov
from igtflow.stream.messages import Image

FAR_MM = 20.0  # distances are searched up to this far (beyond, a point counts as this far)


@dataclass(frozen=True)
class Limits:
    """What a plausible fit must meet (measured on the phantom: ``igtflow eval registration``)."""

    inlier_mm: float = 2.0  # a point this near its own structure's surface fits it
    min_inlier_fraction: float = 0.9  # of each shown structure's points
    min_structure_points: int = 30  # fewer points: the structure is not shown in the window
    max_median_mm: float = 0.85  # exact phantom contours: 0.54-0.84 right, from 0.63 wrong
    max_p90_mm: float = 1.6
    min_slices: int = 3  # distinct slice planes in the window
    distinct_mm: float = 0.5  # two slices are distinct planes when this far apart...
    distinct_deg: float = 1.0  # ... or turned this much
    max_jump_deg: float = 12.0  # between consecutive estimates: more is not breathing
    max_jump_mm: float = 15.0
    confirmations: int = 2  # consecutive agreeing plausible fits before one is valid
    shown_mm: float = 3.0  # a model surface crossing a slice shows in it when this near a contour
    min_shown_fraction: float = 0.7  # of each structure's crossing, in the checked label maps
    min_crossing: int = 20  # fewer model points crossing the checked slices: not judged
    slab_mm: float = 0.5  # model points this near a slice's plane cross it


@dataclass(frozen=True)
class Verdict:
    """Whether the estimate may be trusted (``valid``), whether its fit alone passed
    (``plausible``: it may still wait for confirmation) and why not, in words."""

    valid: bool
    plausible: bool
    reason: str
    error_mm: float
    figures: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Surface:
    """One structure's surface samples (model frame) and the tree to find the nearest."""

    name: str
    points: np.ndarray
    tree: cKDTree

    @classmethod
    def of(cls, name: str, points: np.ndarray) -> Surface:
        points = np.asarray(points, np.float64).reshape(-1, 3)
        if len(points) == 0:
            raise ValueError(f"structure {name!r} has no surface points")
        return cls(name, points, cKDTree(points))


class Plausibility:
    """Judges a stream of fits. ``surfaces`` are the structures in the registrar's region order
    (a point tagged ``i`` belongs to ``surfaces[i]``; one surface serves every tag)."""

    def __init__(
        self, surfaces: Sequence[tuple[str, np.ndarray]], limits: Limits | None = None
    ) -> None:
        if not surfaces:
            raise ValueError("give at least one structure surface (name, N×3 model points)")
        self.surfaces = [Surface.of(name, points) for name, points in surfaces]
        self.limits = limits or Limits()
        self.reset()

    def reset(self) -> None:
        """Forget the chain of fits (the next plausible fit must be confirmed again)."""
        self._last: np.ndarray | None = None  # the previous plausible fit's ReferenceToModel
        self._chain = 0

    def judge(
        self,
        rigid: RigidResult,
        points: np.ndarray,
        tags: np.ndarray,
        slice_index: np.ndarray,
        fresh: bool = True,
        views: Sequence[tuple[np.ndarray, Image]] = (),
    ) -> Verdict:
        """The verdict on ``rigid``, the fit of ``points`` (Reference frame, each with its
        structure tag and slice index); ``fresh``: the window has a slice the last fit lacked;
        ``views``: some slices' points with the label maps they came from, where the model's
        surfaces crossing each map must show as its contours."""
        if not rigid.valid:
            self.reset()
            return Verdict(False, False, rigid.reason or "the fit failed", math.inf)
        figures: dict[str, float] = {}
        reason = self._static(rigid, points, tags, slice_index, figures)
        reason = reason or self._shown(rigid.model_to_reference, views, figures)
        if reason:
            self.reset()
            return Verdict(False, False, reason, math.inf, figures)
        lim = self.limits
        if self._last is not None:
            turn, shift = _jump(self._last, rigid.reference_to_model, points.mean(axis=0))
            figures.update(jump_deg=turn, jump_mm=shift)
            if turn > lim.max_jump_deg or shift > lim.max_jump_mm:
                self._last, self._chain = rigid.reference_to_model, 1
                return Verdict(
                    False,
                    True,
                    f"jumped {turn:.1f}° / {shift:.1f} mm since the last fit (breathing moves "
                    f"less than {lim.max_jump_deg:g}° / {lim.max_jump_mm:g} mm): unconfirmed",
                    math.inf,
                    figures,
                )
            if fresh:
                self._chain += 1
        else:
            self._chain = 1
        self._last = rigid.reference_to_model
        if self._chain < lim.confirmations:
            return Verdict(
                False,
                True,
                f"plausible fit not yet confirmed by an update on new slices "
                f"({self._chain} of {lim.confirmations})",
                math.inf,
                figures,
            )
        error = max(float(rigid.error_mm), figures["p90_mm"])
        return Verdict(True, True, "", error, figures)

    def _static(
        self,
        rigid: RigidResult,
        points: np.ndarray,
        tags: np.ndarray,
        slice_index: np.ndarray,
        figures: dict[str, float],
    ) -> str:
        """The checks of one fit alone; the reason it fails, or ''."""
        lim = self.limits
        moved = rigid.apply(points)
        distance = np.full(len(points), np.inf)
        for i, surface in enumerate(self.surfaces):
            mine = tags == i if len(self.surfaces) > 1 else np.ones(len(points), bool)
            if mine.any():
                found = surface.tree.query(moved[mine], distance_upper_bound=FAR_MM)[0]
                distance[mine] = np.minimum(found, FAR_MM)
        shown = []
        for i, surface in enumerate(self.surfaces):
            mine = tags == i if len(self.surfaces) > 1 else np.ones(len(points), bool)
            count = int(np.count_nonzero(mine))
            if count < lim.min_structure_points:
                if i == 0:
                    return (
                        f"{surface.name} not shown: {count} of its points in the window, at "
                        f"least {lim.min_structure_points} needed"
                    )
                continue
            fraction = float(np.mean(distance[mine] <= lim.inlier_mm))
            figures[f"{surface.name}_inliers"] = fraction
            figures[f"{surface.name}_p90_mm"] = float(np.percentile(distance[mine], 90))
            figures[f"{surface.name}_median_mm"] = float(np.median(distance[mine]))
            figures[f"{surface.name}_within1"] = float(np.mean(distance[mine] <= 1.0))
            shown.append(surface.name)
            if fraction < lim.min_inlier_fraction:
                return (
                    f"only {fraction:.0%} of the {surface.name} points lie within "
                    f"{lim.inlier_mm:g} mm of the model's {surface.name} "
                    f"(at least {lim.min_inlier_fraction:.0%} needed): wrong model or labels?"
                )
        median, p90 = (float(v) for v in np.percentile(distance, [50, 90]))
        figures.update(median_mm=median, p90_mm=p90)
        if median > lim.max_median_mm:
            return f"median point-to-surface distance {median:.2f} mm exceeds {lim.max_median_mm:g}"
        if p90 > lim.max_p90_mm:
            return f"90 % of the points within {p90:.2f} mm of the surface, over {lim.max_p90_mm:g}"
        slices = distinct_slices(points, slice_index, lim.distinct_mm, lim.distinct_deg)
        figures["distinct_slices"] = float(slices)
        if slices < lim.min_slices:
            return (
                f"degenerate geometry: {slices} distinct slice plane(s) in the window, at least "
                f"{lim.min_slices} needed (move or tilt the probe)"
            )
        return ""

    def _shown(
        self,
        model_to_reference: np.ndarray,
        views: Sequence[tuple[np.ndarray, Image]],
        figures: dict[str, float],
    ) -> str:
        """Model → data: where the fitted model's surfaces cross a label map inside its field
        of view, the map must show a contour (any structure's) within ``shown_mm``. A wrong
        model fits the contours it is given but predicts others (a vessel, the organ's edge)
        where the image shows none; a fit only checked data → model never notices."""
        lim = self.limits
        if not views:
            return ""
        trees = [cKDTree(p) if len(p) else None for p, _ in views]
        for surface in self.surfaces:
            moved = surface.points @ model_to_reference[:3, :3].T + model_to_reference[:3, 3]
            crossing = shown = 0
            for (_, image), tree in zip(views, trees, strict=True):
                q = crossing_points(moved, image, lim.slab_mm, lim.shown_mm)
                crossing += len(q)
                if len(q) and tree is not None:
                    shown += int(np.count_nonzero(tree.query(q)[0] <= lim.shown_mm))
            if crossing < lim.min_crossing:
                continue
            fraction = shown / crossing
            figures[f"{surface.name}_shown"] = fraction
            if fraction < lim.min_shown_fraction:
                return (
                    f"the model's {surface.name} crosses the slices where they show no contour: "
                    f"{fraction:.0%} of it within {lim.shown_mm:g} mm of one (at least "
                    f"{lim.min_shown_fraction:.0%} needed): wrong model, wrong patient or labels?"
                )
        return ""


def crossing_points(
    moved: np.ndarray, image: Image, slab_mm: float, margin_mm: float
) -> np.ndarray:
    """The model points (Reference) within ``slab_mm`` of a label map's plane and inside its
    image and field of view, ``margin_mm`` in from their edges (where contours are not lifted)."""
    m = np.asarray(image.ijk_to_ras, np.float64)
    normal = np.cross(m[:3, 0], m[:3, 1])
    normal /= np.linalg.norm(normal)
    near = moved[np.abs((moved - m[:3, 3]) @ normal) <= slab_mm]
    if not len(near):
        return near
    pixels = (near - m[:3, 3]) @ np.linalg.pinv(m[:3, :2]).T
    spacing = float(max(image.spacing[:2]))
    margin = BORDER_PX + margin_mm / spacing
    h, w = np.asarray(image.data).shape[:2]
    keep = (pixels[:, 0] >= margin) & (pixels[:, 0] <= w - 1 - margin)
    keep &= (pixels[:, 1] >= margin) & (pixels[:, 1] <= h - 1 - margin)
    keep[keep] = inside_fov(image, pixels[keep], margin)
    return near[keep]


def distinct_slices(
    points: np.ndarray, slice_index: np.ndarray, apart_mm: float = 0.5, apart_deg: float = 1.0
) -> int:
    """How many of the window's slices lie in planes at least ``apart_mm`` or ``apart_deg``
    from every other one counted (a slice's plane fitted to its points; slices whose points
    are too few or on a line are not counted)."""
    planes: list[tuple[np.ndarray, np.ndarray]] = []
    for i in np.unique(slice_index):
        p = points[slice_index == i]
        if len(p) < 10:
            continue
        centre = p.mean(axis=0)
        _, s, vt = np.linalg.svd(p - centre, full_matrices=False)
        if s[1] < 1e-3 * s[0] * math.sqrt(len(p)) or s[1] <= 0:
            continue
        normal = vt[2]
        distinct = True
        for c, n in planes:
            cos = min(1.0, abs(float(n @ normal)))
            if math.degrees(math.acos(cos)) < apart_deg and abs(float(n @ (centre - c))) < apart_mm:
                distinct = False
                break
        if distinct:
            planes.append((centre, normal))
    return len(planes)


def _jump(before: np.ndarray, after: np.ndarray, centre: np.ndarray) -> tuple[float, float]:
    """Rotation (degrees) and displacement at ``centre`` (mm) from one ReferenceToModel to the
    next."""
    relative = after[:3, :3] @ before[:3, :3].T
    cos = np.clip((np.trace(relative) - 1.0) / 2.0, -1.0, 1.0)
    a = before[:3, :3] @ centre + before[:3, 3]
    b = after[:3, :3] @ centre + after[:3, 3]
    return math.degrees(math.acos(float(cos))), float(np.linalg.norm(b - a))
