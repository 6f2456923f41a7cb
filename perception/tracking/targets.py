"""Moving named targets with a displacement field, and when to take a new key frame.

Pure functions for the ``track`` node: it predicts a field key → current each frame, moves the
targets it had at the key with :func:`move_targets`, and asks :func:`rekey_reason` whether the
current frame should become the new key (then the moved targets become the key's targets).
Re-keying too rarely lets the motion outgrow what the network was trained on (≤ 30 frames,
≤ ~35 px) and its confidence fall; re-keying every frame accumulates drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from igtflow.perception.outputs import sample_field

MOTION = "motion"
CONFIDENCE = "confidence"
AGE = "age"


def move_targets(pixels: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Where the key frame's targets (N×2 pixels) are in the current frame, given the field
    key → current (H×W×2, pixels): each moves by the field at its key position."""
    pts = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    return pts + sample_field(field, pts)


def move_named(targets: dict[str, np.ndarray], field: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`move_targets` for targets keyed by name (``{"lesion": (u, v), …}``)."""
    if not targets:
        return {}
    names = list(targets)
    moved = move_targets(np.stack([np.asarray(targets[n], float) for n in names]), field)
    return {name: moved[i] for i, name in enumerate(names)}


def confidence_of(logit: np.ndarray) -> np.ndarray:
    """Per-pixel confidence in [0, 1] from the network's logit (card method ``sigmoid``)."""
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -30.0, 30.0)))


@dataclass(frozen=True)
class RekeyRule:
    """When the current frame becomes the new key frame.

    ``max_motion_px``: median |flow| above it (the network saw ≤ ~35 px in training);
    ``min_confidence``: mean confidence below it (the card's ``confidence.threshold``);
    ``every``: at the latest this many frames after the key (0: never for age alone).
    """

    max_motion_px: float = 20.0
    min_confidence: float = 0.5
    every: int = 30

    def __post_init__(self) -> None:
        if not self.max_motion_px > 0:
            raise ValueError(f"max_motion_px must be > 0, got {self.max_motion_px!r}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in 0..1, got {self.min_confidence!r}")
        if self.every < 0:
            raise ValueError(f"every must be >= 0 frames, got {self.every!r}")


def rekey_reason(
    rule: RekeyRule,
    field: np.ndarray,
    confidence: np.ndarray,
    frames_since_key: int,
    mask: np.ndarray | None = None,
) -> str | None:
    """Why the current frame should become the key (``"motion"``, ``"confidence"``, ``"age"``),
    or None to keep the key. ``mask`` (H×W bool) limits the statistics to imaged pixels."""
    magnitude = np.hypot(field[..., 0], field[..., 1])
    if mask is not None and mask.any():
        magnitude = magnitude[mask]
        confidence = confidence[mask]
    if magnitude.size and float(np.median(magnitude)) > rule.max_motion_px:
        return MOTION
    if confidence.size and float(np.mean(confidence)) < rule.min_confidence:
        return CONFIDENCE
    if rule.every and frames_since_key >= rule.every:
        return AGE
    return None
