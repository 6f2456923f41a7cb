"""A source whose frames say which message they are, so a sink can check every byte arrived."""

from __future__ import annotations

import numpy as np

from igtflow.stream.messages import Image
from igtflow.stream.node import Source


def pattern(height: int, width: int, dtype: np.dtype | str = np.uint16) -> np.ndarray:
    """The frame of message 0; message ``n`` adds ``n`` to every pixel (wrapping)."""
    return (np.arange(height * width, dtype=np.uint32) % 65521).astype(dtype).reshape(height, width)


def _step(n: int, dtype: np.dtype) -> np.generic:
    return dtype.type(n % (int(np.iinfo(dtype).max) + 1))


def expected_frame(n: int, shape: tuple[int, ...], dtype: np.dtype | str = np.uint16) -> np.ndarray:
    dtype = np.dtype(dtype)
    return pattern(*shape[:2], dtype) + _step(n, dtype)


class Numbered(Source):
    """Emits Images numbered in ``meta['n']`` (pixels encode n); stops after ``count``."""

    outputs = {"image": Image}

    def setup(
        self, width: int = 32, height: int = 32, count: int = 0, dtype: str = "uint16"
    ) -> None:
        """
        width: frame width in pixels (512×512 and up travel through shared memory)
        height: frame height in pixels
        count: messages to send before going quiet (0 = no limit)
        dtype: pixel type, uint8 or uint16
        """
        self.base = pattern(height, width, dtype)
        self.numbered = 0
        self.log.info("numbered source %dx%d ready", width, height)

    def tick(self) -> None:
        if self.count and self.numbered >= self.count:
            return
        frame = self.new_frame("image", self.base.shape, self.base.dtype)
        np.add(self.base, _step(self.numbered, self.base.dtype), out=frame)
        self.emit("image", Image(data=frame, meta={"n": self.numbered}, frame="Image"))
        self.numbered += 1


class Garbler(Numbered):
    """Sends a malformed message (random bytes, bad header) before every good frame."""

    def tick(self) -> None:
        socket = self._emitter.outputs["image"].socket
        junk = np.random.default_rng(self.numbered).bytes(64)
        socket.send_multipart([b"src/image", junk, junk[:7]])
        super().tick()


class Noise(Source):
    """Emits frames of random bytes (incompressible, so a recording grows as fast as it can);
    from ``freeze_at`` on, ``freeze_for`` frames repeat the last one exactly (a stuck capture
    card), then fresh frames resume. ``meta['n']`` numbers the frames."""

    outputs = {"image": Image}

    def setup(
        self, width: int = 64, height: int = 64, freeze_at: int = -1, freeze_for: int = 0
    ) -> None:
        """
        width: frame width in pixels
        height: frame height in pixels
        freeze_at: number of the first repeated frame (-1 = never freeze)
        freeze_for: how many frames repeat before fresh ones come again
        """
        self.rng = np.random.default_rng(0)
        self.last = self.rng.integers(0, 256, (height, width), dtype=np.uint8)
        self.numbered = 0

    def tick(self) -> None:
        frozen = 0 <= self.freeze_at <= self.numbered < self.freeze_at + self.freeze_for
        if not frozen:
            self.last = self.rng.integers(0, 256, self.last.shape, dtype=np.uint8)
        self.emit("image", Image(data=self.last.copy(), meta={"n": self.numbered}, frame="Image"))
        self.numbered += 1
