"""2D/3D registration of the preoperative model to segmented fluoroscopy, tracked frame to frame.

Each update takes a fluoroscopy label map (``Image`` of modality ``LABELS``; its ``meta`` holds
the C-arm geometry, see :mod:`~igtflow.registration.fluoro_geometry`) and estimates the 6-DoF
``ModelToReference`` pose: the model's contour generators (organ outline, vessel and lesion
outlines, :mod:`~igtflow.registration.fluoro_model`) are projected and pulled onto the edges of
the silhouette and vessel regions by Gauss-Newton on their signed distance maps
(:mod:`~igtflow.registration.fluoro_contours`), with Huber weights truncated at a shrinking
radius. It starts from the last valid pose (or ``init``); when that fails it restarts from a few
poses around it, shifted so that the outlines' centroids agree, and keeps the best.

One view sees depth only through magnification (1 % per 7.5 mm at the isocentre), so the pose
along the beam is poorly observed. The estimate states it: ``out_of_plane_sd_mm`` is the standard
deviation of the targets along their rays from the fit's covariance, beside ``in_plane_sd_mm``.
The outline's errors are those of a rigid model of a deforming organ, correlated along it, so
the whole outline counts as ``outline_observations`` independent observations. A Gaussian prior
(SD ``depth_prior_sd_mm``) keeps the model's centre at the depth of the initial pose
(``depth_prior="init"``: the setup's guess) or of the isocentre (``"isocentre"``: the C-arm
centred on the anatomy); the outline's magnification improves little on it.

An estimate is valid only when the outlines fit: enough model points in the field, at least
``min_inliers`` of them within ``inlier_px`` of an edge, ``min_coverage`` of the edge pixels
within reach of a projected model point (another model or a blob leaves parts of the image
unexplained) and a robust contour error under ``max_error_mm``. Otherwise ``reason`` says which
test failed and the pose is the last valid one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import cv2
import numpy as np

from igtflow.registration.case import PreopCase
from igtflow.registration.fluoro_contours import FluoroContours, bilinear, extract_contours
from igtflow.registration.fluoro_contours import round_field as fluoro_field
from igtflow.registration.fluoro_geometry import CArmView
from igtflow.registration.fluoro_model import ContourMesh, FluoroModel
from igtflow.registration.icp import rotation_from_vector
from igtflow.registration.preop_model import SurfaceModel
from igtflow.stream.messages import Image

MIN_EDGE_PIXELS = 150  # fewer silhouette edge pixels: no contour to register to
IN_PLANE_PX = 12.0  # wider truncation radii (early, far off) fit the in-plane moves only
INSIDE_PX = 1.0  # outline points deeper inside the region than this do not pull (at the end)


@dataclass(frozen=True)
class FluoroEstimate:
    """One update: ``model_to_reference`` (4×4), whether to trust it, and what it implies."""

    model_to_reference: np.ndarray
    valid: bool
    error_mm: float
    reason: str
    targets: dict[str, np.ndarray] = field(default_factory=dict)  # name → Reference RAS
    projected_targets: dict[str, np.ndarray] = field(default_factory=dict)  # name → (u, v)
    out_of_plane_sd_mm: float = float("inf")
    in_plane_sd_mm: float = float("inf")
    inlier_fraction: float = 0.0
    coverage: float = 0.0
    points: int = 0
    restarted: bool = False
    time_ms: float = 0.0  # wall clock
    cpu_ms: float = 0.0  # this thread's CPU time: the cost on a core of its own


@dataclass
class _Fit:
    pose: np.ndarray
    residuals: np.ndarray
    jacobian: np.ndarray
    pixels: np.ndarray
    outside: int  # model points that fell outside the field
    cost: float = 0.0


class FluoroRegistrar:
    """Label maps in (:meth:`update`), ``ModelToReference`` estimates out.

    ``init`` is the first guess of ``ModelToReference`` (by default: the model as it is, in the
    Reference frame); ``geometry`` is C-arm meta for frames that carry none. ``silhouette``
    False fits the vessels alone: for label maps whose organ is a guess (a network sees the
    organ's faint shadow poorly, the contrast-filled vessels well).
    """

    def __init__(
        self,
        case_or_model: PreopCase | SurfaceModel | FluoroModel,
        targets: Mapping[str, np.ndarray] | None = None,
        init: np.ndarray | None = None,
        geometry: Mapping[str, Any] | None = None,
        round_field: bool = True,
        max_error_mm: float = 1.5,
        min_inliers: float = 0.5,
        min_coverage: float = 0.7,
        inlier_px: float = 2.0,
        min_points: int = 100,
        iterations: int = 12,
        outline_observations: float = 1.0,
        depth_prior_sd_mm: float = 10.0,
        depth_prior: Literal["init", "isocentre"] = "init",
        silhouette: bool = True,
    ) -> None:
        if isinstance(case_or_model, FluoroModel):
            self.model = case_or_model
        else:
            self.model = FluoroModel.from_case(case_or_model, targets)
        self.init = np.eye(4) if init is None else np.asarray(init, np.float64).copy()
        if self.init.shape != (4, 4):
            raise ValueError(f"init must be a 4×4 matrix, got shape {self.init.shape}")
        self.geometry = dict(geometry) if geometry is not None else None
        self.round_field = round_field
        self.max_error_mm = max_error_mm
        self.min_inliers = min_inliers
        self.min_coverage = min_coverage
        self.inlier_px = inlier_px
        self.min_points = min_points
        self.iterations = iterations
        self.silhouette = silhouette
        self.outline_observations = outline_observations
        self.depth_prior_sd_mm = depth_prior_sd_mm
        if depth_prior not in ("init", "isocentre"):
            raise ValueError(f"depth_prior must be 'init' or 'isocentre', got {depth_prior!r}")
        self.depth_prior = depth_prior
        self.last_valid: np.ndarray | None = None
        self._fields: dict[tuple[int, int], np.ndarray] = {}

    @property
    def model_to_reference(self) -> np.ndarray:
        """The last valid pose (or the initial guess)."""
        return (self.init if self.last_valid is None else self.last_valid).copy()

    # --- the update --------------------------------------------------------------------------
    def update(self, labels: Image) -> FluoroEstimate:
        """Register the model to one fluoroscopy label map."""
        start = time.perf_counter(), time.thread_time()
        if labels.modality != "LABELS":
            raise ValueError(f"expected a label map (modality LABELS), got {labels.modality}")
        meta = labels.meta if "projection" in labels.meta else (self.geometry or labels.meta)
        view = CArmView.from_meta(meta)
        contours = extract_contours(labels.data, self._field(labels.data.shape[:2]))
        estimate = self._register(view, contours)
        return _with_time(estimate, start)

    def _field(self, shape: tuple[int, int]) -> np.ndarray:
        if shape not in self._fields:
            self._fields[shape] = fluoro_field(*shape, self.round_field)
        return self._fields[shape]

    def _register(self, view: CArmView, contours: FluoroContours) -> FluoroEstimate:
        if len(contours.silhouette.edges) < MIN_EDGE_PIXELS:
            return self._invalid(
                view,
                f"no contour: {len(contours.silhouette.edges)} silhouette edge pixels, at least "
                f"{MIN_EDGE_PIXELS} needed",
            )
        base = self.model_to_reference
        if self.last_valid is not None:  # tracking: the pose moved a little since the last frame
            fit = self._solve(base, view, contours, self.iterations, tau_start=10.0)
        else:
            fit = self._solve(base, view, contours, 2 * self.iterations, tau_start=40.0)
        verdict = self._verdict(fit, view, contours)
        restarted = False
        if verdict[0]:
            restarted = True
            fit = self._restart(base, view, contours)
            verdict = self._verdict(fit, view, contours)
        reason, error_mm, inliers, coverage = verdict
        valid = not reason
        if valid:
            self.last_valid = fit.pose
        pose = fit.pose if valid else self.model_to_reference
        sd_out, sd_in = self._uncertainty(fit, view) if valid else (np.inf, np.inf)
        return FluoroEstimate(
            pose,
            valid,
            error_mm,
            reason,
            self._moved(pose),
            self._projected(pose, view),
            sd_out,
            sd_in,
            inliers,
            coverage,
            len(fit.residuals),
            restarted,
        )

    def _invalid(self, view: CArmView, reason: str) -> FluoroEstimate:
        pose = self.model_to_reference
        return FluoroEstimate(
            pose, False, float("inf"), reason, self._moved(pose), self._projected(pose, view)
        )

    # --- Gauss-Newton on the signed distance maps ----------------------------------------------
    def _residuals(self, pose: np.ndarray, view: CArmView, contours: FluoroContours) -> _Fit:
        """Signed distances (px) of the projected outline points and their Jacobian (N×6: turn
        about the model's centre in the Reference frame, then shift, mm and radians)."""
        r, t = pose[:3, :3], pose[:3, 3]
        eye = r.T @ (view.source - t)
        parts: list[tuple[ContourMesh, np.ndarray]] = [
            (self.model.silhouette, contours.silhouette.distance),
            (self.model.vessels, contours.vessels.distance),
        ]
        res, jac, pix = [], [], []
        outside = 0
        center = r @ self.model.center + t
        m = view.projection[:, :3]
        h, w = contours.shape
        center_uv = view.project(center[None])[0][0]
        for n, (mesh, distance) in enumerate(parts):
            if n == 0 and not self.silhouette:
                continue
            turning = mesh.turning(eye)
            points = mesh.midpoints[turning] @ r.T + t
            if len(points) == 0:
                continue
            uv, depth = view.project(points)
            if n == 0:  # the organ's outer outline only: its inner folds fall inside
                along = mesh.halves[turning] @ r.T
                keep = outermost(uv, view, points, along, center_uv)
                points, uv, depth = points[keep], uv[keep], depth[keep]
            ui, vi = np.rint(uv[:, 0]).astype(np.int64), np.rint(uv[:, 1]).astype(np.int64)
            inside = (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h) & (depth > 0)
            inside[inside] = contours.field[vi[inside], ui[inside]]
            outside += int(np.count_nonzero(~inside))
            points, uv, depth = points[inside], uv[inside], depth[inside]
            value, du, dv = bilinear(distance, uv)
            grad = (
                du[:, None] * (m[0] - uv[:, :1] * m[2]) + dv[:, None] * (m[1] - uv[:, 1:] * m[2])
            ) / depth[:, None]
            jac.append(np.hstack([np.cross(points - center, grad), grad]))
            res.append(value)
            pix.append(uv)
        if not res:
            empty = np.zeros(0)
            return _Fit(pose, empty, np.zeros((0, 6)), np.zeros((0, 2)), outside)
        return _Fit(pose, np.concatenate(res), np.vstack(jac), np.vstack(pix), outside)

    def _solve(
        self,
        pose: np.ndarray,
        view: CArmView,
        contours: FluoroContours,
        iterations: int,
        tau_start: float,
        tau_end: float = 3.0,
        delta: float = 1.0,
    ) -> _Fit:
        """Iteratively reweighted Gauss-Newton; the truncation radius shrinks from
        ``tau_start`` to ``tau_end`` pixels. While it is wider than ``in_plane_px`` only the
        moves the image sees well (across the beam, turning about it) are free: with many
        wrong matches, the weakly seen turns out of the plane would wander off."""
        pose = pose.copy()
        shrink = (tau_end / tau_start) ** (1.0 / max(iterations - 3, 1))
        tau = tau_start
        fit = self._residuals(pose, view, contours)
        in_plane = _in_plane_basis(view.beam)
        for _ in range(iterations):
            if len(fit.residuals) < 6:
                break
            a = np.abs(fit.residuals)
            huber = max(delta, 0.25 * tau)  # wide while far off: IRLS converges faster
            weight = np.where(a <= huber, 1.0, huber / np.maximum(a, 1e-9)) * (a <= tau)
            # Inner folds of the outline fall inside the region: cut them off sooner.
            weight *= fit.residuals >= -max(INSIDE_PX, 0.5 * tau)
            if np.count_nonzero(weight) < 6:
                break
            hessian, gradient = self._normal_equations(fit, weight, view)
            basis = in_plane if tau > IN_PLANE_PX else np.eye(6)
            hessian, gradient = basis.T @ hessian @ basis, basis.T @ gradient
            damping = 1e-3 * np.diag(hessian) + 1e-9
            step = basis @ -np.linalg.solve(hessian + np.diag(damping), gradient)
            turn, shift = step[:3], step[3:]
            angle = np.linalg.norm(turn)
            if angle > np.radians(5.0):
                turn *= np.radians(5.0) / angle
            if np.linalg.norm(shift) > 10.0:
                shift *= 10.0 / np.linalg.norm(shift)
            pose = _apply(pose, turn, shift, pose[:3, :3] @ self.model.center + pose[:3, 3])
            tau = max(tau * shrink, tau_end)
            fit = self._residuals(pose, view, contours)
            if angle < 1e-6 and np.linalg.norm(shift) < 1e-4 and tau <= tau_end:
                break
        fit.cost = self._cost(fit)
        return fit

    def _normal_equations(
        self, fit: _Fit, weight: np.ndarray, view: CArmView
    ) -> tuple[np.ndarray, np.ndarray]:
        """Information and gradient of the outline fit plus the depth prior on the model's
        centre. The outline's errors come mostly from the shape the rigid model cannot follow
        (breathing deformation), so they are correlated all along it: the whole outline counts
        as ``outline_observations`` independent observations, not one per point."""
        jw = fit.jacobian * weight[:, None]
        kept = max(float(np.sum(weight)), 1.0)
        variance = max(float(np.sum(weight * fit.residuals**2)) / kept, 0.25)
        scale = self.outline_observations / (variance * kept)
        hessian = scale * (jw.T @ fit.jacobian)
        gradient = scale * (jw.T @ fit.residuals)
        if self.depth_prior_sd_mm > 0:
            center = fit.pose[:3, :3] @ self.model.center + fit.pose[:3, 3]
            a = np.concatenate([np.zeros(3), view.beam])
            anchor = self.init[:3, :3] @ self.model.center + self.init[:3, 3]
            if self.depth_prior == "isocentre":
                anchor = view.isocentre
            depth = float(view.beam @ (center - anchor))
            hessian += np.outer(a, a) / self.depth_prior_sd_mm**2
            gradient += a * depth / self.depth_prior_sd_mm**2
        return hessian, gradient

    def _cost(self, fit: _Fit, tau: float = 4.0) -> float:
        """Mean truncated squared distance, counting points outside the field as misses."""
        total = len(fit.residuals) + fit.outside
        if total == 0:
            return float("inf")
        return float((np.sum(np.minimum(fit.residuals**2, tau**2)) + fit.outside * tau**2) / total)

    def _restart(self, base: np.ndarray, view: CArmView, contours: FluoroContours) -> _Fit:
        """Lost: a few short fits from poses around ``base`` (its outline's centroid moved onto the
        image's, turned about the beam and the detector axes), the best one refined."""
        centered = self._centroid_aligned(base, view, contours)
        beam = view.beam
        across = np.cross(beam, [0.0, 0.0, 1.0])
        across = across / np.linalg.norm(across) if np.linalg.norm(across) > 1e-6 else [1, 0, 0]
        up = np.cross(beam, across)
        turns = [np.zeros(3)] + [
            np.radians(deg) * axis
            for axis, degrees in ((beam, (-20, -10, 10, 20)), (across, (-12, 12)), (up, (-12, 12)))
            for deg in degrees
        ]
        origin = centered[:3, :3] @ self.model.center + centered[:3, 3]
        fits = []
        for start in (base, centered):
            for turn in turns if start is centered else [np.zeros(3)]:
                pose = _apply(start, turn, np.zeros(3), origin)
                fits.append(self._solve(pose, view, contours, 10, tau_start=40.0, tau_end=8.0))
        best = min(fits, key=lambda f: f.cost)
        return self._solve(best.pose, view, contours, self.iterations, tau_start=8.0)

    def _centroid_aligned(
        self, pose: np.ndarray, view: CArmView, contours: FluoroContours
    ) -> np.ndarray:
        """``pose`` shifted across the beam so the projected outline's centroid lands on that of
        the silhouette's edge pixels."""
        r, t = pose[:3, :3], pose[:3, 3]
        points = self.model.silhouette.outline(r.T @ (view.source - t)) @ r.T + t
        if len(points) == 0:
            return pose
        uv, depth = view.project(points)
        miss = contours.silhouette.edges.mean(axis=0) - uv.mean(axis=0)
        center = r @ self.model.center + t
        ray = view.ray(center[None])[0]
        # Pixel offsets → mm at the model's depth, along the detector's u and v directions.
        m = view.projection[:, :3]
        scale = float(np.median(depth))
        u_dir = np.linalg.solve(m, [scale, 0.0, 0.0])
        v_dir = np.linalg.solve(m, [0.0, scale, 0.0])
        shift = miss[0] * u_dir + miss[1] * v_dir
        shift -= ray * (shift @ ray)
        out = pose.copy()
        out[:3, 3] += shift
        return out

    # --- verdict and uncertainty ---------------------------------------------------------------
    def _verdict(
        self, fit: _Fit, view: CArmView, contours: FluoroContours
    ) -> tuple[str, float, float, float]:
        """(reason, or "" when valid; contour error mm; inlier fraction; coverage)."""
        n = len(fit.residuals)
        if n < self.min_points:
            return (
                f"{n} model outline points in the field, at least {self.min_points}",
                np.inf,
                0,
                0,
            )
        a = np.abs(fit.residuals)
        inliers = float(np.mean(a <= self.inlier_px))
        tau = 3.0 * self.inlier_px
        error_mm = float(np.sqrt(np.mean(np.minimum(a, tau) ** 2))) * view.iso_mm_per_px
        coverage = self._coverage(fit, contours)
        if inliers < self.min_inliers:
            return (
                f"{inliers:.0%} of the outline within {self.inlier_px:g} px of an edge, "
                f"{self.min_inliers:.0%} needed",
                error_mm,
                inliers,
                coverage,
            )
        if coverage < self.min_coverage:
            return (
                f"{coverage:.0%} of the image's edges explained by the model, "
                f"{self.min_coverage:.0%} needed",
                error_mm,
                inliers,
                coverage,
            )
        if error_mm > self.max_error_mm:
            return (
                f"contour error {error_mm:.2f} mm above {self.max_error_mm:g} mm",
                error_mm,
                inliers,
                coverage,
            )
        return "", error_mm, inliers, coverage

    def _coverage(self, fit: _Fit, contours: FluoroContours, reach_px: float = 5.0) -> float:
        """Share of the image's edge pixels within ``reach_px`` of a projected outline point
        (the points lie 3-5 px apart along a contour: half that is in the reach)."""
        edges = contours.vessels.edges
        if self.silhouette:
            edges = np.concatenate([contours.silhouette.edges, edges])
        if len(edges) == 0 or len(fit.pixels) == 0:
            return 0.0
        h, w = contours.shape
        canvas = np.full((h, w), 255, np.uint8)
        ij = np.rint(fit.pixels).astype(np.int64)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
        canvas[ij[ok, 1], ij[ok, 0]] = 0
        reach = cv2.distanceTransform(canvas, cv2.DIST_L2, 3)
        step = max(1, len(edges) // 2000)
        sample = edges[::step].astype(np.int64)
        return float(np.mean(reach[sample[:, 1], sample[:, 0]] <= reach_px))

    def _uncertainty(self, fit: _Fit, view: CArmView) -> tuple[float, float]:
        """SD (mm) of the targets along their rays and across them, from the fit's covariance."""
        keep = np.abs(fit.residuals) <= 3.0 * self.inlier_px
        if np.count_nonzero(keep) <= 6:
            return float("inf"), float("inf")
        information, _ = self._normal_equations(fit, keep.astype(np.float64), view)
        try:
            covariance = np.linalg.inv(information)
        except np.linalg.LinAlgError:
            return float("inf"), float("inf")
        pose = fit.pose
        center = pose[:3, :3] @ self.model.center + pose[:3, 3]
        points = list(self._moved(pose).values()) or [center]
        sd_out, sd_in = 0.0, 0.0
        for p in points:
            x = p - center
            # d(point)/d(turn, shift): turn ω moves p by ω × x.
            jt = np.hstack([-_skew(x), np.eye(3)])
            cov = jt @ covariance @ jt.T
            ray = view.ray(p[None])[0]
            along = float(ray @ cov @ ray)
            sd_out = max(sd_out, np.sqrt(max(along, 0.0)))
            sd_in = max(sd_in, np.sqrt(max(np.trace(cov) - along, 0.0) / 2.0))
        return sd_out, sd_in

    # --- targets -----------------------------------------------------------------------------
    def _moved(self, pose: np.ndarray) -> dict[str, np.ndarray]:
        return {k: pose[:3, :3] @ p + pose[:3, 3] for k, p in self.model.targets.items()}

    def _projected(self, pose: np.ndarray, view: CArmView) -> dict[str, np.ndarray]:
        moved = self._moved(pose)
        if not moved:
            return {}
        uv, _ = view.project(np.stack(list(moved.values())))
        return dict(zip(moved, uv, strict=True))


def outermost(
    uv: np.ndarray,
    view: CArmView,
    points: np.ndarray,
    along: np.ndarray,
    center: np.ndarray,
    bins: int = 720,
    slack_px: float = 0.5,
) -> np.ndarray:
    """Mask of the outline points (their pixels ``uv``, 3D ``points`` and half edge vectors
    ``along``) within ``slack_px`` of the farthest outline from ``center`` in their direction:
    the outer outline of a roughly star-shaped region. The farthest outline per sector is
    taken from samples along every edge, so that no sector is empty between midpoints."""
    samples = np.concatenate([points + f * along for f in (-1.0, -0.5, 0.5, 1.0)])
    near, _ = view.project(samples)
    near = np.concatenate([near, uv])

    def polar(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = p - center
        angle = (np.arctan2(d[:, 1], d[:, 0]) + np.pi) * (bins / (2 * np.pi))
        return np.hypot(d[:, 0], d[:, 1]), np.clip(angle.astype(np.int64), 0, bins - 1)

    radius, sector = polar(near)
    farthest = np.zeros(bins)
    np.maximum.at(farthest, sector, radius)
    radius, sector = polar(uv)
    return radius >= farthest[sector] - slack_px


def _in_plane_basis(beam: np.ndarray) -> np.ndarray:
    """6×3: turn about the beam, shift along the two detector directions."""
    across = np.cross(beam, [0.0, 0.0, 1.0])
    if np.linalg.norm(across) < 1e-6:
        across = np.cross(beam, [1.0, 0.0, 0.0])
    across /= np.linalg.norm(across)
    up = np.cross(beam, across)
    basis = np.zeros((6, 3))
    basis[:3, 0], basis[3:, 1], basis[3:, 2] = beam, across, up
    return basis


def _apply(pose: np.ndarray, turn: np.ndarray, shift: np.ndarray, center: np.ndarray) -> np.ndarray:
    """``pose`` turned by ``turn`` (radians, axis-angle) about ``center`` then shifted."""
    rot = rotation_from_vector(turn)
    out = np.eye(4)
    out[:3, :3] = rot @ pose[:3, :3]
    out[:3, 3] = rot @ (pose[:3, 3] - center) + center + shift
    return out


def _skew(x: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -x[2], x[1]], [x[2], 0.0, -x[0]], [-x[1], x[0], 0.0]])


def _with_time(estimate: FluoroEstimate, start: tuple[float, float]) -> FluoroEstimate:
    wall, cpu = time.perf_counter() - start[0], time.thread_time() - start[1]
    return replace(estimate, time_ms=wall * 1e3, cpu_ms=cpu * 1e3)
