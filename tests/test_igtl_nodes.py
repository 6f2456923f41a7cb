"""OpenIGTLink nodes in real graphs: node processes, real sockets, a client outside the graph."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pyigtl
import pytest

from igtflow.launch.graph_issues import GraphError
from igtflow.launch.graph_reader import parse_graph
from igtflow.ports import free_port
from igtflow.render.igtl.protocol import igtl_to_stamp, stamp_to_igtl
from tests.helpers.graph_runs import GraphRun, read_jsonl
from tests.helpers.igtl_peers import RawClient
from tests.nodes.igtl import pose_stamp


def test_graph_streams_every_kind_to_a_client_stamped_with_capture_time(start_graph, tmp_path):
    port = free_port()
    run = start_graph(
        f"""
name: igtl-out
nodes:
  - id: probe
    uses: synthetic-image
    params: {{rate_hz: 30, width: 64, height: 48}}
  - id: scene
    uses: tests.nodes.igtl:Scene
    params: {{rate_hz: 20}}
  - id: slicer
    uses: igtl-server
    inputs:
      Image: probe/image
      ProbeToTracker: scene/pose
      Targets: scene/targets
      Model: scene/mesh
      Pipeline: scene/state
    params: {{port: {port}}}
"""
    )
    client = RawClient(port)
    try:
        seen: dict[str, object] = {}
        run.wait(
            lambda: seen.update({r.type: r for r in client.read(1)}) or len(seen) == 6,
            15,
            "IMAGE, TRANSFORM, POINT, POLYDATA, STATUS and STRING at the client",
        )
        image = seen["IMAGE"]
        assert image.device == "Image" and image.content.pixels.shape == (1, 48, 64, 1)
        transform = seen["TRANSFORM"]
        n = round(float(transform.content.matrix[0, 3]))
        # The header carries the capture time the pose was stamped with, not the send time.
        assert abs(transform.stamp_ns - pose_stamp(n)) <= 1
        assert seen["POLYDATA"].content.polygons.tolist() == [3, 0, 1, 2, 3, 0, 2, 3]
        assert seen["POINT"].content.names == ["Lesion"]
    finally:
        client.close()


def test_igtl_server_on_a_taken_port_fails_naming_the_port(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    run = GraphRun(
        f"""
name: port-taken
nodes:
  - id: probe
    uses: synthetic-image
  - id: slicer
    uses: igtl-server
    inputs: {{Image: probe/image}}
    params: {{port: {port}}}
    restart: never
""",
        tmp_path,
    )
    try:
        run.supervisor.start()
        run.wait(lambda: run.nodes["slicer"].state == "failed", 30, "the server node to fail")
        log = (tmp_path / "logs" / "slicer.log").read_text()
        assert f"port {port} on 127.0.0.1 is already in use" in log
        assert "give this node another port" in log
    finally:
        run.stop()
        blocker.close()


def test_igtl_source_node_feeds_a_graph_from_a_pyigtl_server(
    start_graph, tmp_path: Path, keep_signal_handlers: None
) -> None:
    port = free_port()
    server = pyigtl.OpenIGTLinkServer(port=port, local_server=True)
    out = tmp_path / "received.jsonl"
    try:
        run = start_graph(
            f"""
name: igtl-in
nodes:
  - id: plus
    uses: igtl-source
    params: {{address: "127.0.0.1:{port}", rate_hz: 200}}
  - id: sink
    uses: tests.nodes.igtl:JsonSink
    inputs: {{"*": {{from: "plus/*", policy: queue, depth: 64}}}}
    params: {{out: "{out}"}}
"""
        )
        run.wait(server.is_connected, 10, "igtl-source to connect to the pyigtl server")
        frame = (np.arange(24 * 32) % 255).astype(np.uint8).reshape(1, 24, 32)
        matrix = np.array([[0, 0.5, 0, 3], [-0.5, 0, 0, 4], [0, 0, 1, 5], [0, 0, 0, 1.0]])
        stamp_s = 1_700_000_000.75
        pose = pyigtl.TransformMessage(np.diag([1, 1, 1, 1.0]), device_name="ProbeToTracker")
        image = pyigtl.ImageMessage(frame, matrix, "ras", device_name="Image")
        for message in (pose, image):
            message.timestamp = stamp_s
            server.send_message(message, wait=True)
        records = run.wait(
            lambda: (
                (r := read_jsonl(out)) and {x["kind"] for x in r} >= {"Image", "Transform"} and r
            ),
            10,
            "an Image and a Transform at the sink",
        )
        by_kind = {r["kind"]: r for r in records}
        transform = by_kind["Transform"]
        assert (transform["from"], transform["to"]) == ("Probe", "Tracker")
        assert transform["input"] == "plus/transforms"
        received = by_kind["Image"]
        assert received["shape"] == [24, 32] and received["sum"] == int(frame.sum())
        np.testing.assert_allclose(received["ijk_to_ras"], matrix, atol=1e-5)
        expected_ns = igtl_to_stamp(stamp_to_igtl(int(stamp_s * 1e9)))
        assert abs(received["stamp_ns"] - expected_ns) < 1000  # pyigtl's float seconds
    finally:
        server.stop()


def test_validate_rejects_device_names_over_20_characters_at_the_node_line() -> None:
    text = """\
name: long-names
nodes:
  - id: probe
    uses: synthetic-image
  - id: slicer
    uses: igtl-server
    inputs:
      UltrasoundImageFromProbe: probe/image
"""
    with pytest.raises(GraphError) as caught:
        parse_graph(text, "graph.yaml")
    [issue] = caught.value.issues
    assert (issue.path, issue.line) == ("graph.yaml", 5)
    assert "UltrasoundImageFromProbe" in issue.message and "20" in issue.message
