"""What the OpenIGTLink server and client nodes share: turning graph messages into messages.

Every input's name is the device name a viewer shows (``≤ 20`` ASCII characters, checked by
``igtflow validate``); the header timestamp is the message's capture time (``stamp_ns``).
Images and meshes are latest-only per client; transforms, points and status always go, in order.
An invalid transform (``valid: false``) goes with a STATUS (error ``transform-invalid``) on the same
device, since a viewer applies any TRANSFORM it gets.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from igtflow.render.igtl.decimate import mesh_digest
from igtflow.render.igtl.mesh_worker import Arrays, MeshReducer
from igtflow.render.igtl.message_mapping import (
    image_content,
    mesh_content,
    points_content,
    status_content,
    status_text,
    transform_content,
)
from igtflow.render.igtl.outbox import Outgoing
from igtflow.render.igtl.protocol import device_name_problem
from igtflow.render.igtl.text import StringContent
from igtflow.stream.messages import Image, Mesh, Message, Points, Status, Transform
from igtflow.stream.node import WILDCARD, Node


class Transport(Protocol):
    def publish(self, item: Outgoing) -> None: ...

    def close(self) -> None: ...


def _metadata(message: Message, **extra: Any) -> dict[str, str]:
    """Header v2 metadata: where the message came from, for viewers that show it, plus the
    message's own plain meta values (e.g. an overlay's ``stale``); nested values stay out.
    """
    plain = {
        str(k): v
        for k, v in message.meta.items()
        if isinstance(v, str | int | float | bool) and len(str(v)) <= MAX_META_TEXT
    }
    data = {**plain, "Frame": message.frame, "Seq": str(message.seq), **extra}
    return {k: str(v) for k, v in data.items() if v != ""}


MAX_META_TEXT = 256
TRANSFORM_CODE = "transform-invalid"  # the STATUS error name beside an invalid TRANSFORM
STATUS_EVERY_S = 1.0


class IgtlOutput(Node):
    """Base of igtl-server and igtl-client: any input, named by its OpenIGTLink device."""

    inputs = {WILDCARD: Message}

    transport: Transport
    mesh_triangles: int = 20000

    @classmethod
    def check_wiring(cls, params: dict[str, Any], input_names: list[str]) -> list[str]:
        return [
            f"input {name!r} cannot be an OpenIGTLink device name: {problem}; rename the input "
            "(its name is the device name viewers show)"
            for name in input_names
            if (problem := device_name_problem(name))
        ]

    def start(self, transport: Transport) -> None:
        self.transport = transport
        self.mesh_digests: dict[str, bytes] = {}
        self.mesh_generations: dict[str, int] = {}  # per device: meshes taken so far
        self.reducer: MeshReducer | None = None  # started with the first mesh over budget
        # A mesh is published under this lock, together with the check that it is the newest.
        self.mesh_lock = threading.Lock()
        self.refused: set[str] = set()
        self.transform_valid: dict[str, bool] = {}  # per device: the last transform's valid
        self.status_sent: dict[str, float] = {}  # per device: when its last invalid STATUS went

    def on_message(self, input_name: str, message: Message) -> None:
        if input_name in self.refused:
            return
        problem = device_name_problem(input_name)
        if problem:
            self.refused.add(input_name)
            self.log.error("input %r is not sent: %s", input_name, problem)
            return
        for item in self.outgoing(input_name, message):
            self.transport.publish(item)

    def outgoing(self, device: str, message: Message) -> list[Outgoing]:
        """The OpenIGTLink messages ``message`` becomes; a mesh publishes itself (``_mesh``)."""
        stamp = message.stamp_ns
        if isinstance(message, Image):
            meta = _metadata(message, Modality=message.modality)
            return [Outgoing(device, image_content(message), stamp, meta, latest_only=True)]
        if isinstance(message, Transform):
            meta = _metadata(
                message,
                TransformStatus="OK" if message.valid else "INVALID",
                ErrorMm=f"{message.error_mm:.3f}",
            )
            # The STATUS goes first: a client that keeps the latest message per device name
            # (pyigtl) still ends on the TRANSFORM, whose TransformStatus says INVALID too.
            status = self.transform_status(device, message)
            out = self.outgoing(device, status) if status is not None else []
            return [*out, Outgoing(device, transform_content(message), stamp, meta)]
        if isinstance(message, Mesh):
            return self._mesh(device, message)
        if isinstance(message, Points):
            return [Outgoing(device, points_content(message, device), stamp, _metadata(message))]
        if isinstance(message, Status):
            meta = _metadata(message)
            return [
                Outgoing(device, status_content(message), stamp, meta),
                Outgoing(device, StringContent(status_text(message)), stamp, meta),
            ]
        if device not in self.refused:
            self.refused.add(device)
            self.log.warning("input %r carries %s; OpenIGTLink cannot", device, message.KIND)
        return []

    def transform_status(self, device: str, transform: Transform) -> Status | None:
        """A STATUS to send beside ``transform``, so a viewer that applies every TRANSFORM
        (Slicer does) still shows that it is not to be trusted: an error when the transform
        turns invalid (its meta ``reason`` as the text), again each ``STATUS_EVERY_S`` while it
        stays so (for clients that join late), and OK when it is valid again."""
        was = self.transform_valid.get(device)
        self.transform_valid[device] = transform.valid
        if transform.valid:
            if was is False:
                return Status(
                    stamp_ns=transform.stamp_ns,
                    level="ok",
                    code=TRANSFORM_CODE,
                    text=f"{device} is valid again",
                    frame=device,
                )
            return None
        now = time.monotonic()
        if was is False and now - self.status_sent.get(device, -1e9) < STATUS_EVERY_S:
            return None
        self.status_sent[device] = now
        stale = bool(transform.meta.get("stale"))
        reason = str(transform.meta.get("reason") or "the producer did not say why")
        return Status(
            stamp_ns=transform.stamp_ns,
            level="error",
            code=TRANSFORM_CODE,
            text=f"{device} is {'stale' if stale else 'not valid'}: {reason}",
            frame=device,
            meta={"stale": stale},
        )

    def _mesh(self, device: str, mesh: Mesh) -> list[Outgoing]:
        digest = mesh_digest(mesh.vertices, mesh.faces, mesh.scalars)
        if self.mesh_digests.get(device) == digest:
            return []
        self.mesh_digests[device] = digest
        arrays = (mesh.vertices, mesh.faces, mesh.scalars)
        over_budget = 0 < self.mesh_triangles < len(mesh.faces)
        item = None if over_budget else self._mesh_item(device, mesh, arrays)
        with self.mesh_lock:
            generation = self.mesh_generations.get(device, 0) + 1
            self.mesh_generations[device] = generation
            if item is not None:
                self.transport.publish(item)
        if over_budget:
            # Decimation holds the GIL for up to a second: done in a worker process, sent when
            # ready, while this node goes on serving everything else.
            if self.reducer is None:
                self.reducer = MeshReducer(self.mesh_triangles, self._reduced, self.log)
            self.reducer.submit(device, (generation, mesh), arrays)
        return []

    def _reduced(self, device: str, tag: tuple[int, Mesh], arrays: Arrays | None) -> None:
        """A decimation is over (on the reducer's thread): send it unless a newer mesh went."""
        generation, mesh = tag
        item = None if arrays is None else self._mesh_item(device, mesh, arrays)
        with self.mesh_lock:
            if self.mesh_generations.get(device) != generation:
                return
            if item is None:
                self.mesh_digests.pop(device, None)  # failed: the same mesh may try again
            else:
                self.transport.publish(item)

    @staticmethod
    def _mesh_item(device: str, mesh: Mesh, arrays: Arrays) -> Outgoing:
        vertices, faces, scalars = arrays
        content = mesh_content(vertices, faces, scalars)
        meta = _metadata(mesh, Triangles=str(len(faces)), SourceTriangles=str(len(mesh.faces)))
        return Outgoing(device, content, mesh.stamp_ns, meta, latest_only=True)

    def teardown(self) -> None:
        if self.reducer is not None:
            self.reducer.close()
        self.transport.close()
