"""igtflow messages as Foxglove's well-known schemas, so a recording opens in Foxglove unaided.

Foxglove's 3D panel works in metres (ROS's convention) and igtflow in millimetres: translations,
vertices and points are scaled by ``MM_TO_M`` so a 25 cm phantom is 25 cm on Foxglove's 1 m grid.
Pixels are copied as they are (a label map stays a mono8 image of label ids). Each message's
``timestamp`` is the capture stamp, so Foxglove lines images and poses up as they were captured.

- ``Image`` → ``foxglove.RawImage`` (mono8, mono16, rgb8, rgba8, 32FC1); ``FIELD`` images (H×W×2
  displacements) have no Foxglove image form and are skipped (``None``).
- ``Transform`` ``<From>To<To>`` → ``foxglove.FrameTransforms``: parent ``To``, child ``From``, so
  the child frame's points map into the parent by the matrix. ``valid`` and ``error_mm`` are not
  carried (FrameTransform has no field for them). A pose with a mirror in it (determinant < 0, as
  the phantom C-arm's detector frame) has no quaternion, and is skipped (``None``).
- ``Mesh`` → ``foxglove.SceneUpdate``: one entity, an indexed triangle list.
- ``Points`` → ``foxglove.SceneUpdate``: one sphere per point, with its label as billboard text.
- ``Status`` → ``foxglove.Log`` (ok → INFO, warn → WARNING, error → ERROR).
"""

from __future__ import annotations

import numpy as np
from foxglove_schemas_protobuf.Color_pb2 import Color
from foxglove_schemas_protobuf.FrameTransform_pb2 import FrameTransform
from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
from foxglove_schemas_protobuf.Log_pb2 import Log
from foxglove_schemas_protobuf.Point3_pb2 import Point3
from foxglove_schemas_protobuf.Pose_pb2 import Pose
from foxglove_schemas_protobuf.Quaternion_pb2 import Quaternion
from foxglove_schemas_protobuf.RawImage_pb2 import RawImage
from foxglove_schemas_protobuf.SceneEntity_pb2 import SceneEntity
from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
from foxglove_schemas_protobuf.SpherePrimitive_pb2 import SpherePrimitive
from foxglove_schemas_protobuf.TextPrimitive_pb2 import TextPrimitive
from foxglove_schemas_protobuf.TriangleListPrimitive_pb2 import TriangleListPrimitive
from foxglove_schemas_protobuf.Vector3_pb2 import Vector3
from google.protobuf.message import Message as Proto
from google.protobuf.timestamp_pb2 import Timestamp
from scipy.spatial.transform import Rotation

from igtflow.stream.messages import Image, Mesh, Message, Points, Status, Transform

MM_TO_M = 1e-3
DEFAULT_FRAME = "world"  # Foxglove needs a frame id; a message without one is drawn here
TARGET_DIAMETER_MM = 4.0
MESH_COLOR = Color(r=0.85, g=0.45, b=0.4, a=0.6)
TARGET_COLOR = Color(r=0.2, g=0.9, b=0.3, a=1.0)
LOG_LEVELS = {"ok": Log.Level.INFO, "warn": Log.Level.WARNING, "error": Log.Level.ERROR}

# (dtype, channels) → RawImage encoding; channels 0 means H×W
_ENCODINGS = {
    ("uint8", 0): "mono8",
    ("uint8", 1): "mono8",
    ("uint8", 3): "rgb8",
    ("uint8", 4): "rgba8",
    ("uint16", 0): "mono16",
    ("uint16", 1): "mono16",
    ("float32", 0): "32FC1",
    ("float32", 1): "32FC1",
}


def stamp(ns: int) -> Timestamp:
    """A protobuf timestamp of ``ns`` since the Unix epoch."""
    value = Timestamp()
    value.FromNanoseconds(int(ns))
    return value


def to_foxglove(message: Message) -> Proto | None:
    """``message`` in its Foxglove schema, or None where Foxglove has no form for it."""
    if isinstance(message, Image):
        return raw_image(message)
    if isinstance(message, Transform):
        return frame_transforms(message)
    if isinstance(message, Mesh):
        return mesh_scene(message)
    if isinstance(message, Points):
        return points_scene(message)
    if isinstance(message, Status):
        return status_log(message)
    return None


def raw_image(image: Image) -> RawImage | None:
    """The frame's pixels as a ``RawImage`` (little-endian rows, no padding); None for FIELD."""
    if image.modality == "FIELD":
        return None
    data = image.data
    channels = data.shape[2] if data.ndim == 3 else 0
    encoding = _ENCODINGS.get((data.dtype.name, channels))
    if encoding is None:
        return None
    pixels = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    height, width = data.shape[:2]
    return RawImage(
        timestamp=stamp(image.stamp_ns),
        frame_id=image.frame or DEFAULT_FRAME,
        width=width,
        height=height,
        encoding=encoding,
        step=pixels.strides[0],
        data=pixels.tobytes(),
    )


def frame_transforms(transform: Transform) -> FrameTransforms | None:
    """The pose as one ``FrameTransform`` (metres; the rotation of an affine part is its nearest
    rotation, scale and shear are not representable); None if it mirrors."""
    matrix = transform.matrix
    if not is_proper(matrix):
        return None
    x, y, z, w = Rotation.from_matrix(matrix[:3, :3]).as_quat()
    tx, ty, tz = (float(v) * MM_TO_M for v in matrix[:3, 3])
    return FrameTransforms(
        transforms=[
            FrameTransform(
                timestamp=stamp(transform.stamp_ns),
                parent_frame_id=transform.to_frame or DEFAULT_FRAME,
                child_frame_id=transform.from_frame or DEFAULT_FRAME,
                translation=Vector3(x=tx, y=ty, z=tz),
                rotation=Quaternion(x=float(x), y=float(y), z=float(z), w=float(w)),
            )
        ]
    )


def is_proper(matrix: np.ndarray) -> bool:
    """Whether the 4×4's linear part keeps handedness, so that a quaternion can hold it."""
    return bool(np.linalg.det(matrix[:3, :3]) > 0)


def _entity(message: Message, entity_id: str) -> SceneEntity:
    # Replaced by the next message on the same topic (same id), so it never needs a lifetime.
    return SceneEntity(
        timestamp=stamp(message.stamp_ns), frame_id=message.frame or DEFAULT_FRAME, id=entity_id
    )


def mesh_scene(mesh: Mesh) -> SceneUpdate:
    """The surface as one entity holding an indexed triangle list (metres)."""
    entity = _entity(mesh, mesh.topic or "mesh")
    vertices = mesh.vertices.astype(np.float64) * MM_TO_M
    entity.triangles.append(
        TriangleListPrimitive(
            pose=Pose(orientation=Quaternion(w=1.0)),
            points=[Point3(x=x, y=y, z=z) for x, y, z in vertices.tolist()],
            color=MESH_COLOR,
            indices=mesh.faces.astype(np.int64).ravel().tolist(),
        )
    )
    return SceneUpdate(entities=[entity])


def points_scene(points: Points) -> SceneUpdate:
    """One sphere per point, each labelled with its name when the points have names."""
    entity = _entity(points, points.topic or "points")
    size = TARGET_DIAMETER_MM * MM_TO_M
    labels = points.labels or [None] * len(points.points)
    positions = (points.points.astype(np.float64) * MM_TO_M).tolist()
    for (x, y, z), label in zip(positions, labels, strict=True):
        pose = Pose(position=Vector3(x=x, y=y, z=z), orientation=Quaternion(w=1.0))
        entity.spheres.append(
            SpherePrimitive(pose=pose, size=Vector3(x=size, y=size, z=size), color=TARGET_COLOR)
        )
        if label:
            entity.texts.append(
                TextPrimitive(
                    pose=pose,
                    billboard=True,
                    font_size=14,
                    scale_invariant=True,
                    color=TARGET_COLOR,
                    text=label,
                )
            )
    return SceneUpdate(entities=[entity])


def status_log(status: Status) -> Log:
    """The status as a log line named after the node that sent it."""
    text = f"{status.code}: {status.text}" if status.code else status.text
    return Log(
        timestamp=stamp(status.stamp_ns),
        level=LOG_LEVELS[status.level],
        message=text,
        name=status.topic.split("/")[0],
    )
