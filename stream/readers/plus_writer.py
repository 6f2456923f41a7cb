"""Write tracked frames as PLUS sequence files: ``.seq.nrrd`` (for 3D Slicer) and ``.seq.mha``.

The field names and per-frame lines are PLUS's (``Seq_FrameNNNN_<From>To<To>Transform:=`` 16
row-major numbers, ``…TransformStatus``, ``Timestamp``, image status), so PLUS and SlicerIGSIO read
the files back with every transform. The NRRD geometry is the layout Slicer's Sequences module
documents for ``.seq.nrrd`` (3 spatial axes + a ``list`` axis, ``axis 3 index values`` = the
timestamps), which PLUS also reads (``sizes: W H 1 N``).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

SUPPORTED = {
    np.dtype(np.uint8): ("uint8", "MET_UCHAR"),
    np.dtype(np.uint16): ("uint16", "MET_USHORT"),
}
# PLUS pads DimSize/Kinds to this width so it can rewrite them in place while recording.
_PADDED = 40


def _number(value: float) -> str:
    """Shortest text that reads back to the same float64 (PLUS writes 16 digits)."""
    text = repr(float(value))
    return text.removesuffix(".0")


def _padded(head: str, last: str) -> str:
    """``head`` and ``last`` spread to PLUS's padded line width (at least one space between)."""
    return head + " " * max(1, _PADDED - len(head) - len(last)) + last


def _matrix_text(matrix: np.ndarray) -> str:
    return " ".join(_number(v) for v in np.asarray(matrix, dtype=np.float64).reshape(16))


def _check(
    frames: np.ndarray,
    timestamps_s: np.ndarray,
    transforms: Mapping[str, tuple[np.ndarray, np.ndarray]],
    image_status: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype not in SUPPORTED:
        raise ValueError(f"frames must be N×H×W uint8 or uint16, got {frames.shape} {frames.dtype}")
    n = frames.shape[0]
    times = np.asarray(timestamps_s, dtype=np.float64)
    if times.shape != (n,):
        raise ValueError(f"timestamps_s must hold {n} values, got shape {times.shape}")
    for name, (matrices, valid) in transforms.items():
        if not name or "To" not in name:
            raise ValueError(f"transform name {name!r} is not <From>To<To> (e.g. ProbeToTracker)")
        if np.shape(matrices) != (n, 4, 4) or np.shape(valid) != (n,):
            raise ValueError(f"transform {name}: need matrices N×4×4 and valid N for N={n}")
    status = np.ones(n, dtype=bool) if image_status is None else np.asarray(image_status, bool)
    if status.shape != (n,):
        raise ValueError(f"image_status must hold {n} flags, got shape {status.shape}")
    # PLUS stores a blank frame where the image is invalid.
    pixels = np.where(status[:, None, None], frames, 0).astype(frames.dtype)
    return pixels, times, status


def _frame_lines(
    separator: str,
    index: int,
    time_s: float,
    transforms: Mapping[str, tuple[np.ndarray, np.ndarray]],
    status_name: str,
    image_ok: bool,
) -> list[str]:
    """One frame's fields in PLUS's order (its field map is sorted), image status last."""
    fields = {"FrameNumber": str(index), "Timestamp": _number(time_s)}
    for name, (matrices, valid) in transforms.items():
        fields[f"{name}Transform"] = _matrix_text(matrices[index])
        fields[f"{name}TransformStatus"] = "OK" if valid[index] else "INVALID"
    lines = [f"Seq_Frame{index:04d}_{k}{separator}{fields[k]}" for k in sorted(fields)]
    lines.append(f"Seq_Frame{index:04d}_{status_name}{separator}{'OK' if image_ok else 'INVALID'}")
    return lines


def write_seq_nrrd(
    path: str | Path,
    frames: np.ndarray,
    spacing_mm: tuple[float, float],
    timestamps_s: np.ndarray,
    transforms: Mapping[str, tuple[np.ndarray, np.ndarray]],
    image_status: np.ndarray | None = None,
    compress: bool = True,
) -> Path:
    """Write N×H×W frames with their timestamps and per-frame transforms as a ``.seq.nrrd``.

    ``transforms`` maps a name such as ``ProbeToTracker`` to (N×4×4 matrices, N valid flags);
    ``image_status`` (N flags, default all valid) marks frames whose image is invalid.
    """
    pixels, times, status = _check(frames, timestamps_s, transforms, image_status)
    n, rows, columns = pixels.shape
    nrrd_type = SUPPORTED[pixels.dtype][0]
    sx, sy = (float(s) for s in spacing_mm)
    kinds = "domain domain domain"
    sizes = f"{columns} {rows} 1"
    header = [
        "NRRD0004",
        "# Complete NRRD file format specification at:",
        "# http://teem.sourceforge.net/nrrd/format.html",
        "dimension: 4",
        f"encoding: {'gz' if compress else 'raw'}",
        "endian: little",
        _padded("kinds: " + kinds, "list"),
        'labels: "" "" "" "frame"',
        _padded("sizes: " + sizes, str(n)),
        "space: right-anterior-superior",
        f"space directions: ({_number(sx)},0,0) (0,{_number(sy)},0) (0,0,1) none",
        "space origin: (0,0,0)",
        f"type: {nrrd_type}",
        "DataNodeClassName:=vtkMRMLScalarVolumeNode",
        "axis 3 index type:=numeric",
        "axis 3 index values:=" + " ".join(_number(t) for t in times),
        "ultrasound image orientation:=MF",
        "ultrasound image type:=BRIGHTNESS",
    ]
    for index in range(n):
        header += _frame_lines(":=", index, times[index], transforms, "Status", status[index])
    data = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()
    target = Path(path)
    with open(target, "wb") as file:
        file.write(("\n".join(header) + "\n\n").encode("ascii"))
        file.write(gzip.compress(data, compresslevel=1) if compress else data)
    return target


def write_seq_mha(
    path: str | Path,
    frames: np.ndarray,
    spacing_mm: tuple[float, float],
    timestamps_s: np.ndarray,
    transforms: Mapping[str, tuple[np.ndarray, np.ndarray]],
    image_status: np.ndarray | None = None,
    compress: bool = True,
) -> Path:
    """The same content as :func:`write_seq_nrrd`, as a MetaIO ``.seq.mha`` (PLUS's own layout)."""
    pixels, times, status = _check(frames, timestamps_s, transforms, image_status)
    n, rows, columns = pixels.shape
    data = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()
    if compress:
        data = zlib.compress(data, 1)
    sx, sy = (float(s) for s in spacing_mm)
    sizes = f"{columns} {rows} "
    header = [
        "ObjectType = Image",
        "NDims = 3",
        "AnatomicalOrientation = RAI",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CenterOfRotation = 0 0 0",
        f"CompressedData = {'True' if compress else 'False'}",
    ]
    if compress:
        header.append(f"CompressedDataSize = {len(data)}")
    header += [
        f"ElementSpacing = {_number(sx)} {_number(sy)} 1",
        "Offset = 0 0 0",
        "TransformMatrix = 1 0 0 0 1 0 0 0 1",
        "UltrasoundImageOrientation = MF",
        "UltrasoundImageType = BRIGHTNESS",
    ]
    for index in range(n):
        header += _frame_lines(" = ", index, times[index], transforms, "ImageStatus", status[index])
    header += [
        _padded("DimSize = " + sizes, str(n)),
        _padded("Kinds = domain domain", "list"),
        f"ElementType = {SUPPORTED[pixels.dtype][1]}",
        "ElementDataFile = LOCAL",
    ]
    target = Path(path)
    with open(target, "wb") as file:
        file.write(("\n".join(header) + "\n").encode("ascii"))
        file.write(data)
    return target
