"""Key/current frame pairs from the phantom, with the true flow key → current, made on the fly.

A pair is (key frame k, current frame k + d): the node keeps a key and tracks every later frame
against it until it re-keys, so d runs from 0 (the key itself) to the phantom's key interval.
Building a simulator costs seconds (anatomy and motion) and a frame tens of milliseconds, so a
batch takes several current frames per key and a few simulators are kept and rotated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim, UsFrame

SIZE = 256
# A sweeping probe moves its plane ~0.3 mm a frame, more than the phantom's 0.2 mm scatterer
# cell, so its speckle is new in every frame and in-plane motion is barely visible: mostly
# unlearnable pairs, kept at a fifth so the net still sees them.
STATIC_SHARE = 0.8
MAX_GAP = 30  # frames between key and current: the phantom's (and the node's) key interval
# x = (pixel / 255 - MEAN) / STD: the B-mode's grey levels sit around 0.3 ± 0.25.
MEAN = 0.3
STD = 0.25


@dataclass(frozen=True)
class Pair:
    """A key and a current frame of one simulator, and everything true about both."""

    key: UsFrame
    current: UsFrame
    flow: np.ndarray  # H×W×2 float32, key grid → current (pixels)


def normalise(image: np.ndarray) -> np.ndarray:
    """uint8 frame → float32 network input (the card's normalisation)."""
    return (image.astype(np.float32) * np.float32(1 / 255) - np.float32(MEAN)) * np.float32(1 / STD)


def make_sim(
    seed: int, rng: np.random.Generator | None = None, path: str = "static"
) -> UltrasoundSim:
    """The default linear probe on ``path`` for ``rng=None``; else a random probe, path and
    breathing (static four times in five: see STATIC_SHARE)."""
    if rng is None:
        return UltrasoundSim(seed, UltrasoundConfig(width=SIZE, height=SIZE, path=path))
    config = UltrasoundConfig(
        width=SIZE,
        height=SIZE,
        probe=str(rng.choice(["linear", "linear", "curvilinear"])),
        path="static" if rng.random() < STATIC_SHARE else "sweep",
        sweep_speed_mm_s=float(rng.uniform(5.0, 15.0)),
    )
    return UltrasoundSim(
        seed,
        config,
        breathing_amplitude_mm=float(rng.uniform(6.0, 14.0)),
        breathing_period_s=float(rng.uniform(3.0, 6.0)),
        deformation_mm=float(rng.uniform(2.0, 6.0)),
    )


def pairs_of(sim: UltrasoundSim, key_index: int, gaps: list[int]) -> list[Pair]:
    """One key frame and the frames ``gaps`` after it, with true flow on the key grid."""
    key = sim.render(key_index, truth=False)
    out = []
    for gap in gaps:
        current = sim.render(key_index + gap, truth=False)
        out.append(Pair(key, current, sim.flow(key_index, key_index + gap)))
    return out


def held_out_pairs(
    seed: int, keys: int = 4, gaps: tuple[int, ...] = (10, 20, 29), path: str = "static"
) -> list[Pair]:
    """The evaluation frames of one held-out seed: the default linear probe on ``path``, a key
    every 30 frames."""
    sim = make_sim(seed, path=path)
    out: list[Pair] = []
    for k in range(keys):
        out.extend(pairs_of(sim, k * MAX_GAP, list(gaps)))
    return out


class PairStream:
    """Endless training batches from a rotating pool of phantom simulators (seeds < 1000)."""

    def __init__(self, seed: int, pool: int = 4, rotate_every: int = 16, seeds: int = 1000):
        self.rng = np.random.default_rng([seed, 0x7AC])
        self.seeds = seeds
        self.rotate_every = rotate_every
        self.used = 0
        self.sims = [self._new_sim() for _ in range(pool)]

    def _new_sim(self) -> UltrasoundSim:
        return make_sim(int(self.rng.integers(0, self.seeds)), self.rng)

    def batch(self, size: int, per_key: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``size`` pairs: inputs N×2×H×W (uint8), flow N×2×H×W, weight N×1×H×W (1 in the
        field of view, 0.1 outside)."""
        self.used += 1
        if self.used % self.rotate_every == 0:
            self.sims[int(self.rng.integers(len(self.sims)))] = self._new_sim()
        images, flows, weights = [], [], []
        while len(images) < size:
            sim = self.sims[int(self.rng.integers(len(self.sims)))]
            key = int(self.rng.integers(0, 900))
            gaps = sorted(int(g) for g in self.rng.integers(0, MAX_GAP + 1, per_key))
            for pair in pairs_of(sim, key, gaps)[: size - len(images)]:
                images.append(np.stack([pair.key.image, pair.current.image]))
                flows.append(pair.flow.transpose(2, 0, 1))
                weights.append(np.where(sim.fov, 1.0, 0.1).astype(np.float32)[None])
        return np.stack(images), np.stack(flows), np.stack(weights)
