"""The deformable update after a rigid fit: a smooth displacement field that bends the model
onto the window's points, so the targets move with the tissue.

The field lives in the model frame and moves model points forward, ``x → x + u(x)``, with

    u(x) = Σ_j exp(−|x − c_j|² / 2σ²) w_j

over a lattice of control nodes ``c_j`` (``spacing_mm`` apart, those near the model): a Gaussian
radial basis, as smooth as the tissue's motion (the phantom's own deformation is a few Gaussians
of 38-55 mm). The bent model is then placed by the rigid pose (with ``translate``, its
translation refined with the field: ``τ``). Each update fits the weights ``w`` (M×3) to the
point-to-surface residuals of the window's points, mapped into the model frame by the rigid fit:

- a point ``p`` lies on the bent surface when its pre-image ``z`` (``z + u(z) + τ = p``, one
  fixed-point step per pass) lies on the model: ``n·(u(z) + τ) = n·p − d`` with ``(n, d)`` the
  model's tangent plane at ``z`` (the :class:`~igtflow.registration.closest_points.ModelTarget`
  plane grid: no search). Only the normal part is seen, as in point-to-plane ICP;
- Tikhonov regularisation in the kernel's own norm (``wᵀKw``, ``smoothness``) keeps the field
  smooth and small where no point constrains it (on the phantom, too weak a one fits the
  contours' pixel noise and carries it out to the targets); each fit starts from the previous
  field (its pre-images), ``memory`` also pulls it there, and ``history_s`` fits earlier
  windows' points as well;
- points whose residual is beyond ``max_residual_mm`` are left out (wrong correspondences), and
  the rest weighted by Tukey's biweight;
- when no trusted data comes (the rigid fit is not valid), the field decays toward zero with
  time constant ``decay_s``: an old deformation is not kept as if it were still true.

A fit is refused (:attr:`DeformationFit.valid` false, with a reason; the previous field is kept
and decays) when the field's largest displacement on the model or its targets exceeds
``max_mm`` (no plausible tissue deformation after a rigid fit is that large), when it would fold
the tissue (its gradient's norm over ``max_stretch``), or when it leaves the points farther from
the surface than the rigid fit did.

What limits it on the phantom (``igtflow eval registration``): the rigid pose. A window of ten
slices is a slab of the organ a centimetre thick; the rigid fit takes up part of the deformation
as a slide or a turn that the slab does not pin, and the field, fitted from that pose, cannot
see it either: from the rigid fit's pose it gains little (seeds 1001-1002: TRE median 4.1 →
3.5 mm) or loses (1003-1004: 2.3 → 2.8 mm). Given the phantom's true breathing shift as the pose
instead, the same field reached a median 1.3 mm, p95 2.1 mm with ``history_s`` 1 s (1001-1002).
Tried and not kept: a turn averaged over a breathing period, the translation held to the line
the organ's centre moves along, ``τ``, ``memory`` and earlier windows' points (``history_s``):
none better on the held-out seeds, so all off by default.

Hand-written rather than a library's coherent point drift (pycpd): CPD's non-rigid step solves
for a weight per data point (N×N, thousands) against the model's points, with no plane grid, no
warm start and no cap; this solves a few hundred unknowns on residuals the rigid fit already has.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.spatial import cKDTree

from igtflow.registration.closest_points import NO_PLANE_OFFSET, ModelTarget

TUKEY_C_MM = 3.0  # residual (mm) past which a point has no weight in a pass
# A plain ridge on the weights per data point: keeps the float32 normal equations positive
# definite where nodes are close for the kernel (far below the residuals' scale otherwise).
RIDGE = 1e-4


@dataclass(frozen=True)
class FieldSettings:
    """How the field is shaped, fitted and judged (defaults tuned with ``igtflow eval
    registration`` on the phantom's held-out seeds)."""

    sigma_mm: float = 40.0  # kernel width: the scale of the deformations it can represent
    spacing_mm: float = 40.0  # control-node lattice spacing (≤ σ, or the field ripples)
    smoothness: float = 0.001  # weight of wᵀKw per data point: the field's size where unseen
    memory: float = 0.0  # weight of the previous field per data point: the warm start
    decay_s: float = 2.0  # with no trusted data, the field falls by e every this long
    translate: bool = False  # refine the rigid translation with the field (τ)
    history_s: float = 0.0  # earlier fits' points (model frame) this recent are fitted too
    max_residual_mm: float = 6.0  # points farther from the surface are not used
    iterations: int = 3  # passes (pre-image, planes, solve)
    max_points: int = 1500  # an even subsample of the window's points, to bound the cost
    max_mm: float = 15.0  # a larger displacement is implausible: the fit is refused
    max_stretch: float = 0.5  # largest gradient norm: more folds or tears the tissue


@dataclass(frozen=True)
class DisplacementField:
    """One field (immutable): control nodes, their weights and the kernel width."""

    nodes: np.ndarray  # M×3, model frame
    weights: np.ndarray  # M×3
    sigma_mm: float

    def displacement(self, points: np.ndarray) -> np.ndarray:
        """u at each point (…×3, model frame)."""
        points = np.asarray(points, np.float64)
        return _kernel(points.reshape(-1, 3), self.nodes, self.sigma_mm) @ self.weights

    def warp(self, points: np.ndarray) -> np.ndarray:
        """Model points moved with the tissue: ``x + u(x)`` (…×3, model frame)."""
        points = np.asarray(points, np.float64)
        if not self.weights.any():
            return points.copy()
        return points + self.displacement(points).reshape(points.shape)

    def to_reference(self, points: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """Model points bent with the tissue, then placed by ``pose`` (ModelToReference)."""
        return self.warp(points) @ pose[:3, :3].T + pose[:3, 3]

    def largest_mm(self, points: np.ndarray) -> float:
        """The largest displacement at ``points``."""
        if not len(points) or not self.weights.any():
            return 0.0
        return float(np.linalg.norm(self.displacement(points), axis=1).max())

    def stretch(self) -> float:
        """The largest spectral norm of u's gradient at the nodes: 1 would fold the tissue."""
        if not self.weights.any():
            return 0.0
        g = _kernel(self.nodes, self.nodes, self.sigma_mm)  # M×M
        diff = self.nodes[:, None, :] - self.nodes[None, :, :]  # x_i − c_j
        # ∂u/∂x = Σ_j w_j (−(x − c_j)/σ²) k_j: a 3×3 per node.
        grad = -np.einsum("ij,ijb,ja->iab", g, diff, self.weights) / self.sigma_mm**2
        return float(np.linalg.norm(grad, ord=2, axis=(1, 2)).max())


@dataclass(frozen=True)
class DeformationFit:
    """One update of the field and its quality; ``valid`` false says why in ``reason``."""

    field: DisplacementField  # the field in force after this update (this fit's when valid)
    pose: np.ndarray  # ModelToReference the bent model is placed with (see to_reference)
    valid: bool
    reason: str
    largest_mm: float = 0.0  # the field's largest displacement on the model and its targets
    rigid_median_mm: float = math.nan  # median point-to-surface distance before...
    median_mm: float = math.nan  # ...and after the deformation (capped at max_residual_mm)
    points: int = 0
    time_ms: float = 0.0


class DeformableUpdate:
    """The deformable part of a registration stream: :meth:`fit` after each trusted rigid fit,
    :meth:`decay` when there is none; :attr:`field` is the current field (zero at the start).

    ``target`` is the model surface (its plane grid gives the residuals); ``anchors`` are model
    points the cap is checked on (its targets; a sample of the surface is added here)."""

    def __init__(
        self,
        target: ModelTarget,
        anchors: np.ndarray | None = None,
        settings: FieldSettings | None = None,
    ) -> None:
        self.target = target
        self.settings = s = settings or FieldSettings()
        if s.sigma_mm <= 0 or s.spacing_mm <= 0 or s.max_mm <= 0:
            raise ValueError(
                f"sigma_mm, spacing_mm and max_mm must be > 0, got {s.sigma_mm}, "
                f"{s.spacing_mm} and {s.max_mm}"
            )
        self.nodes = _lattice(target.points, s.spacing_mm, s.sigma_mm)
        gram = _kernel(self.nodes, self.nodes, s.sigma_mm)
        self._gram = gram  # the field's squared norm is Σ_a wₐᵀ K wₐ
        step = max(1, len(target.points) // 2000)
        extra = np.zeros((0, 3)) if anchors is None else np.asarray(anchors, np.float64)
        self.anchors = np.vstack([target.points[::step], extra.reshape(-1, 3)])
        self.field = DisplacementField(self.nodes, np.zeros_like(self.nodes), s.sigma_mm)
        self.pose: np.ndarray | None = None  # the rigid pose of the last valid fit, refined
        self._stamp: float | None = None
        self._history: deque[tuple[float, np.ndarray]] = deque()

    def reset(self) -> None:
        """Back to no deformation."""
        self.field = DisplacementField(
            self.nodes, np.zeros_like(self.nodes), self.settings.sigma_mm
        )
        self.pose, self._stamp = None, None
        self._history.clear()

    def decay(self, stamp_s: float) -> DisplacementField:
        """Let the field fall toward zero for the time since the last fit or decay."""
        if self._stamp is not None and stamp_s > self._stamp and self.field.weights.any():
            factor = math.exp(-(stamp_s - self._stamp) / self.settings.decay_s)
            self.field = DisplacementField(
                self.nodes, self.field.weights * factor, self.settings.sigma_mm
            )
        self._stamp = stamp_s if self._stamp is None else max(self._stamp, stamp_s)
        return self.field

    def fit(self, points: np.ndarray, rigid: np.ndarray, stamp_s: float) -> DeformationFit:
        """Fit the field to ``points`` (N×3, Reference frame), given the rigid fit's
        ``ModelToReference`` ``rigid``, warm-started from the current field decayed to
        ``stamp_s``; the field and pose are kept only when the fit is valid."""
        start = time.perf_counter()
        s = self.settings
        prior = self.decay(stamp_s).weights
        cloud = np.asarray(points, np.float64).reshape(-1, 3)
        cloud = cloud[np.isfinite(cloud).all(axis=1)]
        cloud = _even(cloud, s.max_points)
        rigid = np.asarray(rigid, np.float64)
        by_rigid = (cloud - rigid[:3, 3]) @ rigid[:3, :3]
        normal, offset = self._plane(by_rigid)
        before = _spread(np.einsum("ij,ij->i", normal, by_rigid) - offset, s.max_residual_mm)
        pose, now = rigid, by_rigid
        while self._history and self._history[0][0] < stamp_s - s.history_s:
            self._history.popleft()
        p = now
        if self._history:
            old = _even(np.concatenate([h for _, h in self._history]), s.max_points // 2)
            p = np.concatenate([old, now])
        current = np.zeros(len(p), bool)
        current[len(p) - len(now) :] = True  # the points the translation τ applies to
        weights, shift, kernel = prior, np.zeros(3), self._kernel(p)
        z = p
        used = 0
        for _ in range(s.iterations):
            if weights.any() or shift.any():  # a fixed-point step to the pre-image z
                z = p - kernel @ weights - current[:, None] * shift
                kernel = self._kernel(z)
                normal, offset = self._plane(z)
            # On the surface: n·(p − τ − u(z)) = d at the pre-image z.
            rhs = np.einsum("ij,ij->i", normal, p) - offset
            moved = kernel @ weights + current[:, None] * shift
            residual = rhs - np.einsum("ij,ij->i", normal, moved)
            keep = np.abs(residual) <= s.max_residual_mm  # NaN (no plane) is never kept
            used = int(np.count_nonzero(keep))
            if used < self.min_points:
                break
            tukey = np.clip(1.0 - (residual[keep] / TUKEY_C_MM) ** 2, 0.0, None) ** 2
            shift_rows = normal[keep] * (current[keep, None] * s.translate)
            weights, shift = self._solve(
                kernel[keep], normal[keep], shift_rows, rhs[keep], tukey, prior
            )
        z = p - kernel @ weights - current[:, None] * shift
        kernel = self._kernel(z)
        normal, offset = self._plane(z)
        moved = kernel @ weights + current[:, None] * shift
        after = _spread(np.einsum("ij,ij->i", normal, p - moved) - offset, s.max_residual_mm)
        field = DisplacementField(self.nodes, weights, s.sigma_mm)
        pose = pose.copy()
        pose[:3, 3] += pose[:3, :3] @ shift
        largest = field.largest_mm(self.anchors)
        reason = ""
        if used < self.min_points:
            reason = (
                f"{used} points near the surface, at least {self.min_points} needed to fit "
                "a deformation"
            )
        elif largest > s.max_mm:
            reason = (
                f"deformation of {largest:.1f} mm, over the {s.max_mm:g} mm a tissue plausibly "
                "deforms after a rigid fit: wrong fit or wrong model?"
            )
        elif (stretch := field.stretch()) > s.max_stretch:
            reason = (
                f"the deformation would stretch the tissue by {stretch:.2f} (at most "
                f"{s.max_stretch:g}): it folds, not a tissue's motion"
            )
        elif after > before + 0.05:
            reason = (
                f"the deformation leaves the points {after:.2f} mm from the surface (median), "
                f"farther than without it ({before:.2f} mm)"
            )
        if not reason:
            self.field, self.pose = field, pose
            if s.history_s > 0:
                self._history.append((stamp_s, now - shift))
        return DeformationFit(
            self.field,
            self.pose if self.pose is not None else rigid,
            not reason,
            reason,
            largest,
            before,
            after,
            used,
            (time.perf_counter() - start) * 1e3,
        )

    @property
    def min_points(self) -> int:
        """Fewer points near the surface than this fit no deformation (a tenth of the
        unknowns: below that, the regulariser alone shapes the field)."""
        return max(30, len(self.nodes) * 3 // 10)

    def _solve(
        self,
        kernel: np.ndarray,
        normal: np.ndarray,
        shift_rows: np.ndarray,
        rhs: np.ndarray,
        weight: np.ndarray,
        prior: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """argmin Σ wᵢ(nᵢ·u(zᵢ) + sᵢ·τ − rhsᵢ)² + Σw·(λ‖W‖²_K + μ‖W − prior‖²_K) over the
        M×3 weights W and the translation τ (free: the rigid pose's translation, refined)."""
        s = self.settings
        m = len(self.nodes)
        # Rows nᵢ ⊗ Gᵢ (x block, y block, z block) then sᵢ. The normal equations in float32:
        # one GEMM, twice as fast as float64, and the regulariser keeps them well posed.
        rows = np.empty((len(rhs), 3 * m + 3))
        rows[:, : 3 * m] = (kernel[:, None, :] * normal[:, :, None]).reshape(len(rhs), 3 * m)
        rows[:, 3 * m :] = shift_rows
        rows32 = rows.astype(np.float32)
        hessian = ((rows32.T * weight.astype(np.float32)) @ rows32).astype(np.float64)
        gradient = rows.T @ (weight * rhs)
        scale = max(1.0, float(weight.sum()))
        hessian[np.diag_indices(3 * m + 3)] += scale * RIDGE
        for a in range(3):
            block = slice(a * m, (a + 1) * m)
            hessian[block, block] += scale * (s.smoothness + s.memory) * self._gram
            gradient[block] += scale * s.memory * (self._gram @ prior[:, a])
        solved = scipy.linalg.solve(hessian, gradient, assume_a="pos")
        return np.ascontiguousarray(solved[: 3 * m].reshape(3, m).T), solved[3 * m :]

    def _kernel(self, points: np.ndarray) -> np.ndarray:
        return _kernel(points, self.nodes, self.settings.sigma_mm)

    def _plane(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's tangent plane (unit normal, offset) in each point's grid cell; the
        offset is NaN where there is none (farther than the grid's band)."""
        plane = self.target.planes[self.target.cells_of(points)].astype(np.float64)
        offset = plane[:, 3].copy()
        offset[offset >= NO_PLANE_OFFSET] = np.nan
        return plane[:, :3], offset


def _kernel(points: np.ndarray, nodes: np.ndarray, sigma_mm: float) -> np.ndarray:
    """N×M Gaussian kernel between points and nodes (|x − c|² expanded into a matrix product)."""
    d2 = np.sum(points * points, axis=1)[:, None] - 2.0 * points @ nodes.T
    d2 += np.sum(nodes * nodes, axis=1)[None, :]
    return np.exp(np.maximum(d2, 0.0) * (-0.5 / sigma_mm**2))


def _lattice(points: np.ndarray, spacing_mm: float, sigma_mm: float) -> np.ndarray:
    """Control nodes ``spacing_mm`` apart over the points' bounding box, those within
    ``sigma_mm`` of a point (the box's far corners bend nothing): fewer unknowns."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    axes = [
        np.linspace(a, b, max(2, math.ceil((b - a) / spacing_mm) + 1))
        for a, b in zip(lo, hi, strict=True)
    ]
    nodes = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    near = cKDTree(points).query(nodes, distance_upper_bound=sigma_mm)[0] <= sigma_mm
    return nodes[near]


def _even(points: np.ndarray, count: int) -> np.ndarray:
    """At most ``count`` of the points, evenly spread over their order."""
    if len(points) <= count:
        return points
    return points[np.linspace(0, len(points) - 1, count).round().astype(np.intp)]


def _spread(residual: np.ndarray, cap_mm: float) -> float:
    """Median distance to the surface, each capped at ``cap_mm`` (no plane: the cap)."""
    if not len(residual):
        return math.nan
    return float(np.median(np.minimum(np.nan_to_num(np.abs(residual), nan=cap_mm), cap_mm)))
