"""Big meshes are decimated in a worker process while the OpenIGTLink node serves the rest."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import pytest

from igtflow.render.igtl.mesh_worker import MeshReducer, pack_job, unpack_job
from igtflow.render.igtl.outbox import Outgoing
from igtflow.render.nodes.igtl_output import IgtlOutput
from igtflow.stream.messages import Mesh, Transform

LOG = logging.getLogger("test.mesh_worker")
WORKER_START_S = 60.0  # a fresh Python importing Open3D on a busy 2-core machine


def sphere(resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh.create_sphere(radius=40, resolution=resolution)
    vertices = np.asarray(mesh.vertices, np.float32)
    return vertices, np.asarray(mesh.triangles, np.int32), vertices[:, 2].copy()


def test_jobs_cross_the_pipe_as_raw_arrays() -> None:
    vertices, faces, scalars = sphere(10)
    for arrays in ((vertices, faces, scalars), (vertices, faces, None)):
        (v, f, s), budget = unpack_job(pack_job(arrays, 123))
        assert budget == 123
        np.testing.assert_array_equal(v, vertices)
        np.testing.assert_array_equal(f, faces)
        assert (s is None) == (arrays[2] is None)
        if s is not None:
            np.testing.assert_array_equal(s, scalars)


class Deliveries:
    def __init__(self) -> None:
        self.items: list[tuple[str, Any, Any]] = []
        self.arrived = threading.Event()

    def __call__(self, device: str, tag: Any, arrays: Any) -> None:
        self.items.append((device, tag, arrays))
        self.arrived.set()


def test_what_a_library_prints_in_the_worker_is_never_read_as_a_frame() -> None:
    # Open3D logs to stdout; the worker's frames travel on a private copy of it.
    import subprocess
    import sys

    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from igtflow.render.igtl import mesh_worker as m; "
            "sys.modules['igtflow.render.igtl.decimate'] = type(sys)('d'); "
            "sys.modules['igtflow.render.igtl.decimate'].decimate = "
            "lambda v, f, s, b: (print('[Open3D WARNING] noise'), (v, f, s))[1]; m.main()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    vertices, faces, _ = sphere(10)
    out, err = worker.communicate(
        len(job := pack_job((vertices, faces, None), 5)).to_bytes(8, "little") + job, timeout=60
    )
    assert b"noise" in err and b"noise" not in out
    (v, f, s), budget = unpack_job(out[8:])
    np.testing.assert_array_equal(v, vertices)
    np.testing.assert_array_equal(f, faces)
    assert (s, budget) == (None, 5)


def test_a_big_mesh_is_decimated_without_holding_the_callers_thread() -> None:
    vertices, faces, scalars = sphere(200)  # about 80 000 triangles
    delivered = Deliveries()
    reducer = MeshReducer(2000, delivered, LOG)
    try:
        started = time.monotonic()
        reducer.submit("Liver", "tag", (vertices, faces, scalars))
        assert time.monotonic() - started < 0.05, "submit only queues"
        # The caller's Python keeps running while the worker decimates: a held GIL would stop
        # this loop for the whole decimation.
        longest_gap = 0.0
        last = time.monotonic()
        while not delivered.arrived.is_set() and time.monotonic() - started < WORKER_START_S:
            time.sleep(0.001)
            now = time.monotonic()
            longest_gap, last = max(longest_gap, now - last), now
        assert delivered.arrived.is_set(), "the decimated mesh never came back"
        assert longest_gap < 0.2, f"the caller stalled for {longest_gap:.2f} s"
        device, tag, (v, f, s) = delivered.items[0]
        assert (device, tag) == ("Liver", "tag")
        assert len(faces) > 70_000 and 0 < len(f) <= 2000
        assert s is not None and s.shape == (len(v),)
    finally:
        reducer.close()
    assert reducer._worker is None or reducer._worker.poll() is not None, "worker ends with it"


def test_a_worker_that_dies_mid_job_costs_that_mesh_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    small_v, small_f, _ = sphere(60)
    big_v, big_f, _ = sphere(250)  # about 125 000 triangles: long enough to die during
    delivered = Deliveries()
    reducer = MeshReducer(500, delivered, LOG)
    try:
        reducer.submit("A", 1, (small_v, small_f, None))
        assert delivered.arrived.wait(WORKER_START_S)  # the worker is up, Open3D imported
        delivered.arrived.clear()
        first = reducer._worker
        assert first is not None
        with caplog.at_level(logging.ERROR):
            reducer.submit("A", 2, (big_v, big_f, None))
            time.sleep(0.15)
            first.kill()
            deadline = time.monotonic() + 30

            def reported() -> bool:  # counted, then delivered as None: wait for both
                return reducer.failures > 0 and delivered.items[-1][1] == 2

            while not reported() and time.monotonic() < deadline:
                time.sleep(0.01)
        assert reducer.failures == 1
        assert "mesh 'A'" in caplog.text and "not sent" in caplog.text
        assert delivered.items[-1][1:] == (2, None), "a failed mesh is reported as None"
        delivered.arrived.clear()
        reducer.submit("A", 3, (small_v, small_f, None))
        assert delivered.arrived.wait(WORKER_START_S), "a fresh worker takes the next mesh"
        assert delivered.items[-1][1] == 3
        assert reducer._worker is not first
    finally:
        reducer.close()


class Recorded:
    """Stands in for the server's transport: what the node published, when."""

    def __init__(self) -> None:
        self.items: list[tuple[float, Outgoing]] = []

    def publish(self, item: Outgoing) -> None:
        self.items.append((time.monotonic(), item))

    def close(self) -> None:
        pass


def output_node(budget: int) -> tuple[IgtlOutput, Recorded]:
    node = IgtlOutput()
    node.log = LOG
    node.mesh_triangles = budget
    transport = Recorded()
    node.start(transport)
    return node, transport


def test_transforms_go_at_once_while_a_big_mesh_is_decimated() -> None:
    vertices, faces, scalars = sphere(120)
    node, transport = output_node(budget=1000)
    try:
        node.on_message("Model", Mesh(vertices=vertices, faces=faces, scalars=scalars))
        node.on_message("ProbeToRef", Transform(matrix=np.eye(4)))
        assert [item.device for _, item in transport.items] == ["ProbeToRef"]
        deadline = time.monotonic() + WORKER_START_S
        while len(transport.items) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        _, mesh_item = transport.items[-1]
        assert mesh_item.device == "Model"
        assert int(mesh_item.metadata["Triangles"]) <= 1000
        assert mesh_item.metadata["SourceTriangles"] == str(len(faces))
    finally:
        node.teardown()


def test_a_decimated_mesh_never_replaces_a_newer_one() -> None:
    big_v, big_f, _ = sphere(120)
    small_v, small_f, _ = sphere(5)
    node, transport = output_node(budget=1000)
    came_back = threading.Event()
    reduced = node._reduced

    def watched(device: str, tag: Any, arrays: Any) -> None:
        reduced(device, tag, arrays)
        came_back.set()

    node._reduced = watched  # type: ignore[method-assign]
    try:
        node.on_message("Model", Mesh(vertices=big_v, faces=big_f))
        node.on_message("Model", Mesh(vertices=small_v, faces=small_f))  # within budget: at once
        assert came_back.wait(WORKER_START_S), "the big mesh's decimation never finished"
        sent = [item for _, item in transport.items]
        assert [item.metadata["SourceTriangles"] for item in sent] == [str(len(small_f))]
    finally:
        node.teardown()
