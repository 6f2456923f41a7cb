"""Test nodes for OpenIGTLink graphs: a source of every kind the server sends, a JSON-lines sink."""

from __future__ import annotations

import json

import numpy as np

from igtflow.stream.messages import Image, Mesh, Message, Points, Status, Transform
from igtflow.stream.node import WILDCARD, Node, Source

BASE_STAMP_NS = 1_700_000_000_000_000_000


def pose_stamp(n: int) -> int:
    """The capture time the n-th pose claims: a test can tell it from the send time."""
    return BASE_STAMP_NS + n * 1_000_000


class Scene(Source):
    """Emits a numbered pose (translation x = n), targets, a mesh and a status each tick."""

    outputs = {"pose": Transform, "targets": Points, "mesh": Mesh, "state": Status}

    def setup(self) -> None:
        self.n = 0
        self.vertices = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0]], np.float32)
        self.faces = np.array([[0, 1, 2], [0, 2, 3]], np.int32)

    def tick(self) -> None:
        matrix = np.eye(4)
        matrix[0, 3] = self.n
        stamp = pose_stamp(self.n)
        self.emit(
            "pose",
            Transform(matrix=matrix, from_frame="Probe", to_frame="Tracker", stamp_ns=stamp),
        )
        self.emit("targets", Points(points=[[1, 2, 3]], labels=["Lesion"], stamp_ns=stamp))
        self.emit("mesh", Mesh(vertices=self.vertices, faces=self.faces, stamp_ns=stamp))
        self.emit("state", Status(level="ok", code="live", text=f"tick {self.n}", stamp_ns=stamp))
        self.n += 1


class JsonSink(Node):
    """One JSON line per message: kind, input, stamp, and the geometry a test checks."""

    inputs = {WILDCARD: Message}

    def setup(self, out: str) -> None:
        """out: JSON-lines file to append to"""
        self.file = open(out, "a", buffering=1)  # noqa: SIM115 - open for the node's life

    def on_message(self, input_name: str, message: Message) -> None:
        record: dict = {"input": input_name, "kind": message.KIND, "stamp_ns": message.stamp_ns}
        if isinstance(message, Image):
            record |= {
                "shape": list(message.data.shape),
                "dtype": str(message.data.dtype),
                "sum": int(message.data.astype(np.int64).sum()),
                "ijk_to_ras": message.ijk_to_ras.tolist(),
            }
        if isinstance(message, Transform):
            record |= {
                "matrix": message.matrix.tolist(),
                "from": message.from_frame,
                "to": message.to_frame,
            }
        if isinstance(message, Points):
            record |= {"points": message.points.tolist(), "labels": message.labels}
        self.file.write(json.dumps(record) + "\n")

    def teardown(self) -> None:
        self.file.close()
