"""MetaIO (``.mha``/``.mhd``) as PLUS writes it: ``Key = value`` lines, then raw or zlib data.

Written here rather than through SimpleITK/ITK because those drop the per-frame ``Seq_Frame``
fields PLUS stores in the header, and a memory map keeps a multi-GB raw sequence off the heap.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from igtflow.stream.readers.errors import SourceFileError
from igtflow.stream.readers.frames import FileDamage

ELEMENT_TYPES: dict[str, np.dtype] = {
    "MET_UCHAR": np.dtype(np.uint8),
    "MET_CHAR": np.dtype(np.int8),
    "MET_USHORT": np.dtype(np.uint16),
    "MET_SHORT": np.dtype(np.int16),
    "MET_UINT": np.dtype(np.uint32),
    "MET_INT": np.dtype(np.int32),
    "MET_FLOAT": np.dtype(np.float32),
    "MET_DOUBLE": np.dtype(np.float64),
}
# A header is text; a line this long, or a NUL byte, means we are reading pixel data.
_MAX_LINE = 1 << 20
# Small enough to say near which byte compressed data breaks off.
_INFLATE_CHUNK = 1 << 16
# Deflate never inflates past about 1032:1, so a header declaring more pixels than its compressed
# bytes can hold is wrong, and is refused before anything is inflated (only past a floor, so a
# small file cut short still gives its whole frames).
MAX_INFLATE_RATIO = 1032
_RATIO_FLOOR = 64 << 20


@dataclass(frozen=True)
class MetaHeader:
    """Every ``Key = value`` line in file order, and where the pixel data starts."""

    path: Path
    items: tuple[tuple[str, str], ...]
    data_offset: int

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value of ``key`` (MetaIO keys compare case-insensitively)."""
        wanted = key.lower()
        for name, value in self.items:
            if name.lower() == wanted:
                return value
        return default


def read_header(path: Path) -> MetaHeader:
    """Parse the text header up to and including ``ElementDataFile`` (always its last line)."""
    items: list[tuple[str, str]] = []
    with open(path, "rb") as file:
        line_number = 0
        while True:
            raw = file.readline(_MAX_LINE)
            line_number += 1
            if not raw:
                raise SourceFileError(
                    path,
                    "the MetaIO header ends without an ElementDataFile line; the file is "
                    "truncated inside its header or is not a MetaIO file",
                )
            if b"\0" in raw or (len(raw) >= _MAX_LINE and not raw.endswith(b"\n")):
                raise SourceFileError(
                    path,
                    f"line {line_number} is binary data, not a `Key = value` header line; "
                    "this is not a MetaIO file or its header is damaged",
                )
            text = raw.decode("latin-1").strip()
            if not text:
                continue
            key, sep, value = text.partition("=")
            if not sep or not key.strip():
                raise SourceFileError(
                    path, f"header line {line_number} is not `Key = value`: {text[:80]!r}"
                )
            items.append((key.strip(), value.strip()))
            if key.strip().lower() == "elementdatafile":
                return MetaHeader(path, tuple(items), file.tell())


@dataclass(frozen=True)
class PixelLayout:
    """How the pixel block is laid out: frames × rows × columns (× channels)."""

    dtype: np.dtype
    frame_count: int
    rows: int
    columns: int
    channels: int = 1

    @property
    def frame_shape(self) -> tuple[int, ...]:
        base = (self.rows, self.columns)
        return (*base, self.channels) if self.channels > 1 else base

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.columns * self.channels * self.dtype.itemsize

    @property
    def total_bytes(self) -> int:
        return self.frame_bytes * self.frame_count


def _ints(header: MetaHeader, key: str) -> list[int]:
    value = header.get(key)
    if value is None:
        raise SourceFileError(header.path, f"the header has no {key} field")
    try:
        return [int(v) for v in value.split()]
    except ValueError:
        raise SourceFileError(
            header.path, f"{key} = {value!r} is not a list of whole numbers"
        ) from None


def layout(header: MetaHeader) -> PixelLayout:
    """Frame size, count and type from DimSize/Kinds/ElementType, read the way PLUS reads them."""
    path = header.path
    dims = _ints(header, "DimSize")
    if any(d < 0 for d in dims):
        raise SourceFileError(path, f"DimSize = {header.get('DimSize')!r} has a negative size")
    ndims_given = _ints(header, "NDims") if header.get("NDims") is not None else [len(dims)]
    if len(ndims_given) != 1:
        raise SourceFileError(path, f"NDims = {header.get('NDims')!r} is not one whole number")
    ndims = ndims_given[0]
    if len(dims) != ndims:
        raise SourceFileError(path, f"DimSize has {len(dims)} values but NDims = {ndims}")
    kinds_text = header.get("Kinds")
    kinds = kinds_text.split() if kinds_text else ["domain"] * (ndims - 1) + ["list"]
    if len(kinds) != len(dims):
        raise SourceFileError(
            path, f"Kinds = {kinds_text!r} names {len(kinds)} axes but DimSize has {len(dims)}"
        )
    spatial = [d for k, d in zip(kinds, dims, strict=True) if k.lower() == "domain"]
    frames = [d for k, d in zip(kinds, dims, strict=True) if k.lower() in ("list", "time")]
    unknown = sorted({k for k in kinds if k.lower() not in ("domain", "list", "time", "vector")})
    if unknown:
        raise SourceFileError(path, f"Kinds has axis kinds {unknown} this reader does not know")
    if len(frames) > 1:
        raise SourceFileError(path, f"Kinds = {kinds_text!r} has more than one frame axis")
    while len(spatial) < 2:
        spatial.append(1)
    if len(spatial) > 3 or (len(spatial) == 3 and spatial[2] > 1):
        raise SourceFileError(
            path,
            f"frames are {'x'.join(map(str, spatial))} volumes; only 2D frames can be replayed",
        )
    type_name = (header.get("ElementType") or "").upper()
    if type_name not in ELEMENT_TYPES:
        raise SourceFileError(
            path,
            f"ElementType = {header.get('ElementType')!r} is not a MetaIO element type "
            f"(known: {', '.join(ELEMENT_TYPES)})",
        )
    dtype = ELEMENT_TYPES[type_name]
    msb = header.get("BinaryDataByteOrderMSB") or header.get("ElementByteOrderMSB") or "False"
    if msb.lower() == "true":
        dtype = dtype.newbyteorder(">")
    channels_text = header.get("ElementNumberOfChannels") or "1"
    try:
        channels = int(channels_text)
    except ValueError:
        raise SourceFileError(path, f"ElementNumberOfChannels = {channels_text!r}") from None
    columns, rows = spatial[0], spatial[1]
    count = frames[0] if frames else 1
    return PixelLayout(dtype, count, rows, columns, max(channels, 1))


def data_file(header: MetaHeader) -> tuple[Path, int]:
    """The file holding the pixels and the byte offset where they start."""
    name = header.get("ElementDataFile") or ""
    if name.upper() == "LOCAL":
        return header.path, header.data_offset
    if name.upper().startswith("LIST") or "%" in name or " " in name:
        raise SourceFileError(
            header.path,
            f"ElementDataFile = {name!r} spreads frames over several files; only LOCAL or one "
            "data file is supported",
        )
    target = Path(name) if Path(name).is_absolute() else header.path.parent / name
    if not target.is_file():
        raise SourceFileError(
            header.path,
            f"ElementDataFile = {name} but {target} does not exist; keep the data file next to "
            "the header (a .mhd needs its .raw or .zraw)",
        )
    return target, 0


def read_pixels(header: MetaHeader, shape: PixelLayout) -> tuple[np.ndarray, FileDamage | None]:
    """The frames as an (N, H, W[, C]) array, memory-mapped when raw, decompressed when zlib, and
    what is wrong with the data if anything.

    A file cut short (or compressed data that breaks off) gives the frames that are whole, with a
    ``FileDamage`` saying where the data stops; data beyond DimSize's worth is ignored and
    reported the same way. No whole frame at all is a ``SourceFileError``.
    """
    source, offset = data_file(header)
    full_shape = (shape.frame_count, *shape.frame_shape)
    if shape.total_bytes == 0:
        return np.zeros(full_shape, dtype=shape.dtype), None
    compressed = (header.get("CompressedData") or "False").lower() == "true"
    where = f"in {source.name}" if source != header.path else "after the header"
    if compressed:
        declared = header.get("CompressedDataSize")
        pixels, damage = inflate(header.path, source, offset, shape, where, declared)
        kept = len(pixels) // shape.frame_bytes
        whole = pixels[: kept * shape.frame_bytes]
        return np.frombuffer(whole, dtype=shape.dtype).reshape((kept, *shape.frame_shape)), damage
    available = source.stat().st_size - offset
    damage = None
    kept = shape.frame_count
    if available < shape.total_bytes:
        kept = available // shape.frame_bytes
        damage = FileDamage(
            str(source),
            kept,
            shape.frame_count,
            offset + kept * shape.frame_bytes,
            f"{available} bytes of pixel data {where}, but DimSize needs {shape.total_bytes} "
            f"({shape.frame_count} frames of {shape.frame_bytes} bytes): the file is truncated "
            f"(holds {kept} whole frames) or DimSize is wrong",
        )
    elif available - shape.total_bytes >= shape.frame_bytes:
        damage = FileDamage(
            str(source),
            kept,
            shape.frame_count,
            offset + shape.total_bytes,
            f"{available - shape.total_bytes} bytes follow the {shape.frame_count} frames DimSize "
            f"gives ({available // shape.frame_bytes} frames' worth {where}); they were ignored: "
            "DimSize is wrong or data was appended",
        )
    require_a_frame(header.path, damage)
    frames = np.memmap(
        source, dtype=shape.dtype, mode="r", offset=offset, shape=(kept, *shape.frame_shape)
    )
    return frames, damage


def require_a_frame(path: Path, damage: FileDamage | None) -> None:
    """Damage that leaves no whole frame is an error: there is nothing to replay."""
    if damage is not None and damage.kept == 0:
        raise SourceFileError(path, f"{damage.problem}; not one frame is whole")


def check_inflatable(path: Path, source: Path, offset: int, expected: int, where: str) -> None:
    """Refuse, before inflating, a declared size its compressed bytes cannot possibly hold."""
    compressed = max(source.stat().st_size - offset, 0)
    if expected > _RATIO_FLOOR and expected > MAX_INFLATE_RATIO * compressed:
        raise SourceFileError(
            path,
            f"the header declares {expected:,} bytes of pixels, but the {compressed:,} compressed "
            f"bytes {where} cannot inflate to more than {MAX_INFLATE_RATIO * compressed:,}: the "
            "sizes in the header are wrong (nothing was read)",
        )


def inflate(
    path: Path,
    source: Path,
    offset: int,
    shape: PixelLayout,
    where: str,
    declared: str | None = None,
) -> tuple[bytes, FileDamage | None]:
    """zlib (or gzip) data of ``source`` from ``offset``, up to ``shape``'s worth, and where it
    breaks off if it does (``declared``: the compressed size the header states, if any)."""
    expected = shape.total_bytes
    check_inflatable(path, source, offset, expected, where)
    # MAX_WBITS | 32 accepts both zlib and gzip framing, as ITK's MetaIO does.
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)
    parts: list[bytes] = []
    produced = 0
    position = offset
    problem = ""
    with open(source, "rb") as file:
        file.seek(offset)
        while not inflater.eof and produced <= expected:
            chunk = file.read(_INFLATE_CHUNK)
            if not chunk:
                break
            try:
                part = inflater.decompress(chunk, expected + 1 - produced)
            except zlib.error as exc:
                problem = (
                    f"compressed pixel data {where} is corrupt near byte {position} (zlib: {exc}); "
                    "frames just before it may be damaged too"
                )
                break
            position += len(chunk)
            parts.append(part)
            produced += len(part)
    if produced > expected:
        raise SourceFileError(
            path,
            f"compressed pixel data {where} inflates to more than the {expected} bytes DimSize "
            "gives; DimSize or ElementType is wrong",
        )
    pixels = b"".join(parts)
    if not problem and not inflater.eof:
        declared_note = f" (CompressedDataSize = {declared})" if declared else ""
        problem = (
            f"compressed pixel data {where} ends early{declared_note}: it inflates to "
            f"{produced} of {expected} bytes; the file is truncated"
        )
    if not problem and produced < expected:
        raise SourceFileError(
            path,
            f"compressed pixel data {where} inflates to {produced} bytes but DimSize needs "
            f"{expected}; DimSize or ElementType is wrong",
        )
    if not problem:
        return pixels, None
    kept = produced // shape.frame_bytes
    damage = FileDamage(str(source), kept, shape.frame_count, position, problem)
    require_a_frame(path, damage)
    return pixels, damage
