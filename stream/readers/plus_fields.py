"""PLUS per-frame fields (``Seq_FrameNNNN_<Name>``), the same in MetaIO and NRRD sequence files.

``<From>To<To>Transform`` holds 16 numbers (a row-major 4×4), ``…TransformStatus`` says OK or why
not (MISSING, OUT_OF_VIEW, INVALID…), ``Timestamp`` is seconds, ``ImageStatus`` (``Status`` in
PLUS's NRRD writer) marks a frame whose image is not valid. Any number of transforms per frame.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from igtflow.stream.readers.errors import SourceFileError
from igtflow.stream.readers.frames import TrackedTransform

FRAME_FIELD = re.compile(r"^Seq_Frame(\d+)_(.+)$", re.IGNORECASE)
TRANSFORM_SUFFIX = "Transform"
STATUS_SUFFIX = "TransformStatus"
# PLUS writes ImageStatus into MetaIO files and Status into NRRD files.
IMAGE_STATUS_NAMES = ("ImageStatus", "Status")
# PLUS's rule: a "To" followed by an upper-case letter (or digit) separates the frame names.
_TO = re.compile(r"To(?=[A-Z0-9_])")


@dataclass(frozen=True)
class FrameFields:
    """What PLUS recorded with one frame, parsed and checked."""

    index: int
    time_s: float | None
    image_ok: bool
    transforms: tuple[TrackedTransform, ...]
    other: dict[str, str] = field(default_factory=dict)


def split_fields(
    items: Iterable[tuple[str, str]],
) -> tuple[dict[str, str], dict[int, dict[str, str]]]:
    """File-wide fields, and per-frame fields by frame index."""
    general: dict[str, str] = {}
    frames: dict[int, dict[str, str]] = {}
    for key, value in items:
        match = FRAME_FIELD.match(key)
        if match:
            frames.setdefault(int(match.group(1)), {})[match.group(2)] = value
        else:
            general[key] = value
    return general, frames


def transform_frames(name: str) -> tuple[str, str]:
    """``ProbeToTracker`` -> (``Probe``, ``Tracker``); ("name", "") when PLUS could not split it."""
    cuts = [m.start() for m in _TO.finditer(name)]
    if len(cuts) != 1 or cuts[0] == 0 or cuts[0] + 2 >= len(name):
        return name, ""
    return name[: cuts[0]], name[cuts[0] + 2 :]


def parse_matrix(path: Path, where: str, text: str) -> np.ndarray:
    """16 numbers, row-major, as a 4×4 float64 matrix; a clear error for anything else."""
    values = text.split()
    if len(values) != 16:
        raise SourceFileError(
            path,
            f"{where} has {len(values)} numbers; a PLUS transform is 16 numbers "
            "(a row-major 4x4 matrix)",
        )
    try:
        matrix = np.array([float(v) for v in values], dtype=np.float64).reshape(4, 4)
    except ValueError:
        raise SourceFileError(path, f"{where} = {text[:120]!r} is not 16 numbers") from None
    if not np.all(np.isfinite(matrix)):
        raise SourceFileError(path, f"{where} holds a NaN or infinite number")
    return matrix


def static_transforms(path: Path, general: dict[str, str]) -> tuple[TrackedTransform, ...]:
    """File-wide ``<From>To<To>Transform`` fields (e.g. a calibration stored once)."""
    found = []
    for key, value in general.items():
        if key.endswith(TRANSFORM_SUFFIX) and len(key) > len(TRANSFORM_SUFFIX):
            name = key[: -len(TRANSFORM_SUFFIX)]
            matrix = parse_matrix(path, f"header field {key}", value)
            found.append(TrackedTransform(name, *transform_frames(name), matrix, "OK"))
    return tuple(found)


def parse_frames(
    path: Path,
    frames: dict[int, dict[str, str]],
    count: int,
    static: tuple[TrackedTransform, ...] = (),
) -> list[FrameFields]:
    """Check and parse the fields of frames 0..count-1; every gap or bad value is an error."""
    _check_indices(path, frames, count)
    present = {name for fields in frames.values() for name in fields}
    image_status = next((n for n in IMAGE_STATUS_NAMES if n in present), None)
    status_known = {n[: -len("Status")] for n in present if n.endswith(STATUS_SUFFIX)}
    timed = "Timestamp" in present
    parsed = []
    for index in range(count):
        fields = frames.get(index, {})
        label = f"Seq_Frame{index:04d}"
        time_s = None
        if timed:
            if "Timestamp" not in fields:
                raise SourceFileError(
                    path, f"frame {index} has no Timestamp ({label}_Timestamp) while others do"
                )
            time_s = _seconds(path, f"{label}_Timestamp", fields["Timestamp"])
        image_ok = True
        if image_status is not None:
            if image_status not in fields:
                raise SourceFileError(
                    path,
                    f"frame {index} has no {image_status} ({label}_{image_status}) while other "
                    "frames do; the header is damaged or was edited",
                )
            image_ok = fields[image_status].strip().upper() == "OK"
        transforms = _frame_transforms(path, index, fields, status_known)
        names = {t.name for t in transforms}
        transforms += tuple(t for t in static if t.name not in names)
        known = {"Timestamp", image_status} | {f"{t.name}{TRANSFORM_SUFFIX}" for t in transforms}
        other = {
            k: v for k, v in fields.items() if k not in known and not k.endswith(STATUS_SUFFIX)
        }
        parsed.append(FrameFields(index, time_s, image_ok, transforms, other))
    return parsed


def _check_indices(path: Path, frames: dict[int, dict[str, str]], count: int) -> None:
    if not frames:
        return
    beyond = sorted(i for i in frames if i >= count)
    if beyond:
        raise SourceFileError(
            path,
            f"the header has fields for frame {beyond[0]} (Seq_Frame{beyond[0]:04d}_…) but the "
            f"image size says {count} frames; the size field or the frame fields are wrong",
        )
    # Counted, not listed: a damaged size may declare a billion frames.
    missing_count = count - len(frames)
    if missing_count:
        missing = itertools.islice((i for i in range(count) if i not in frames), 5)
        shown = ", ".join(f"Seq_Frame{i:04d}" for i in missing)
        more = f" and {missing_count - 5} more" if missing_count > 5 else ""
        raise SourceFileError(
            path,
            f"frames are missing from the header: no fields for {shown}{more} of {count} "
            "frames; the file was cut or edited and frames cannot be matched to their data",
        )


def _seconds(path: Path, where: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SourceFileError(path, f"{where} = {text!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise SourceFileError(path, f"{where} = {text!r} is not a finite time")
    return value


def _frame_transforms(
    path: Path, index: int, fields: dict[str, str], status_known: set[str]
) -> tuple[TrackedTransform, ...]:
    label = f"Seq_Frame{index:04d}"
    transforms = []
    for key, value in fields.items():
        if key.endswith(STATUS_SUFFIX):
            if key[: -len("Status")] not in fields:
                raise SourceFileError(
                    path, f"{label}_{key} has no {label}_{key[: -len('Status')]} to go with it"
                )
            continue
        if not key.endswith(TRANSFORM_SUFFIX) or len(key) == len(TRANSFORM_SUFFIX):
            continue
        name = key[: -len(TRANSFORM_SUFFIX)]
        matrix = parse_matrix(path, f"{label}_{key}", value)
        status_key = f"{key}Status"
        if status_key in fields:
            status = fields[status_key].strip().upper() or "INVALID"
        elif key in status_known:
            raise SourceFileError(
                path,
                f"frame {index} has {label}_{key} but no {label}_{status_key} while other frames "
                "give one; the header is damaged",
            )
        else:
            status = "OK"  # files from before PLUS wrote statuses
        transforms.append(TrackedTransform(name, *transform_frames(name), matrix, status))
    return tuple(transforms)
