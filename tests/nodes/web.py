"""A source for the web view's tests: a moving frame until a file says stop."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from igtflow.stream.messages import Image
from igtflow.stream.node import Source


class UntilStopped(Source):
    """Emits an RGB frame with a bar that moves each message, until ``stop_file`` exists."""

    outputs = {"image": Image}

    def setup(
        self, stop_file: str, width: int = 160, height: int = 120, noise: bool = False
    ) -> None:
        """
        stop_file: the source goes quiet (without finishing) once this file exists
        width: frame width in pixels
        height: frame height in pixels
        noise: fill the background with noise (large JPEGs, to fill a stalled socket fast)
        """
        self.stop = Path(stop_file)
        self.n = 0
        rng = np.random.default_rng(0)
        self.background = (
            rng.integers(0, 256, (height, width, 3), dtype=np.uint8) if noise else None
        )

    def tick(self) -> None:
        if self.stop.exists():
            return
        frame = self.new_frame("image", (self.height, self.width, 3), np.uint8)
        frame[:] = (40, 60, 80) if self.background is None else self.background
        x = (self.n * 7) % self.width
        frame[:, x : x + 10] = (250, 250, 250)
        self.emit("image", Image(data=frame, meta={"n": self.n}, frame="Image"))
        self.n += 1
