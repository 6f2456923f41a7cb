"""igtflow messages to OpenIGTLink content and back: the geometry conventions live here.

Image: ``Image.ijk_to_ras`` (i = column, j = row, k = slice, translation = first pixel's centre)
becomes the IMAGE matrix exactly (the image module moves the origin to the volume centre, as the
specification wants). A 2D frame whose k axis is zero gets a 1 mm slice normal so Slicer can place
it. Transform names follow PLUS: device ``ProbeToTracker`` is ``Probe`` → ``Tracker``.
"""

from __future__ import annotations

import re

import numpy as np

from igtflow.render.igtl.codec import Received
from igtflow.render.igtl.image import ImageContent
from igtflow.render.igtl.point import PointContent
from igtflow.render.igtl.polydata import (
    POINT_SCALAR,
    Attribute,
    PolyDataContent,
    cells_to_triangles,
    triangle_cells,
)
from igtflow.render.igtl.protocol import IgtlError
from igtflow.render.igtl.text import STATUS_OK, STATUS_UNKNOWN_ERROR, StatusContent
from igtflow.render.igtl.transform import TransformContent
from igtflow.stream.messages import IMAGE_DTYPES, MODALITIES, Image, Mesh, Points, Status, Transform

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# PLUS splits a transform name at the "To" that starts a capitalised word.
_TRANSFORM_NAME = re.compile(r"^(.+?)To([A-Z0-9].*)$")
_LEVEL_SUBCODE = {"ok": 0, "warn": 1, "error": 2}


# -- outgoing ----------------------------------------------------------------------------------


def image_content(image: Image, copy: bool = True) -> ImageContent:
    """IMAGE content for ``image``; ``copy`` detaches the pixels from a shared-memory slot."""
    data = image.data
    pixels = data[None, :, :, None] if data.ndim == 2 else data[None]
    if copy:
        pixels = np.array(pixels, order="C", copy=True)
    matrix = np.array(image.ijk_to_ras, dtype=np.float64)
    if not np.any(matrix[:3, 2]):
        normal = np.cross(matrix[:3, 0], matrix[:3, 1])
        length = np.linalg.norm(normal)
        matrix[:3, 2] = normal / length if length > 0 else (0.0, 0.0, 1.0)
    return ImageContent(pixels, matrix, "RAS")


def transform_content(transform: Transform) -> TransformContent:
    return TransformContent(transform.matrix)


def mesh_content(
    vertices: np.ndarray, faces: np.ndarray, scalars: np.ndarray | None
) -> PolyDataContent:
    """POLYDATA of a triangle mesh; per-vertex scalars go as the point attribute ``scalars``."""
    attributes: tuple[Attribute, ...] = ()
    if scalars is not None:
        attributes = (
            Attribute(
                "scalars", np.asarray(scalars, np.float32).reshape(len(vertices), -1), POINT_SCALAR
            ),
        )
    return PolyDataContent(
        np.asarray(vertices, dtype=np.float32),
        polygons=triangle_cells(faces),
        attributes=attributes,
    )


def points_content(points: Points, group: str) -> PointContent:
    labels = points.labels or [f"{group}-{i}" for i in range(len(points.points))]
    return PointContent.of(points.points, [str(label)[:64] for label in labels], group=group[:32])


def status_content(status: Status) -> StatusContent:
    """ok → OK; warn → OK with subcode 1; error → UNKNOWN_ERROR; the code rides as error name."""
    code = STATUS_UNKNOWN_ERROR if status.level == "error" else STATUS_OK
    name = status.code.encode("utf-8")[:20].decode("utf-8", errors="ignore")
    return StatusContent(code, _LEVEL_SUBCODE[status.level], name, status.text)


def status_text(status: Status) -> str:
    """The one-line STRING that goes beside a STATUS, for viewers that only show text."""
    head = f"{status.level}" + (f" {status.code}" if status.code else "")
    return f"{head}: {status.text}" if status.text else head


# -- incoming ----------------------------------------------------------------------------------


def split_transform_name(device: str) -> tuple[str, str]:
    """``ProbeToTracker`` → (``Probe``, ``Tracker``); a name without ``To`` → (device, "")."""
    match = _TRANSFORM_NAME.match(device)
    return (match.group(1), match.group(2)) if match else (device, "")


def image_from(received: Received, content: ImageContent) -> Image:
    """An igtflow Image of a 2D IMAGE; IgtlError for volumes (Image is 2D)."""
    k, j, i, c = content.pixels.shape
    if k != 1:
        raise IgtlError(
            f"IMAGE {received.device!r} is a {i}×{j}×{k} volume; only 2D frames are read"
        )
    data = content.pixels[0, :, :, 0] if c == 1 else content.pixels[0]
    if data.dtype not in IMAGE_DTYPES:
        data = data.astype(np.float32)  # int16 CT and friends: float32 holds them exactly
    matrix = content.ijk_to_ras if content.coordinate == "RAS" else LPS_TO_RAS @ content.ijk_to_ras
    spacing = tuple(float(s) for s in np.linalg.norm(matrix[:3, :3], axis=0))
    modality = received.metadata.get("Modality", "US")
    return Image(
        data=data,
        ijk_to_ras=matrix,
        spacing=spacing,
        modality=modality if modality in MODALITIES else "US",
        stamp_ns=received.stamp_ns,
        frame=received.device,
        meta={"device": received.device},
    )


def transform_from(received: Received, content: TransformContent) -> Transform:
    source, target = split_transform_name(received.device)
    valid = received.metadata.get("TransformStatus", "OK").upper() != "INVALID"
    return Transform(
        matrix=content.matrix,
        from_frame=source,
        to_frame=target,
        valid=valid,
        stamp_ns=received.stamp_ns,
        frame=target,
        meta={"device": received.device},
    )


def points_from(received: Received, content: PointContent) -> Points:
    return Points(
        points=content.positions,
        labels=list(content.names),
        stamp_ns=received.stamp_ns,
        frame=received.device,
        meta={"device": received.device},
    )


def status_from(received: Received, content: StatusContent) -> Status:
    level = ("warn" if content.subcode == 1 else "ok") if content.code == STATUS_OK else "error"
    return Status(
        level=level,
        code=content.error_name or str(content.code),
        text=content.message,
        stamp_ns=received.stamp_ns,
        frame=received.device,
        meta={"device": received.device, "igtl_code": content.code},
    )


def mesh_from(received: Received, content: PolyDataContent) -> Mesh:
    """A triangle Mesh of polygons and strips; IgtlError for out-of-range indices."""
    faces = np.vstack(
        [cells_to_triangles(content.polygons), cells_to_triangles(content.strips, strips=True)]
    )
    if faces.size and (faces.min() < 0 or faces.max() >= len(content.points)):
        raise IgtlError(f"POLYDATA {received.device!r} has a cell index past its points")
    scalars = next(
        (
            a.data
            for a in content.attributes
            if a.type == POINT_SCALAR and len(a.data) == len(content.points)
        ),
        None,
    )
    return Mesh(
        vertices=content.points,
        faces=faces.astype(np.int32),
        scalars=scalars[:, 0] if scalars is not None and scalars.shape[1] == 1 else scalars,
        stamp_ns=received.stamp_ns,
        frame=received.device,
        meta={"device": received.device},
    )
