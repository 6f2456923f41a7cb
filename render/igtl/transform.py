"""TRANSFORM content: the upper 3×4 of a 4×4 matrix, column by column, as 12 big-endian floats."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from igtflow.render.igtl.protocol import Buffer, IgtlError

MATRIX = struct.Struct(">12f")


@dataclass(frozen=True, eq=False)
class TransformContent:
    """A 4×4 homogeneous transform (only the upper 3×4 travels)."""

    TYPE: ClassVar[str] = "TRANSFORM"

    matrix: np.ndarray

    def __post_init__(self) -> None:
        matrix = np.asarray(self.matrix, dtype=np.float64)
        if matrix.shape != (4, 4):
            raise IgtlError(f"TRANSFORM matrix must be 4x4, got {matrix.shape}")
        object.__setattr__(self, "matrix", matrix)

    def pack(self) -> list[Buffer]:
        return [MATRIX.pack(*(float(np.float32(v)) for v in self.matrix[:3].T.ravel()))]

    @classmethod
    def unpack(cls, content: memoryview) -> TransformContent:
        if len(content) < MATRIX.size:
            raise IgtlError(f"TRANSFORM content has {len(content)} bytes, needs {MATRIX.size}")
        matrix = np.eye(4)
        matrix[:3] = np.array(MATRIX.unpack_from(content), dtype=np.float64).reshape(4, 3).T
        return cls(matrix)
