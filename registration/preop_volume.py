"""Label volumes (NRRD, NIfTI) into whole-number labels on a grid placed in RAS mm.

The size a header declares is checked before any voxel is read, so a file that claims 10⁹ voxels
is refused at once instead of exhausting memory. NRRD is read with pynrrd and follows its
``space`` field (RAS, LAS or LPS); NIfTI is read with SimpleITK, whose physical space is LPS.
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from igtflow.registration.preop_model import PreopModelError

MAX_VOXELS = 512**3
MAX_BYTES = 256 << 20
VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz")
_SPACE_SIGNS = {
    "right-anterior-superior": (1.0, 1.0, 1.0),
    "ras": (1.0, 1.0, 1.0),
    "left-anterior-superior": (-1.0, 1.0, 1.0),
    "las": (-1.0, 1.0, 1.0),
    "left-posterior-superior": (-1.0, -1.0, 1.0),
    "lps": (-1.0, -1.0, 1.0),
}  # the sign that turns each axis of the file's space into RAS


@dataclass(frozen=True)
class LabelVolume:
    """``labels[i, j, k]`` (integers, 0 = background) and the 4×4 ``ijk_to_ras`` of its grid."""

    labels: np.ndarray
    ijk_to_ras: np.ndarray
    source: str = ""

    @property
    def spacing_mm(self) -> np.ndarray:
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)


def volume_suffix(path: Path) -> str:
    """The volume extension of ``path`` ('.nii.gz' counts as one), or '' if it is none."""
    name = path.name.lower()
    return next((s for s in VOLUME_SUFFIXES if name.endswith(s)), "")


def load_label_volume(path: str | Path, space: str | None = None) -> LabelVolume:
    """Read a label volume; ``space`` ('RAS' or 'LPS') places an NRRD that names no space."""
    path = Path(path)
    suffix = volume_suffix(path)
    if not suffix:
        raise PreopModelError(
            f"{path}: unknown label volume format; save it as one of {', '.join(VOLUME_SUFFIXES)}"
        )
    if not path.is_file():
        raise PreopModelError(f"{path}: no such file; check the path (cwd: {Path.cwd()})")
    if path.stat().st_size == 0:
        raise PreopModelError(f"{path}: empty file (0 bytes); export the label volume again")
    if suffix in (".nrrd", ".nhdr"):
        labels, ijk_to_ras = _read_nrrd(path, space)
    else:
        labels, ijk_to_ras = _read_nifti(path)
    return LabelVolume(_whole_labels(path, labels), ijk_to_ras, str(path))


def check_size(path: Path, sizes: tuple[int, ...], itemsize: int) -> None:
    """Refuse a volume whose declared size exceeds the limits, before reading it."""
    if len(sizes) != 3:
        raise PreopModelError(
            f"{path}: {len(sizes)} axes of sizes {list(sizes)}; a label volume has 3 (export "
            "the segmentation as a labelmap volume)"
        )
    voxels = int(np.prod([int(s) for s in sizes], dtype=object))
    if voxels > MAX_VOXELS or voxels * itemsize > MAX_BYTES:
        raise PreopModelError(
            f"{path}: declares {' x '.join(str(s) for s in sizes)} voxels "
            f"({voxels * itemsize / 2**20:,.0f} MiB), more than the {MAX_VOXELS:,} voxels and "
            f"{MAX_BYTES >> 20} MiB a label volume may be; crop or resample it"
        )


def _read_nrrd(path: Path, space: str | None) -> tuple[np.ndarray, np.ndarray]:
    import nrrd

    try:
        header = nrrd.read_header(str(path))
        sizes = tuple(int(s) for s in header["sizes"])
        itemsize = _nrrd_itemsize(str(header["type"]))
    except Exception as exc:  # pynrrd raises several kinds on a damaged header
        raise PreopModelError(
            f"{path}: not a readable NRRD header ({exc}); export the label volume again"
        ) from exc
    check_size(path, sizes, itemsize)
    signs = _nrrd_signs(path, header, space)
    if "space directions" in header:
        directions = np.asarray(header["space directions"], dtype=np.float64)
    else:
        directions = np.diag(np.asarray(header.get("spacings", [1.0] * 3), dtype=np.float64))
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    if directions.shape != (3, 3) or origin.shape != (3,) or not np.isfinite(directions).all():
        raise PreopModelError(
            f"{path}: 'space directions'/'space origin' do not place 3 axes in 3D "
            f"({directions.tolist()}, {origin.tolist()}); export the label volume again"
        )
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = np.asarray(signs)[:, None] * directions.T  # row n of the header: axis n
    ijk_to_ras[:3, 3] = np.asarray(signs) * origin
    try:
        labels, _ = nrrd.read(str(path), index_order="F")
    except Exception as exc:  # truncated gzip, short raw data, missing detached file
        raise PreopModelError(
            f"{path}: the voxel data cannot be read, the file is truncated or damaged ({exc}); "
            "export the label volume again"
        ) from exc
    return labels, ijk_to_ras


def _nrrd_itemsize(kind: str) -> int:
    """Bytes per voxel of an NRRD ``type`` ('uchar', 'short int', 'uint32_t', 'double'...)."""
    kind = kind.lower()
    for words, size in ((("char", "8"), 1), (("short", "16"), 2), (("long", "64"), 8)):
        if any(word in kind for word in words):
            return size
    if kind == "double":
        return 8
    if "int" in kind or "32" in kind or kind == "float":
        return 4
    raise ValueError(f"unknown voxel type {kind!r}")


def _nrrd_signs(path: Path, header: dict, space: str | None) -> tuple[float, float, float]:
    name = str(header.get("space", space or "")).lower()
    if name not in _SPACE_SIGNS:
        given = f"space '{header['space']}'" if "space" in header else "no space field"
        raise PreopModelError(
            f"{path}: {given}, so its voxels cannot be placed in RAS; give space='RAS' or "
            "space='LPS' (or write the file with a 'space' field, as Slicer does)"
        )
    return _SPACE_SIGNS[name]


def _read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        import SimpleITK as sitk
    except ImportError as exc:
        raise PreopModelError(
            f"{path}: reading NIfTI needs SimpleITK (pip install SimpleITK), or save the label "
            "volume as NRRD"
        ) from exc
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise PreopModelError(
            f"{path}: not a readable NIfTI header ({str(exc).strip().splitlines()[-1]}); "
            "export the label volume again"
        ) from exc
    bits = re.match(r"(\d+)-bit", sitk.GetPixelIDValueAsString(reader.GetPixelID()))
    itemsize = int(bits.group(1)) // 8 if bits else 8
    check_size(path, tuple(reader.GetSize()), itemsize * reader.GetNumberOfComponents())
    if reader.GetNumberOfComponents() != 1:
        raise PreopModelError(
            f"{path}: {reader.GetNumberOfComponents()} values per voxel; a label volume has one"
        )
    _check_nifti_length(path, int(np.prod(reader.GetSize())) * itemsize)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise PreopModelError(
            f"{path}: the voxel data cannot be read, the file is truncated or damaged; export "
            "the label volume again"
        ) from exc
    labels = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # SimpleITK gives [k, j, i]
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = direction * np.asarray(image.GetSpacing())
    ijk_to_lps[:3, 3] = image.GetOrigin()
    return labels, np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_lps


def _check_nifti_length(path: Path, voxel_bytes: int) -> None:
    """Refuse a NIfTI file that ends before its voxels do: SimpleITK fills the rest with zeros.

    Reads the (decompressed) file once in 1 MiB pieces, stopping as soon as it is long enough.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            head = stream.read(540)
            order = "<" if struct.unpack_from("<i", head)[0] in (348, 540) else ">"
            if struct.unpack_from(f"{order}i", head)[0] == 540:  # NIfTI-2: int64 vox_offset
                offset = int(struct.unpack_from(f"{order}q", head, 168)[0])
            else:
                offset = int(struct.unpack_from(f"{order}f", head, 108)[0])
            needed, length = max(offset, 348) + voxel_bytes, len(head)
            while length < needed and (piece := stream.read(1 << 20)):
                length += len(piece)
    except (OSError, EOFError, zlib.error, struct.error) as exc:
        raise PreopModelError(
            f"{path}: truncated or damaged ({exc}); export the label volume again"
        ) from exc
    if length < needed:
        raise PreopModelError(
            f"{path}: truncated: its header declares {needed:,} bytes of header and voxels but "
            f"the file holds {length:,}; export the label volume again"
        )


def _whole_labels(path: Path, labels: np.ndarray) -> np.ndarray:
    """Integer labels; float voxels are accepted when every value is a whole number."""
    if np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool:
        return labels.astype(np.uint8) if labels.dtype == bool else labels
    if not np.isfinite(labels).all() or not np.array_equal(labels, np.round(labels)):
        raise PreopModelError(
            f"{path}: voxels hold fractions or NaN, not labels (is it an image, not a "
            "segmentation?); export a labelmap volume"
        )
    return labels.astype(np.int32)
