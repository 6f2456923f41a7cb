"""DICOM cine through pydicom: multi-frame ultrasound (often YBR colour) and XA/RF fluoroscopy runs.

Only whitelisted technical tags ever leave this module: the stream and its recordings must not
carry who the patient is.
"""

from __future__ import annotations

import io
import math
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.pixels import convert_color_space, get_decoder
from pydicom.pixels.utils import get_expected_length

from igtflow.stream.readers.errors import SourceFileError, check_input
from igtflow.stream.readers.frames import FileDamage, FileFrame

# What pydicom raises on a damaged header, found by `igtflow bench fuzz`: each becomes one
# SourceFileError naming the file.
HEADER_ERRORS = (
    OSError, EOFError, ValueError, KeyError, TypeError, AttributeError, IndexError,
    OverflowError, struct.error, NotImplementedError, BytesLengthException,
)  # fmt: skip

# DICOM Modality -> Image.modality: the stream calls every fluoroscopy run "XA".
MODALITY = {"US": "US", "XA": "XA", "RF": "XA"}

# Technical tags that may travel in Image.meta["dicom"]: nothing that names or dates a person,
# a study or an institution, and no instance UIDs (they link back to the patient's record).
SAFE_TAGS = (
    "Modality",
    "SOPClassUID",
    "Manufacturer",
    "ManufacturerModelName",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "BitsAllocated",
    "BitsStored",
    "SamplesPerPixel",
    "FrameTime",
    "CineRate",
    "RecommendedDisplayFrameRate",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "DistanceSourceToDetector",
    "DistanceSourceToPatient",
    "PositionerPrimaryAngle",
    "PositionerSecondaryAngle",
    "TransducerData",
    "TransducerType",
    "KVP",
)

# Timing tags in the order the DICOM standard's cine module gives them weight.
TIMING_TAGS = ("FrameTime", "FrameTimeVector", "CineRate", "RecommendedDisplayFrameRate")
# PhysicalUnitsXDirection/YDirection code 3 = cm (PS3.3 C.8.5.5.1.15).
_UNITS_CM = 3


class _ClampedFile(io.BufferedReader):
    """A file whose reads never ask for more than it still holds.

    pydicom reads each element's value with its declared length, and Python sizes the result by
    the request before the read comes back short: a damaged length of 10^9 would allocate a
    gigabyte for a file of a few kilobytes.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(io.FileIO(path, "rb"))
        self.size = os.fstat(self.fileno()).st_size

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > 0:
            size = min(size, max(0, self.size - self.tell()))
        return super().read(size)


def _plain(value: Any) -> Any:
    """A pydicom value as msgpack-friendly Python (MultiValue -> list, DSfloat -> float)."""
    if isinstance(value, str | bytes):
        return str(value)
    if hasattr(value, "__iter__"):
        return [_plain(v) for v in value]
    if isinstance(value, float) or type(value).__name__ in ("DSfloat", "DSdecimal"):
        return float(value)
    if isinstance(value, int):
        return int(value)
    return str(value)


class DicomCine:
    """An opened, fully checked DICOM cine; iterate it for frames.

    Checks up front: a DICOM file at all, pixel data present, a transfer syntax this install
    can decode, data length matching Rows × Columns × NumberOfFrames, and the first and last
    frame decode. Frames are decoded one at a time while iterating (a cine can be GBs).
    Native pixel data cut short keeps its whole frames: ``damage`` says where it stops and
    ``frame_count`` counts the frames kept.
    """

    damage: FileDamage | None = None

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        check_input(self.path)
        try:
            with _ClampedFile(self.path) as file:
                self.ds: Dataset = pydicom.dcmread(file)
            # pydicom parses an element's value when it is first used: parse every one now, so
            # a damaged element is this one error here rather than any error anywhere later.
            for dataset in (getattr(self.ds, "file_meta", None), self.ds):
                for _ in dataset.iterall() if dataset is not None else ():
                    pass
        except InvalidDicomError as exc:
            raise SourceFileError(self.path, f"not a DICOM file ({exc})") from None
        except HEADER_ERRORS as exc:
            raise SourceFileError(
                self.path, f"the DICOM header cannot be read ({type(exc).__name__}: {exc})"
            ) from None
        ds = self.ds
        if "PixelData" not in ds:
            raise SourceFileError(
                self.path, "has no PixelData (7FE0,0010): it holds no images (a report or SR?)"
            )
        for tag in ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation"):
            if tag not in ds:
                raise SourceFileError(self.path, f"has PixelData but no {tag}; the file is broken")
        dicom_modality = str(ds.get("Modality", ""))
        if dicom_modality not in MODALITY:
            raise SourceFileError(
                self.path,
                f"Modality {dicom_modality or '(missing)'} is not a cine this reader replays "
                f"(supported: {', '.join(MODALITY)})",
            )
        self.modality = MODALITY[dicom_modality]
        self.frame_count = int(ds.get("NumberOfFrames", 1) or 1)
        self.declared_frames = self.frame_count
        self.photometric = str(ds.PhotometricInterpretation)
        self._check_transfer_syntax()
        self._check_length()
        self.times_s, self.timing_source = self._timing()
        if self.times_s is not None:
            self.times_s = self.times_s[: self.frame_count]
        self.spacing, self.spacing_source = self._spacing()
        self.meta = self._safe_meta()
        self._decode(0)
        if self.frame_count > 1:
            self._decode(self.frame_count - 1)

    @property
    def transfer_syntax(self) -> pydicom.uid.UID:
        meta = getattr(self.ds, "file_meta", None)
        uid = getattr(meta, "TransferSyntaxUID", None)
        return pydicom.uid.UID(uid or pydicom.uid.ImplicitVRLittleEndian)

    def _check_transfer_syntax(self) -> None:
        uid = self.transfer_syntax
        if not uid.is_transfer_syntax:
            raise SourceFileError(
                self.path,
                f"TransferSyntaxUID {str(uid)[:64]!r} is not a transfer syntax; the file meta "
                "information is damaged",
            )
        if not uid.is_compressed:
            return
        try:
            decoder = get_decoder(uid)
        except NotImplementedError:
            raise SourceFileError(
                self.path,
                f"pixel data uses transfer syntax {uid.name} ({uid}), which pydicom cannot "
                "decode; convert it to uncompressed (e.g. `gdcmconv --raw in.dcm out.dcm`)",
            ) from None
        if not decoder.is_available:
            missing = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
            raise SourceFileError(
                self.path,
                f"pixel data uses transfer syntax {uid.name} ({uid}) and no decoder for it is "
                f"installed (needs {missing}); install one or convert the file to uncompressed "
                "(`gdcmconv --raw in.dcm out.dcm`)",
            )

    def _check_length(self) -> None:
        """Native pixel data must hold exactly NumberOfFrames frames (plus one pad byte)."""
        if self.transfer_syntax.is_compressed:
            return
        try:
            expected = int(get_expected_length(self.ds, "bytes"))
        except (AttributeError, ValueError, TypeError, KeyError) as exc:
            raise SourceFileError(self.path, f"pixel description is incomplete: {exc}") from None
        held = len(self.ds.PixelData)
        per_frame = expected // max(self.frame_count, 1)
        if held < expected:
            fits = held // per_frame if per_frame else 0
            problem = (
                f"PixelData holds {held} bytes but NumberOfFrames={self.frame_count} of "
                f"{self.ds.Rows}x{self.ds.Columns} ({self.photometric}, "
                f"{self.ds.BitsAllocated}-bit) needs {expected}: the file is truncated or "
                f"NumberOfFrames is wrong (the data holds {fits} whole frames)"
            )
            if fits == 0:
                raise SourceFileError(self.path, problem)
            # Byte offset in the file: where PixelData's value starts, plus the whole frames.
            start = self.path.stat().st_size - held
            self.damage = FileDamage(
                str(self.path), fits, self.frame_count, start + fits * per_frame, problem
            )
            self.frame_count = fits
            # The decoder checks the data against NumberOfFrames: describe what is kept.
            self.ds.NumberOfFrames = fits
            self.ds.PixelData = self.ds.PixelData[: fits * per_frame]
        if per_frame and held - expected >= per_frame:
            raise SourceFileError(
                self.path,
                f"PixelData holds {held} bytes, {(held - expected) // per_frame} frame(s) more "
                f"than NumberOfFrames={self.frame_count} says; NumberOfFrames is wrong",
            )

    def _number(self, tag: str, value: Any) -> float:
        """A numeric tag's value (0 when empty); a damaged one is a SourceFileError naming it."""
        try:
            return float(value or 0)
        except (TypeError, ValueError):
            raise SourceFileError(
                self.path, f"{tag} = {str(value)[:40]!r} is not a number; fix or remove the tag"
            ) from None

    def _timing(self) -> tuple[np.ndarray | None, str]:
        """Each frame's time in seconds from the first, and which tag said so."""
        ds, n = self.ds, self.declared_frames
        frame_time = self._number("FrameTime", ds.get("FrameTime", 0))
        if frame_time > 0:
            # The frames kept, not the frames declared: a damaged count may say a billion.
            return np.arange(min(n, self.frame_count)) * frame_time / 1000.0, "FrameTime"
        if ds.get("FrameTimeVector") is not None:
            vector = np.asarray([float(v) for v in np.atleast_1d(ds.FrameTimeVector)])
            if len(vector) != n:
                raise SourceFileError(
                    self.path,
                    f"FrameTimeVector (0018,1065) has {len(vector)} values for {n} frames; "
                    "replay with a fixed rate (rate_hz) or fix the tag",
                )
            if not np.all(np.isfinite(vector)) or np.any(vector[1:] < 0):
                raise SourceFileError(self.path, "FrameTimeVector (0018,1065) has negative steps")
            # Each entry is the time since the previous frame (the first is usually 0).
            times = np.cumsum(vector) / 1000.0
            return times - times[0], "FrameTimeVector"
        for tag in ("CineRate", "RecommendedDisplayFrameRate"):
            rate = self._number(tag, ds.get(tag, 0))
            if rate > 0:
                return np.arange(n) / rate, tag
        return None, ""

    def _spacing(self) -> tuple[tuple[float, float], str]:
        """(column, row) pixel spacing in mm and the tag it came from."""
        ds = self.ds
        for tag in ("PixelSpacing", "ImagerPixelSpacing"):
            value = ds.get(tag)
            if value is not None and len(value) == 2:
                row, col = float(value[0]), float(value[1])  # DICOM order: row spacing first
                if row > 0 and col > 0:
                    return (col, row), tag
        regions = ds.get("SequenceOfUltrasoundRegions")
        for region in regions or ():
            dx, dy = region.get("PhysicalDeltaX"), region.get("PhysicalDeltaY")
            units = (region.get("PhysicalUnitsXDirection"), region.get("PhysicalUnitsYDirection"))
            if dx and dy and units == (_UNITS_CM, _UNITS_CM):
                return (abs(float(dx)) * 10.0, abs(float(dy)) * 10.0), "SequenceOfUltrasoundRegions"
        return (1.0, 1.0), ""

    def _safe_meta(self) -> dict[str, Any]:
        tags = {tag: _plain(self.ds.get(tag)) for tag in SAFE_TAGS if self.ds.get(tag) is not None}
        tags["TransferSyntaxUID"] = str(self.transfer_syntax)
        meta: dict[str, Any] = {"dicom": tags}
        if self.modality == "XA":
            meta.update(self._carm_geometry())
        return meta

    def _carm_geometry(self) -> dict[str, Any]:
        """The C-arm fields of the fluoroscopy contract that the file states."""
        ds, geometry = self.ds, {}
        pairs = (
            ("sid_mm", "DistanceSourceToDetector"),
            ("sod_mm", "DistanceSourceToPatient"),
            ("lao_deg", "PositionerPrimaryAngle"),  # + = LAO
            ("cranial_deg", "PositionerSecondaryAngle"),  # + = cranial
        )
        for key, tag in pairs:
            if ds.get(tag) is not None:
                geometry[key] = float(ds.get(tag))
        if self.spacing_source:
            geometry["pixel_spacing_mm"] = list(self.spacing)
        return geometry

    def _decode(self, index: int) -> np.ndarray:
        try:
            pixels = pydicom.pixels.pixel_array(self.ds, index=index, raw=True)
        except Exception as exc:  # every decoder plugin raises its own kinds
            detail = " ".join(str(exc).split())
            raise SourceFileError(
                self.path,
                f"frame {index} of {self.frame_count} cannot be decoded as "
                f"{self.transfer_syntax.name}: the pixel data is corrupt or not what the "
                f"transfer syntax says ({detail})",
            ) from None
        if self.photometric.startswith("YBR") and pixels.ndim == 3 and pixels.shape[-1] == 3:
            # raw=True keeps stored YCbCr (4:2:2 already upsampled); convert explicitly.
            pixels = convert_color_space(pixels, "YBR_FULL", "RGB")
        elif self.photometric == "MONOCHROME1" and pixels.dtype.kind == "u":
            # MONOCHROME1 shows the lowest value white; the stream's gray is MONOCHROME2.
            top = (1 << int(self.ds.get("BitsStored", pixels.dtype.itemsize * 8))) - 1
            pixels = (top - np.minimum(pixels, top)).astype(pixels.dtype)
        return _stream_dtype(pixels)

    def frame(self, index: int) -> FileFrame:
        time_s = float(self.times_s[index]) if self.times_s is not None else None
        return FileFrame(index, self._decode(index), time_s, self.spacing, meta=self.meta)

    def __iter__(self) -> Iterator[FileFrame]:
        for index in range(self.frame_count):
            yield self.frame(index)

    @property
    def rate_hz(self) -> float | None:
        """Mean frame rate of the file's own timing (None when it has none)."""
        if self.times_s is None or self.frame_count < 2 or self.times_s[-1] <= 0:
            return None
        rate = (self.frame_count - 1) / float(self.times_s[-1])
        return rate if math.isfinite(rate) else None


def _stream_dtype(pixels: np.ndarray) -> np.ndarray:
    """uint8/uint16 go as they are; signed or wider data become float32 (lossless up to 24 bit)."""
    if pixels.dtype in (np.uint8, np.uint16, np.float32):
        return np.ascontiguousarray(pixels)
    return pixels.astype(np.float32)
