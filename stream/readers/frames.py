"""What every reader yields: a frame's pixels, its time in the file, and what came with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrackedTransform:
    """One ``<From>To<To>`` pose recorded with a frame, with the tracker's status word."""

    name: str
    from_frame: str
    to_frame: str
    matrix: np.ndarray
    status: str = "OK"

    @property
    def valid(self) -> bool:
        return self.status.upper() == "OK"


@dataclass(frozen=True)
class FileFrame:
    """Frame ``index`` of a file; ``image`` is None when the file marks the image invalid.

    ``time_s`` is the frame's time in the file (None when the file has no timing), ``spacing``
    is (column, row) in mm, ``meta`` holds small technical values that may travel on the stream.
    """

    index: int
    image: np.ndarray | None
    time_s: float | None
    spacing: tuple[float, float] = (1.0, 1.0)
    transforms: tuple[TrackedTransform, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FileDamage:
    """Where a damaged frame file stops being readable; the frames before it are kept whole.

    ``kept`` of the ``declared`` frames are read; ``byte_offset`` is where, in the file holding
    the pixels, the readable data ends (or, with ``kept == declared``, where extra data begins).
    """

    path: str
    kept: int
    declared: int
    byte_offset: int
    problem: str

    def __str__(self) -> str:
        if self.kept == self.declared:
            return f"{self.path}: {self.problem}; all {self.declared} frames were read"
        return (
            f"{self.path}: {self.problem}; kept frames 0-{self.kept - 1} of {self.declared}, "
            f"the data stops in frame {self.kept} at byte {self.byte_offset}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "frames_kept": self.kept,
            "frames_declared": self.declared,
            "stops_at_frame": self.kept if self.kept < self.declared else None,
            "byte_offset": self.byte_offset,
            "problem": self.problem,
        }
