"""A source whose frames say which message they are, so a sink can check every byte arrived."""

from __future__ import annotations

import numpy as np
from igtflow.stream.messages import Image
from igtflow.stream.node import Source


def pattern(height: int, width: int) -> np.ndarray:
    """The frame of message 0; message ``n`` adds ``n`` to every pixel (uint16, wrapping)."""
    return (
        (np.arange(height * width, dtype=np.uint32) % 65521)
        .astype(np.uint16)
        .reshape(height, width)
    )


def expected_frame(n: int, shape: tuple[int, ...]) -> np.ndarray:
    return pattern(*shape[:2]) + np.uint16(n % 65536)


class Numbered(Source):
    """Emits uint16 Images numbered in ``meta['n']`` (pixels encode n); stops after ``count``."""

    outputs = {"image": Image}

    def setup(self, width: int = 32, height: int = 32, count: int = 0) -> None:
        """
        width: frame width in pixels (512×512 and up travel through shared memory)
        height: frame height in pixels
        count: messages to send before going quiet (0 = no limit)
        """
        self.base = pattern(height, width)
        self.numbered = 0
        self.log.info("numbered source %dx%d ready", width, height)

    def tick(self) -> None:
        if self.count and self.numbered >= self.count:
            return
        frame = self.new_frame("image", self.base.shape, np.uint16)
        np.add(self.base, np.uint16(self.numbered % 65536), out=frame)
        self.emit("image", Image(data=frame, meta={"n": self.numbered}, frame="Image"))
        self.numbered += 1


class Garbler(Numbered):
    """Sends a malformed message (random bytes, bad header) before every good frame."""

    def tick(self) -> None:
        socket = self._emitter.outputs["image"].socket
        junk = np.random.default_rng(self.numbered).bytes(64)
        socket.send_multipart([b"src/image", junk, junk[:7]])
        super().tick()
