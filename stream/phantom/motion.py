"""Breathing plus smooth non-rigid deformation, known exactly at every time t.

``forward(x_ref, t)`` moves reference points to where they are at time t:

    x_t = x_ref + b(t) * d + sum_k a_k(t) * exp(-|x_ref - c_k|^2 / (2 s_k^2)) * v_k

with b(t) = A * (1 - cos^4(pi t / T)) (Lujan's breathing curve, 0 at exhale, A at inhale) along a
mostly superior-inferior direction d, and a few Gaussian control displacements whose weights
a_k(t) change slowly. ``inverse`` solves x_ref = x_t - b d - sum(...) by fixed-point iteration; the
Gaussian part is a contraction (Lipschitz <= 0.4 by the parameter check), so 10 iterations reach
well below 1e-3 mm.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

MAX_AMPLITUDE_MM = 30.0
MAX_DEFORMATION_MM = 6.0
CONTROLS = 4
INVERSE_ITERATIONS = 10
# Inhale moves the liver down (inferior) and a little forward (anterior).
BREATHING_DIRECTION = np.array([0.0, 0.25, -1.0]) / np.linalg.norm([0.0, 0.25, -1.0])


def check_range(name: str, value: float, lo: float, hi: float, unit: str = "") -> float:
    """``value`` as float, or a ValueError that names the parameter and its allowed range."""
    if not isinstance(value, int | float | np.floating | np.integer) or not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo:g} and {hi:g}{unit}, got {value!r}")
    return float(value)


@dataclass(eq=False)
class Motion:
    """The displacement field of the phantom as a function of reference position and time."""

    amplitude_mm: float
    period_s: float
    deformation_mm: float
    centers: np.ndarray  # K×3
    sigmas: np.ndarray  # K
    vectors: np.ndarray  # K×3, |v| = deformation_mm
    freqs_hz: np.ndarray  # K
    phases: np.ndarray  # K

    def breathing(self, t: float) -> float:
        """Breathing excursion in mm along BREATHING_DIRECTION at time ``t`` (0 = exhale)."""
        return self.amplitude_mm * (1.0 - np.cos(np.pi * t / self.period_s) ** 4)

    def weights(self, t: float) -> np.ndarray:
        return np.sin(2 * np.pi * self.freqs_hz * t + self.phases)

    def _gaussian_part(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        # All K Gaussians at once, |x - c|^2 expanded into matrix products: this runs ten times
        # per frame inside ``inverse``, on small arrays where each numpy call's overhead counts.
        d2 = np.sum(x * x, axis=-1, keepdims=True) + (x @ self._minus_2c + self._c2)
        return np.exp(d2 * self._neg_half_inv_var) @ (weights[:, None] * self.vectors)

    @functools.cached_property
    def _neg_half_inv_var(self) -> np.ndarray:
        return -0.5 / (self.sigmas * self.sigmas)

    @functools.cached_property
    def _minus_2c(self) -> np.ndarray:
        return -2.0 * self.centers.T

    @functools.cached_property
    def _c2(self) -> np.ndarray:
        return np.sum(self.centers**2, axis=1)

    def displacement(self, x_ref: np.ndarray, t: float) -> np.ndarray:
        """u(x_ref, t) such that x_t = x_ref + u (…×3 mm)."""
        return self.breathing(t) * BREATHING_DIRECTION + self._gaussian_part(x_ref, self.weights(t))

    def forward(self, x_ref: np.ndarray, t: float) -> np.ndarray:
        """Where reference points are at time ``t``."""
        return x_ref + self.displacement(x_ref, t)

    def inverse(
        self, x_t: np.ndarray, t: float, iterations: int = INVERSE_ITERATIONS
    ) -> np.ndarray:
        """Reference points that are at ``x_t`` at time ``t`` (error << 0.01 mm)."""
        shifted = x_t - self.breathing(t) * BREATHING_DIRECTION
        weights = self.weights(t)
        x_ref = shifted
        for _ in range(iterations):
            x_ref = shifted - self._gaussian_part(x_ref, weights)
        return x_ref


def make_motion(
    seed: int,
    organ_center: np.ndarray,
    amplitude_mm: float = 10.0,
    period_s: float = 4.0,
    deformation_mm: float = 4.0,
) -> Motion:
    """The motion for ``seed``; parameters are checked and named in the error when out of range."""
    amplitude_mm = check_range("breathing_amplitude_mm", amplitude_mm, 0.0, MAX_AMPLITUDE_MM, " mm")
    period_s = check_range("breathing_period_s", period_s, 0.5, 30.0, " s")
    deformation_mm = check_range("deformation_mm", deformation_mm, 0.0, MAX_DEFORMATION_MM, " mm")
    rng = np.random.default_rng([int(seed), 0x30])
    centers = organ_center + rng.uniform([-50, -30, -40], [50, 30, 40], (CONTROLS, 3))
    sigmas = rng.uniform(38.0, 55.0, CONTROLS)
    # Mostly in the A-S plane (R-L weight 0.15): a sagittal US plane keeps the motion in-plane.
    vectors = rng.normal(size=(CONTROLS, 3)) * np.array([0.15, 1.0, 1.0])
    vectors *= deformation_mm / np.linalg.norm(vectors, axis=1, keepdims=True)
    return Motion(
        amplitude_mm=amplitude_mm,
        period_s=period_s,
        deformation_mm=deformation_mm,
        centers=centers,
        sigmas=sigmas,
        vectors=vectors,
        freqs_hz=rng.uniform(0.04, 0.12, CONTROLS),
        phases=rng.uniform(0, 2 * np.pi, CONTROLS),
    )
