"""PLUS sequence files (``.seq.mha``, ``.igs.mha``, ``.mhd`` + raw, ``.seq.nrrd``, ``.igs.nrrd``).

Frames come out the way PLUS holds them in memory: B-mode images turned to MF orientation (image x
towards the marked side of the transducer, y away from it), each with every transform recorded
with it and its status.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nrrd
import numpy as np

from igtflow.stream.readers import metaio
from igtflow.stream.readers.errors import SourceFileError, check_input
from igtflow.stream.readers.frames import FileDamage, FileFrame
from igtflow.stream.readers.plus_fields import (
    FrameFields,
    parse_frames,
    split_fields,
    static_transforms,
)

METAIO_SUFFIXES = (".mha", ".mhd")
NRRD_SUFFIXES = (".nrrd", ".nhdr")
# Image types PLUS keeps in MF orientation in memory (RF data it keeps as FM: left as in file).
_BMODE = ("BRIGHTNESS", "RGB_COLOR", "")
# Flips (rows, columns) that turn a 2D frame stored in this orientation into MF.
_TO_MF = {"MF": (False, False), "UF": (False, True), "MN": (True, False), "UN": (True, True)}
_NRRD_TYPES = {
    "uint8": np.uint8,
    "uint16": np.uint16,
    "int8": np.int8,
    "int16": np.int16,
    "uint32": np.uint32,
    "int32": np.int32,
    "float": np.float32,
    "double": np.float64,
}


class PlusSequence:
    """An opened, fully checked PLUS sequence file; iterate it for frames.

    Everything is checked on open (header fields, every frame's fields, the data length, the
    compressed stream), so a broken file fails before the first frame is replayed. Pixel data
    cut short is the exception: the whole frames before the cut are kept and ``damage`` says
    where the data stops (and ``frame_count`` counts only the frames kept).
    """

    damage: FileDamage | None = None

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        check_input(self.path)
        suffix = self.path.suffix.lower()
        if suffix in METAIO_SUFFIXES:
            general, frame_items, pixels, spacing, declared = self._read_metaio()
        elif suffix in NRRD_SUFFIXES:
            general, frame_items, pixels, spacing, declared = self._read_nrrd()
        else:
            raise SourceFileError(
                self.path,
                f"unknown extension {suffix!r}; PLUS sequences are .seq.mha, .igs.mha, .mha, "
                ".mhd (+ .raw/.zraw), .seq.nrrd, .igs.nrrd, .nrrd or .nhdr",
            )
        self.fields = general
        self.spacing = spacing
        self.frame_count = int(pixels.shape[0])
        self.has_images = pixels.shape[1] > 0 and pixels.shape[2] > 0
        self.orientation = _field(general, "UltrasoundImageOrientation").upper()
        self.image_type = _field(general, "UltrasoundImageType").upper()
        self._pixels = self._orient(pixels)
        static = static_transforms(self.path, general)
        # The header is whole even when the data is cut: check every frame's fields, keep ours.
        # With no frame fields at all there is nothing to check past the frames kept (and a
        # damaged size may declare a billion).
        checked = declared if frame_items else min(declared, self.frame_count)
        self.frames: list[FrameFields] = parse_frames(self.path, frame_items, checked, static)
        del self.frames[self.frame_count :]
        times = [f.time_s for f in self.frames]
        self.times_s = None if any(t is None for t in times) else np.asarray(times, dtype=float)
        if self.frame_count == 0:
            raise SourceFileError(self.path, "holds no frames (the frame axis has size 0)")

    def _orient(self, pixels: np.ndarray) -> np.ndarray:
        flips = _TO_MF.get(self.orientation[:2]) if self.image_type in _BMODE else None
        if flips is None or not self.has_images:
            return pixels
        rows, columns = flips
        return pixels[:, :: -1 if rows else 1, :: -1 if columns else 1]

    def _read_metaio(self) -> tuple[dict[str, str], dict, np.ndarray, tuple[float, float], int]:
        header = metaio.read_header(self.path)
        general, frame_items = split_fields(header.items)
        if (header.get("BinaryData") or "True").lower() != "true":
            raise SourceFileError(
                self.path, "BinaryData = False (ASCII pixels) is not supported, as in PLUS"
            )
        shape = metaio.layout(header)
        pixels, self.damage = metaio.read_pixels(header, shape)
        spacing = _spacing(self.path, header.get("ElementSpacing"))
        return general, frame_items, pixels, spacing, shape.frame_count

    def _read_nrrd(self) -> tuple[dict[str, str], dict, np.ndarray, tuple[float, float], int]:
        try:
            with open(self.path, "rb") as file:
                header = nrrd.read_header(file)
        except StopIteration:  # pynrrd's way of saying the file ended inside the header
            raise SourceFileError(
                self.path, "the NRRD header ends early; the file is truncated or not NRRD"
            ) from None
        except (
            nrrd.NRRDError,
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            UnicodeDecodeError,
        ) as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise SourceFileError(self.path, f"the NRRD header is not valid: {detail}") from None
        items = [(str(k), v if isinstance(v, str) else str(v)) for k, v in header.items()]
        general, frame_items = split_fields(items)
        kinds = [str(k).lower() for k in header.get("kinds", [])]
        if "sizes" not in header:
            raise SourceFileError(self.path, "the NRRD header has no sizes field")
        sizes = [int(s) for s in header["sizes"]]
        if not kinds:
            raise SourceFileError(self.path, "the NRRD header has no kinds field, as PLUS needs")
        nrrd_type = str(header.get("type", ""))
        if nrrd_type not in _NRRD_TYPES:
            raise SourceFileError(
                self.path,
                f"type: {nrrd_type!r} is not a pixel type PLUS frames use "
                f"({', '.join(_NRRD_TYPES)})",
            )
        layout = _nrrd_layout(self.path, kinds, sizes)
        if 0 in sizes:
            pixels = np.zeros((layout["frames"], 0, 0), dtype=_NRRD_TYPES[nrrd_type])
        else:
            pixels = self._nrrd_data(header, kinds, layout)
        spacing = _nrrd_spacing(header, kinds)
        return general, frame_items, pixels, spacing, layout["frames"]

    def _nrrd_data(self, header: dict, kinds: list[str], layout: dict[str, int]) -> np.ndarray:
        encoding = str(header.get("encoding", "")).lower()
        detached = any(k in header for k in ("data file", "datafile"))
        if encoding in ("gzip", "gz") and not detached and kinds[-1] in ("list", "time"):
            # pynrrd inflates the whole stream, whatever the header declares (a small file can
            # become a thousand times its size); ours stops at the declared size.
            data = self._nrrd_whole_frames(header, kinds, "")
            return self._frames_first(data, kinds)
        try:
            with open(self.path, "rb") as file:
                nrrd.read_header(file)
                if encoding in ("gzip", "gz", "bzip2", "bz2") and not detached:
                    dtype = np.dtype(_NRRD_TYPES[str(header["type"])])
                    declared = int(np.prod([int(v) for v in header["sizes"]])) * dtype.itemsize
                    where = "after the header"
                    metaio.check_inflatable(self.path, self.path, file.tell(), declared, where)
                data = nrrd.read_data(header, file, str(self.path), index_order="F")
        except SourceFileError:
            raise
        except Exception as exc:  # pynrrd surfaces zlib, EOF, OS and its own errors alike
            detail = " ".join(str(exc).split()) or type(exc).__name__
            data = self._nrrd_whole_frames(header, kinds, detail)
        return self._frames_first(data, kinds)

    @staticmethod
    def _frames_first(data: np.ndarray, kinds: list[str]) -> np.ndarray:
        """pynrrd's Fortran-order array as (N, H, W[, C])."""
        # Fortran order: axis i of the array is axis i of the file; move to (N, H, W[, C]).
        order = {k: i for i, k in enumerate(kinds) if k != "domain"}
        domains = [i for i, k in enumerate(kinds) if k == "domain"]
        frame_axis = order.get("list", order.get("time"))
        vector_axis = order.get("vector")
        axes = [
            a
            for a in (frame_axis, domains[1], domains[0], *domains[2:], vector_axis)
            if a is not None
        ]
        data = np.transpose(data, axes)
        if frame_axis is None:
            data = data[np.newaxis]
        if len(domains) == 3:
            data = data[:, :, :, 0] if vector_axis is None else data[:, :, :, 0, :]
        if vector_axis is not None and data.shape[-1] == 1:
            data = data[..., 0]
        return np.ascontiguousarray(data)

    def _nrrd_whole_frames(self, header: dict, kinds: list[str], detail: str) -> np.ndarray:
        """The whole frames of a cut NRRD (one file, raw or gzip, frame axis slowest), with
        ``damage`` set; anything else that pynrrd could not read is a ``SourceFileError``."""
        sizes = [int(v) for v in header["sizes"]]
        encoding = str(header.get("encoding", "")).lower()
        detached = any(k in header for k in ("data file", "datafile"))
        if detached or encoding not in ("raw", "gzip", "gz") or kinds[-1] not in ("list", "time"):
            raise SourceFileError(
                self.path,
                "the pixel data does not match the header (truncated file, or sizes/type "
                f"wrong): {detail}",
            )
        dtype = np.dtype(_NRRD_TYPES[str(header["type"])])
        if str(header.get("endian", "little")).lower() == "big":
            dtype = dtype.newbyteorder(">")
        per_frame = int(np.prod(sizes[:-1]))
        shape = metaio.PixelLayout(dtype, sizes[-1], 1, per_frame)
        with open(self.path, "rb") as file:
            nrrd.read_header(file)
            offset = file.tell()
        where = "after the header"
        if encoding == "raw":
            available = self.path.stat().st_size - offset
            kept = min(available // shape.frame_bytes, sizes[-1])
            with open(self.path, "rb") as file:
                file.seek(offset)
                pixels = file.read(kept * shape.frame_bytes)
            problem = (
                f"{available} bytes of pixel data {where}, but sizes needs {shape.total_bytes}: "
                f"the file is truncated (holds {kept} whole frames) or sizes is wrong"
            )
            self.damage = FileDamage(
                str(self.path), kept, sizes[-1], offset + kept * shape.frame_bytes, problem
            )
            metaio.require_a_frame(self.path, self.damage)
        else:
            pixels, self.damage = metaio.inflate(self.path, self.path, offset, shape, where)
            if self.damage is None and detail:  # pynrrd failed on what the data does not show
                raise SourceFileError(self.path, f"the pixel data cannot be read: {detail}")
        kept = len(pixels) // shape.frame_bytes
        whole = np.frombuffer(pixels[: kept * shape.frame_bytes], dtype=dtype)
        return whole.reshape((*sizes[:-1], kept), order="F")

    def frame(self, index: int) -> FileFrame:
        fields = self.frames[index]
        image = None
        if self.has_images and fields.image_ok:
            image = _stream_dtype(np.asarray(self._pixels[index]))
        meta: dict[str, Any] = {"plus_fields": fields.other} if fields.other else {}
        if self.orientation:
            meta["us_image_orientation_in_file"] = self.orientation
        return FileFrame(index, image, fields.time_s, self.spacing, fields.transforms, meta)

    def __iter__(self) -> Iterator[FileFrame]:
        for index in range(self.frame_count):
            yield self.frame(index)

    @property
    def transform_names(self) -> list[str]:
        return sorted({t.name for f in self.frames for t in f.transforms})

    @property
    def rate_hz(self) -> float | None:
        """Mean frame rate from the timestamps (None without timestamps or with one frame)."""
        if self.times_s is None or self.frame_count < 2:
            return None
        span = float(self.times_s[-1] - self.times_s[0])
        rate = (self.frame_count - 1) / span if span > 0 else math.inf
        return rate if math.isfinite(rate) else None


def _field(general: dict[str, str], name: str) -> str:
    """A file-wide field under its MetaIO name or its NRRD spelling (``ultrasound image type``)."""
    spaced = "".join(f" {c.lower()}" if c.isupper() else c for c in name).strip()
    for key, value in general.items():
        if key.lower() in (name.lower(), spaced):
            return str(value).strip()
    return ""


def _spacing(path: Path, text: str | None) -> tuple[float, float]:
    if not text:
        return (1.0, 1.0)
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        raise SourceFileError(path, f"ElementSpacing = {text!r} is not numbers") from None
    if len(values) < 2 or not all(math.isfinite(v) and v > 0 for v in values[:2]):
        raise SourceFileError(path, f"ElementSpacing = {text!r} needs two positive numbers")
    return (values[0], values[1])


def _nrrd_layout(path: Path, kinds: list[str], sizes: list[int]) -> dict[str, int]:
    if len(kinds) != len(sizes):
        raise SourceFileError(path, f"kinds names {len(kinds)} axes but sizes has {len(sizes)}")
    unknown = sorted({k for k in kinds if k not in ("domain", "list", "time", "vector")})
    if unknown:
        raise SourceFileError(path, f"kinds has axis kinds {unknown} this reader does not know")
    frame_axes = [s for k, s in zip(kinds, sizes, strict=True) if k in ("list", "time")]
    domains = [s for k, s in zip(kinds, sizes, strict=True) if k == "domain"]
    if len(frame_axes) > 1 or len(domains) not in (2, 3) or kinds.count("vector") > 1:
        raise SourceFileError(
            path,
            f"kinds {' '.join(kinds)} is not 2D frames + one list axis (e.g. 'domain domain "
            "list' or 'domain domain domain list')",
        )
    if len(domains) == 3 and domains[2] > 1:
        raise SourceFileError(path, f"frames are 3D volumes (depth {domains[2]}); need 2D frames")
    return {"frames": frame_axes[0] if frame_axes else 1}


def _nrrd_spacing(header: dict, kinds: list[str]) -> tuple[float, float]:
    domains = [i for i, k in enumerate(kinds) if k == "domain"]
    directions = header.get("space directions")
    if directions is not None:
        rows = np.asarray(directions, dtype=float)
        # Fewer direction rows than domain axes: a damaged header; try the spacings instead.
        usable = rows.ndim == 2 and all(i < len(rows) for i in domains[:2])
        lengths = [float(np.linalg.norm(rows[i])) for i in domains[:2]] if usable else [0.0]
        if all(math.isfinite(v) and v > 0 for v in lengths):
            return (lengths[0], lengths[1])
    spacings = header.get("spacings")
    if spacings is not None:
        values = [float(spacings[i]) for i in domains[:2]]
        if all(math.isfinite(v) and v > 0 for v in values):
            return (values[0], values[1])
    return (1.0, 1.0)


def _stream_dtype(pixels: np.ndarray) -> np.ndarray:
    """uint8/uint16/float32 go as they are (native byte order); other types become float32."""
    native = pixels.dtype.newbyteorder("=")
    if native in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)):
        return np.ascontiguousarray(pixels, dtype=native)
    return pixels.astype(np.float32)
