"""A synthetic image source: moving gradient frames of any size and dtype, no hardware needed."""

from __future__ import annotations

import numpy as np
from igtflow.stream.messages import Image
from igtflow.stream.node import Source

_DTYPES = {"uint8": np.uint8, "uint16": np.uint16, "float32": np.float32}


class SyntheticImage(Source):
    """Emits a moving test pattern; the frame is rendered straight into shared memory."""

    outputs = {"image": Image}

    def setup(
        self, width: int = 256, height: int = 256, dtype: str = "uint8", modality: str = "US"
    ) -> None:
        """
        width: frame width in pixels
        height: frame height in pixels
        dtype: pixel type, one of uint8, uint16, float32
        modality: Image modality tag (US, XA, RF)
        """
        if dtype not in _DTYPES:
            raise ValueError(f"dtype {dtype!r} is not one of {sorted(_DTYPES)}")
        self.dtype = np.dtype(_DTYPES[dtype])
        self.shape = (height, width)
        self.base = np.add.outer(np.arange(height), np.arange(width)).astype(self.dtype)
        self.count = 0

    def tick(self) -> None:
        frame = self.new_frame("image", self.shape, self.dtype)
        np.add(self.base, self.dtype.type(self.count % 251), out=frame, casting="unsafe")
        self.count += 1
        self.emit("image", Image(data=frame, modality=self.modality, frame="Image"))
