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
