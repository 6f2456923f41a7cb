"""Smooth per-pixel fields evaluated on a coarse pixel grid and interpolated to every pixel.

The motion is smooth on the scale of centimetres (Gaussians of sigma >= 38 mm), so evaluating it
every 16 pixels (3-8 mm) and interpolating bilinearly is accurate to about 0.01 mm.
"""

from __future__ import annotations

import cv2
import numpy as np


class CoarseGrid:
    """Pixel positions every ``step`` pixels (covering the last pixel) and their upsampling maps."""

    def __init__(self, width: int, height: int, step: int = 16) -> None:
        self.width, self.height, self.step = width, height, step
        nx = -(-(width - 1) // step) + 1
        ny = -(-(height - 1) // step) + 1
        u, v = np.meshgrid(np.arange(nx) * step, np.arange(ny) * step)
        self.pixels = np.stack([u, v], axis=-1).astype(np.float64)  # ny×nx×2, (u, v)
        fx, fy = np.meshgrid(np.arange(width), np.arange(height))
        self._map_x = (fx / step).astype(np.float32)
        self._map_y = (fy / step).astype(np.float32)

    def maps_at(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``upsample`` maps that evaluate the field at arbitrary pixel positions (…×2, (u, v))."""
        scaled = (pixels / self.step).astype(np.float32)
        return np.ascontiguousarray(scaled[..., 0]), np.ascontiguousarray(scaled[..., 1])

    def upsample(
        self, coarse: np.ndarray, maps: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """Bilinear interpolation of a ny×nx×C (C <= 4) field to height×width×C float32
        (or to the positions of ``maps`` from ``maps_at``)."""
        map_x, map_y = maps if maps is not None else (self._map_x, self._map_y)
        out = cv2.remap(
            np.ascontiguousarray(coarse, dtype=np.float32),
            map_x,
            map_y,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return out if out.ndim == 3 else out[..., None]
