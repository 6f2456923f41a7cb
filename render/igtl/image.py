"""IMAGE content: a 72-byte image header, then the pixels, ``i`` fastest (``igtl_image.h``).

The header's 3×4 matrix holds the ``i``, ``j`` and ``k`` axes scaled by the spacing and, as its
translation, the **centre** of the volume — not the first voxel (the specification and Slicer's
``vtkIGTLToMRMLImage`` agree: centre = first voxel + axes · (size − 1) / 2). This module converts to
and from an ``ijk_to_ras`` whose translation is the first voxel's centre, as igtflow and VTK use.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from igtflow.render.igtl.protocol import Buffer, IgtlError

IMAGE_HEADER = struct.Struct(">HBBBBHHH12fHHHHHH")  # 72 bytes
SCALAR_TYPES: dict[int, np.dtype] = {
    2: np.dtype(np.int8),
    3: np.dtype(np.uint8),
    4: np.dtype(np.int16),
    5: np.dtype(np.uint16),
    6: np.dtype(np.int32),
    7: np.dtype(np.uint32),
    10: np.dtype(np.float32),
    11: np.dtype(np.float64),
}
_SCALAR_CODES = {dtype.newbyteorder("="): code for code, dtype in SCALAR_TYPES.items()}
ENDIAN_BIG, ENDIAN_LITTLE = 1, 2
COORDINATES = {1: "RAS", 2: "LPS"}
MAX_SIZE = 0xFFFF


@dataclass(frozen=True, eq=False)
class ImageContent:
    """A volume ``pixels`` of shape (K, J, I, C) placed by ``ijk_to_ras`` (first voxel centre).

    ``coordinate`` says which world the matrix maps to ("RAS" or "LPS"), as the header does.
    """

    TYPE: ClassVar[str] = "IMAGE"

    pixels: np.ndarray
    ijk_to_ras: np.ndarray
    coordinate: Literal["RAS", "LPS"] = "RAS"

    def __post_init__(self) -> None:
        if self.pixels.ndim != 4:
            raise IgtlError(f"IMAGE pixels must be (K, J, I, C), got shape {self.pixels.shape}")
        if self.pixels.dtype.newbyteorder("=") not in _SCALAR_CODES:
            raise IgtlError(f"IMAGE cannot carry pixels of type {self.pixels.dtype}")
        if any(n < 1 or n > MAX_SIZE for n in self.pixels.shape[:3]) or not (
            1 <= self.pixels.shape[3] <= 255
        ):
            raise IgtlError(f"IMAGE of shape {self.pixels.shape} does not fit the 16-bit sizes")
        matrix = np.asarray(self.ijk_to_ras, dtype=np.float64)
        if matrix.shape != (4, 4):
            raise IgtlError(f"IMAGE ijk_to_ras must be 4x4, got {matrix.shape}")
        object.__setattr__(self, "ijk_to_ras", matrix)

    @property
    def size(self) -> tuple[int, int, int]:
        """(I, J, K) as the header writes it."""
        k, j, i, _ = self.pixels.shape
        return i, j, k

    def pack(self) -> list[Buffer]:
        pixels = np.ascontiguousarray(self.pixels)
        dtype = pixels.dtype
        big = dtype.itemsize == 1 or dtype.byteorder == ">"
        i, j, k = self.size
        axes = self.ijk_to_ras[:3, :3]
        centre = self.ijk_to_ras[:3] @ np.array([(i - 1) / 2, (j - 1) / 2, (k - 1) / 2, 1.0])
        matrix = [*axes[:, 0], *axes[:, 1], *axes[:, 2], *centre]
        coord = 1 if self.coordinate == "RAS" else 2
        header = IMAGE_HEADER.pack(
            1,
            pixels.shape[3],
            _SCALAR_CODES[dtype.newbyteorder("=")],
            ENDIAN_BIG if big else ENDIAN_LITTLE,
            coord,
            i,
            j,
            k,
            *(float(np.float32(v)) for v in matrix),
            0,
            0,
            0,
            i,
            j,
            k,
        )
        return [header, memoryview(pixels.reshape(-1).view(np.uint8))]

    @classmethod
    def unpack(cls, content: memoryview) -> ImageContent:
        if len(content) < IMAGE_HEADER.size:
            raise IgtlError(f"IMAGE content of {len(content)} bytes is shorter than its header")
        values = IMAGE_HEADER.unpack_from(content)
        ncomp, scalar, endian, coord = values[1:5]
        size = values[5:8]
        matrix = np.array(values[8:20], dtype=np.float64)
        offset, subsize = values[20:23], values[23:26]
        if scalar not in SCALAR_TYPES:
            raise IgtlError(f"IMAGE scalar type {scalar} is not one the specification defines")
        if endian not in (ENDIAN_BIG, ENDIAN_LITTLE):
            raise IgtlError(f"IMAGE endian field {endian} is not 1 (big) or 2 (little)")
        if coord not in COORDINATES:
            raise IgtlError(f"IMAGE coordinate field {coord} is not 1 (RAS) or 2 (LPS)")
        if ncomp < 1 or min(size) < 1:
            raise IgtlError(f"IMAGE of size {size} with {ncomp} components is empty")
        if tuple(offset) != (0, 0, 0) or tuple(subsize) != tuple(size):
            raise IgtlError(
                f"IMAGE sub-volume (offset {offset}, size {subsize} of {size}) is not supported; "
                "send whole images"
            )
        dtype = SCALAR_TYPES[scalar].newbyteorder(">" if endian == ENDIAN_BIG else "<")
        count = size[0] * size[1] * size[2] * ncomp
        if len(content) - IMAGE_HEADER.size < count * dtype.itemsize:
            raise IgtlError(
                f"IMAGE of {size} × {ncomp} {SCALAR_TYPES[scalar]} needs "
                f"{count * dtype.itemsize} bytes of pixels, got {len(content) - IMAGE_HEADER.size}"
            )
        pixels = np.frombuffer(content, dtype=dtype, count=count, offset=IMAGE_HEADER.size)
        if not dtype.isnative and dtype.itemsize > 1:
            pixels = pixels.astype(dtype.newbyteorder("="))
        pixels = pixels.reshape(size[2], size[1], size[0], ncomp)
        ijk_to_ras = np.eye(4)
        ijk_to_ras[:3, :3] = matrix[:9].reshape(3, 3).T
        half = (np.array(size, dtype=np.float64) - 1) / 2
        with np.errstate(all="ignore"):
            ijk_to_ras[:3, 3] = matrix[9:] - ijk_to_ras[:3, :3] @ half
        return cls(pixels, ijk_to_ras, COORDINATES[coord])  # type: ignore[arg-type]
