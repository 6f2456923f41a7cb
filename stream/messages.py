"""The message kinds every node speaks: frozen dataclasses with numpy payloads.

Fields shared by all kinds are the design's contract (topic, seq, stamp_ns, frame, meta, trace);
array-valued fields are listed in ``ARRAYS`` so the wire codec can ship them as raw buffers.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

IMAGE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
MODALITIES = ("US", "XA", "RF", "LABELS", "FIELD")
STATUS_LEVELS = ("ok", "warn", "error")

TraceHop = list  # [node_id: str, t_in_ns: int, t_out_ns: int]


@dataclass(frozen=True, kw_only=True)
class Message:
    """Fields every message carries; ``seq`` gaps on a topic mean drops."""

    KIND: ClassVar[str] = "Message"
    ARRAYS: ClassVar[tuple[str, ...]] = ()

    topic: str = ""
    seq: int = 0
    stamp_ns: int = field(default_factory=time.time_ns)
    frame: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    trace: list[TraceHop] = field(default_factory=list)

    def replace(self, **changes: Any) -> Message:
        """A copy with ``changes`` applied; capture stamp and trace are kept."""
        return dataclasses.replace(self, **changes)

    def restamped(self, **fields: Any) -> Message:
        """A copy with runtime fields (topic, seq, trace) set, skipping re-validation."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(fields)
        return copy

    def age_ms(self, now_ns: int | None = None) -> float:
        """Milliseconds since capture: what a viewer must show next to anything it draws."""
        return ((now_ns if now_ns is not None else time.time_ns()) - self.stamp_ns) / 1e6

    def arrays(self) -> dict[str, np.ndarray]:
        """The array fields that are set, by name."""
        return {name: value for name in self.ARRAYS if (value := getattr(self, name)) is not None}


def _as_matrix(value: Any, name: str) -> np.ndarray:
    matrix = np.asarray(value, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"{name} must be a 4x4 matrix, got shape {matrix.shape}")
    return matrix


@dataclass(frozen=True, kw_only=True)
class Image(Message):
    """A 2D frame (H×W or H×W×C) or a label map / displacement field in image form."""

    KIND: ClassVar[str] = "Image"
    ARRAYS: ClassVar[tuple[str, ...]] = ("data",)  # the 4×4 matrix rides in the header

    data: np.ndarray
    spacing: tuple[float, ...] = (1.0, 1.0)
    ijk_to_ras: np.ndarray = field(default_factory=lambda: np.eye(4))
    modality: str = "US"

    def __post_init__(self) -> None:
        if not isinstance(self.data, np.ndarray):
            raise TypeError(f"Image.data must be a numpy array, got {type(self.data).__name__}")
        if self.data.ndim not in (2, 3):
            raise ValueError(f"Image.data must be H×W or H×W×C, got shape {self.data.shape}")
        if self.data.dtype not in IMAGE_DTYPES:
            raise ValueError(f"Image.data dtype {self.data.dtype} is not uint8, uint16 or float32")
        if self.modality not in MODALITIES:
            raise ValueError(f"Image.modality {self.modality!r} is not one of {MODALITIES}")
        object.__setattr__(self, "ijk_to_ras", _as_matrix(self.ijk_to_ras, "Image.ijk_to_ras"))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))

    def with_data(self, data: np.ndarray, **changes: Any) -> Image:
        """The same frame (geometry, stamp, trace) carrying new pixels, e.g. a label map."""
        return dataclasses.replace(self, data=data, **changes)


@dataclass(frozen=True, kw_only=True)
class Transform(Message):
    """A rigid or affine 4×4 pose named ``<from>To<to>`` with its estimated quality."""

    KIND: ClassVar[str] = "Transform"
    ARRAYS: ClassVar[tuple[str, ...]] = ()  # a 4×4 matrix is cheaper in the header

    matrix: np.ndarray = field(default_factory=lambda: np.eye(4))
    from_frame: str = ""
    to_frame: str = ""
    valid: bool = True
    error_mm: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "matrix", _as_matrix(self.matrix, "Transform.matrix"))
        if not isinstance(self.valid, bool):
            raise TypeError(f"Transform.valid must be a bool, got {self.valid!r}")

    @property
    def name(self) -> str:
        return f"{self.from_frame}To{self.to_frame}"


@dataclass(frozen=True, kw_only=True)
class Mesh(Message):
    """A triangle surface in RAS millimetres, optionally with a scalar per vertex."""

    KIND: ClassVar[str] = "Mesh"
    ARRAYS: ClassVar[tuple[str, ...]] = ("vertices", "faces", "scalars")

    vertices: np.ndarray
    faces: np.ndarray
    scalars: np.ndarray | None = None

    def __post_init__(self) -> None:
        vertices = np.asarray(self.vertices, dtype=np.float32)
        faces = np.asarray(self.faces, dtype=np.int32)
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"Mesh.vertices must be N×3, got shape {vertices.shape}")
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"Mesh.faces must be M×3, got shape {faces.shape}")
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "faces", faces)
        if self.scalars is not None:
            scalars = np.asarray(self.scalars, dtype=np.float32)
            if scalars.ndim not in (1, 2) or scalars.shape[0] != vertices.shape[0]:
                raise ValueError(
                    f"Mesh.scalars of shape {scalars.shape} do not give one value (or row) "
                    f"per vertex for {vertices.shape[0]} vertices"
                )
            object.__setattr__(self, "scalars", scalars)


@dataclass(frozen=True, kw_only=True)
class Points(Message):
    """Landmarks, targets or contour points (N×3 mm), optionally named."""

    KIND: ClassVar[str] = "Points"
    ARRAYS: ClassVar[tuple[str, ...]] = ("points",)

    points: np.ndarray
    labels: list[str] | None = None

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"Points.points must be N×3, got shape {points.shape}")
        object.__setattr__(self, "points", points)
        if self.labels is not None and len(self.labels) != points.shape[0]:
            raise ValueError(f"Points has {len(self.labels)} labels for {points.shape[0]} points")


@dataclass(frozen=True, kw_only=True)
class Status(Message):
    """Health and alarms (drops, stale overlay, failed node) as a message like any other."""

    KIND: ClassVar[str] = "Status"

    level: Literal["ok", "warn", "error"] = "ok"
    code: str = ""
    text: str = ""

    def __post_init__(self) -> None:
        if self.level not in STATUS_LEVELS:
            raise ValueError(f"Status.level {self.level!r} is not one of {STATUS_LEVELS}")


KINDS: dict[str, type[Message]] = {
    kind.KIND: kind for kind in (Message, Image, Transform, Mesh, Points, Status)
}
