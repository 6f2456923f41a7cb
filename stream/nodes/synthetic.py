"""A synthetic image source: moving gradient frames of any size and dtype, no hardware needed."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from igtflow.stream.messages import Image
from igtflow.stream.node import ImageSpec, NonNegative, Pixels, Source

_DTYPES = {"uint8": np.uint8, "uint16": np.uint16, "float32": np.float32}


class SyntheticImage(Source):
    """Emits a moving test pattern; the frame is rendered straight into shared memory."""

    outputs = {"image": Image}

    @classmethod
    def image_spec(cls, output: str, params: dict[str, Any]) -> ImageSpec | None:
        if output != "image":
            return None
        shape = (int(params["height"]), int(params["width"]))
        return ImageSpec(*shape, str(params["modality"]), str(params["dtype"]))

    def setup(
        self,
        width: Pixels = 256,
        height: Pixels = 256,
        dtype: Literal["uint8", "uint16", "float32"] = "uint8",
        modality: Literal["US", "XA", "RF"] = "US",
        noise: NonNegative = 0.0,
    ) -> None:
        """
        width: frame width in pixels
        height: frame height in pixels
        dtype: pixel type, one of uint8, uint16, float32
        modality: Image modality tag (US, XA, RF)
        noise: standard deviation of a grain that moves every frame (0 = clean pattern); makes
            frames compress like real images, for recording benchmarks
        """
        if dtype not in _DTYPES:
            raise ValueError(f"dtype {dtype!r} is not one of {sorted(_DTYPES)}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.dtype = np.dtype(_DTYPES[dtype])
        self.shape = (height, width)
        pattern = np.add.outer(np.arange(height), np.arange(width))
        self.textures = [pattern.astype(self.dtype)]
        if noise:  # grain on a mid-grey ramp, kept where the frame counter cannot overflow it
            rng = np.random.default_rng(0)
            top = float(np.iinfo(self.dtype).max) if self.dtype.kind == "u" else np.inf
            top = top - 255 if top > 255 else top  # uint8 wraps with the counter, as without
            # Enough independent grains that a compressed chunk never sees one twice.
            count = 2 if pattern.size * self.dtype.itemsize >= 512 * 1024 else 32
            self.textures = [
                np.clip(
                    pattern % 128 + top / 2 + rng.normal(0, noise, pattern.shape), 0, top
                ).astype(self.dtype)
                for _ in range(count)
            ]
        self.count = 0

    def tick(self) -> None:
        frame = self.new_frame("image", self.shape, self.dtype)
        texture = self.textures[self.count % len(self.textures)]
        np.add(texture, self.dtype.type(self.count % 251), out=frame, casting="unsafe")
        self.count += 1
        self.emit("image", Image(data=frame, modality=self.modality, frame="Image"))
