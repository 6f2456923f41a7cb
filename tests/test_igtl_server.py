"""OpenIGTLink over real sockets: interoperability with pyigtl, v1/v2, bad peers, slow peers.

pyigtl is an implementation that is not ours; where it cannot read a type (it has no STATUS and
its POLYDATA reader is broken in 0.3.4) our own CRC-checking reader stands in.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pyigtl
import pytest

from igtflow.ports import free_port
from igtflow.render.igtl.codec import encode
from igtflow.render.igtl.connector import Connector
from igtflow.render.igtl.message_mapping import image_from, points_from, transform_from
from igtflow.render.igtl.protocol import Packet, pack_bytes
from igtflow.render.igtl.server import IgtlServer, PortInUse
from igtflow.render.igtl.text import StringContent
from igtflow.render.nodes.igtl_server import IgtlServerNode
from igtflow.stream.messages import Image, Mesh, Points, Status, Transform
from igtflow.stream.testing import NodeHarness
from tests.helpers.graph_runs import wait_until
from tests.helpers.igtl_peers import RawClient

LOG = logging.getLogger("test.igtl")


@pytest.fixture
def server_node() -> Iterator[IgtlServerNode]:
    """The igtl-server node's logic in this process, listening on a free port."""
    params = {"port": free_port(), "stall_s": 1.0, "queue_depth": 64}
    with NodeHarness(IgtlServerNode, params, node_id="slicer") as harness:
        yield harness.node  # type: ignore[misc]


def server_of(node: IgtlServerNode) -> IgtlServer:
    return node.transport  # type: ignore[return-value]


def ijk_to_ras() -> np.ndarray:
    matrix = np.array(
        [[0, -0.3, 0, 12.0], [0.3, 0, 0, -5.0], [0, 0, 1.0, 40.0], [0, 0, 0, 1]], dtype=float
    )
    return matrix


# -- our server, pyigtl client -------------------------------------------------------------


def test_pyigtl_client_reads_images_transforms_points_and_strings_from_our_server(
    server_node: IgtlServerNode,
) -> None:
    client = pyigtl.OpenIGTLinkClient(host="127.0.0.1", port=server_of(server_node).port)
    try:
        wait_until(lambda: server_of(server_node).peers, 5, "pyigtl to connect")
        pixels = (np.arange(48 * 64) % 251).astype(np.uint8).reshape(48, 64)
        stamp = 1_700_000_123_250_000_000
        server_node.on_message("Image", Image(data=pixels, ijk_to_ras=ijk_to_ras(), stamp_ns=stamp))
        pose = np.array([[0, -1, 0, 10], [1, 0, 0, -20.5], [0, 0, 1, 30.25], [0, 0, 0, 1]], float)
        server_node.on_message("ProbeToTracker", Transform(matrix=pose, stamp_ns=stamp))
        server_node.on_message("Targets", Points(points=[[1.5, -2.5, 3.0]], labels=["Lesion"]))
        server_node.on_message("Pipeline", Status(level="warn", code="stale", text="old"))

        image = client.wait_for_message("Image", timeout=5)
        assert image is not None, "pyigtl received no IMAGE"
        np.testing.assert_array_equal(image.image[0], pixels)
        # pyigtl reads the centre-origin matrix back to a first-voxel origin, as we send it.
        np.testing.assert_allclose(image.ijk_to_world_matrix, ijk_to_ras(), atol=1e-5)
        assert image.world_coordinate_system == "ras"
        assert abs(image.timestamp - stamp / 1e9) < 1e-6

        transform = client.wait_for_message("ProbeToTracker", timeout=5)
        np.testing.assert_allclose(transform.matrix, pose)
        points = client.wait_for_message("Targets", timeout=5)
        assert points.names == ["Lesion"]
        np.testing.assert_allclose(points.positions[0], [1.5, -2.5, 3.0])
        text = client.wait_for_message("Pipeline", timeout=5)
        assert text.message_type == "STRING" and text.string == "warn stale: old"
    finally:
        client.stop()


def test_every_message_type_arrives_with_a_crc_our_reader_checks(
    server_node: IgtlServerNode,
) -> None:
    client = RawClient(server_of(server_node).port)
    try:
        wait_until(lambda: server_of(server_node).peers, 5, "the client to connect")
        vertices = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0]], np.float32)
        server_node.on_message(
            "Model", Mesh(vertices=vertices, faces=[[0, 1, 2]], scalars=[1, 2, 3])
        )
        server_node.on_message("Pipeline", Status(level="error", code="lost", text="no probe"))
        got = sorted(client.read(3), key=lambda r: r.type)  # ordered kinds go before frames
        assert [(r.type, r.device) for r in got] == [
            ("POLYDATA", "Model"),
            ("STATUS", "Pipeline"),
            ("STRING", "Pipeline"),
        ]
        assert got[0].content.attributes[0].data[:, 0].tolist() == [1, 2, 3]
        assert (got[1].content.code, got[1].content.error_name) == (2, "lost")
        # Same mesh again: not resent.
        server_node.on_message(
            "Model", Mesh(vertices=vertices, faces=[[0, 1, 2]], scalars=[1, 2, 3])
        )
        server_node.on_message("Pipeline", Status(level="ok"))
        assert client.read(1)[0].type == "STATUS"
    finally:
        client.close()


# -- v1 until the client speaks v2 ----------------------------------------------------------


def test_server_speaks_v1_until_the_pyigtl_client_sends_v2(server_node: IgtlServerNode) -> None:
    client = pyigtl.OpenIGTLinkClient(host="127.0.0.1", port=server_of(server_node).port)
    try:
        wait_until(lambda: server_of(server_node).peers, 5, "pyigtl to connect")
        server_node.on_message("ProbeToTracker", Transform(matrix=np.eye(4)))
        first = client.wait_for_message("ProbeToTracker", timeout=5)
        assert first.header_version == 1 and first.metadata == {}

        hello = pyigtl.StringMessage("hello", device_name="Client")
        hello.header_version = 2
        client.send_message(hello, wait=True)
        peer = server_of(server_node).peers[0]
        wait_until(lambda: peer.version == 2, 5, "the server to switch the client to v2")

        server_node.on_message("ProbeToTracker", Transform(matrix=np.eye(4), valid=False))
        second = client.wait_for_message("ProbeToTracker", timeout=5)
        assert second.header_version == 2
        assert second.metadata["TransformStatus"] == "INVALID"
    finally:
        client.stop()


# -- pyigtl server, our receiving side ------------------------------------------------------


def test_our_source_side_reads_every_type_pyigtl_sends_in_v1_and_v2(
    keep_signal_handlers: None,
) -> None:
    port = free_port()
    server = pyigtl.OpenIGTLinkServer(port=port, local_server=True)
    received: list[Packet] = []
    connector = Connector("127.0.0.1", port, LOG, header_version=2, on_packet=received.append)
    try:
        wait_until(server.is_connected, 5, "our connector to reach pyigtl")
        volume = (np.arange(32 * 40) % 200).astype(np.uint8).reshape(1, 32, 40)
        matrix = ijk_to_ras()
        for version in (1, 2):
            stamp = 1_700_000_000.25 + version
            messages = [
                pyigtl.TransformMessage(np.diag([1, 2, 3, 1.0]), device_name="ProbeToTracker"),
                pyigtl.ImageMessage(volume, matrix, "ras", device_name="Image"),
                pyigtl.PointMessage([[1, 2, 3]], names=["Lesion"], device_name="Targets"),
                pyigtl.StringMessage("hi", device_name="Text"),
            ]
            for message in messages:
                message.header_version = version
                message.timestamp = stamp
                if version == 2:
                    message.metadata = {"TransformStatus": "OK", "Modality": "US"}
                server.send_message(message, wait=True)
        wait_until(lambda: len(received) >= 8, 5, "8 messages from pyigtl")
        from igtflow.render.igtl.codec import decode

        decoded = [decode(p) for p in received]
        assert [d.version for d in decoded] == [1] * 4 + [2] * 4
        for d in decoded:
            if d.type == "TRANSFORM":
                transform = transform_from(d, d.content)
                assert (transform.from_frame, transform.to_frame) == ("Probe", "Tracker")
                np.testing.assert_allclose(transform.matrix, np.diag([1, 2, 3, 1.0]))
            if d.type == "IMAGE":
                image = image_from(d, d.content)
                np.testing.assert_array_equal(image.data, volume[0])
                np.testing.assert_allclose(image.ijk_to_ras, matrix, atol=1e-5)
                assert abs(image.stamp_ns - int((1_700_000_000.25 + d.version) * 1e9)) < 1000
            if d.type == "POINT":
                assert points_from(d, d.content).labels == ["Lesion"]
            if d.type == "STRING":
                assert d.content.text == "hi"
        assert decoded[-1].metadata.get("Modality") == "US"
    finally:
        connector.close()
        server.stop()


# -- bad and slow clients -------------------------------------------------------------------


def test_garbage_and_truncated_messages_close_only_that_client(
    server_node: IgtlServerNode, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_of(server_node)
    good = RawClient(server.port)
    garbage = RawClient(server.port)
    truncated = RawClient(server.port)
    bad_crc = RawClient(server.port)
    try:
        wait_until(lambda: len(server.peers) == 4, 30, "four clients")
        with caplog.at_level(logging.INFO, logger=server_node.log.name):
            garbage.send(b"\x00\x01NOT A MESSAGE AT ALL" + bytes(range(200)))
            message = pack_bytes("STRING", "Text", 0, StringContent("abc").pack())
            truncated.send(message[:-2])
            truncated.close()
            corrupt = bytearray(message)
            corrupt[-1] ^= 0xFF
            bad_crc.send(bytes(corrupt))
            wait_until(lambda: len(server.peers) == 1, 5, "the bad clients to be dropped")
        text = caplog.text
        assert "sent a bad message" in text
        assert "CRC mismatch" in text
        assert "disconnected in the middle of a message" in text
        server_node.on_message("ProbeToTracker", Transform(matrix=np.eye(4)))
        assert good.read(1)[0].device == "ProbeToTracker"
    finally:
        for client in (good, garbage, bad_crc):
            client.close()


def test_port_in_use_is_a_clear_error_naming_the_port() -> None:
    port = free_port()
    first = IgtlServer(port=port, log=LOG)
    try:
        with pytest.raises(PortInUse, match=rf"port {port} on 127\.0\.0\.1 is already in use"):
            IgtlServer(port=port, log=LOG)
    finally:
        first.close()


def test_a_stalled_client_slows_neither_the_graph_nor_other_clients(
    server_node: IgtlServerNode, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_of(server_node)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", server.port))  # and never reads
    reader = RawClient(server.port)
    wait_until(lambda: len(server.peers) == 2, 5, "both clients")
    counts = {"images": 0}
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                counts["images"] += len(reader.read(1, 0.5))
            except (TimeoutError, OSError):
                pass

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    frame = np.zeros((512, 512), np.uint8)
    call_ms = []
    try:
        with caplog.at_level(logging.WARNING, logger=LOG.name):
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                start = time.perf_counter()
                server_node.on_message("Image", Image(data=frame))
                call_ms.append((time.perf_counter() - start) * 1e3)
                time.sleep(0.01)
            wait_until(lambda: len(server.peers) == 1, 3, "the stalled client to be dropped")
        assert "stalled" in caplog.text
        # Publishing never waits for a client: 10x margin over a 2 MiB-frame copy on a busy box.
        assert np.percentile(call_ms, 99) < 50, f"publish p99 {np.percentile(call_ms, 99):.1f} ms"
        assert counts["images"] >= len(call_ms) // 4, (counts, len(call_ms))
    finally:
        stop.set()
        thread.join(2)
        reader.close()
        stalled.close()


def test_a_client_too_far_behind_on_transforms_is_disconnected(
    server_node: IgtlServerNode, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_of(server_node)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", server.port))
    wait_until(lambda: server.peers, 5, "the client")
    big = np.eye(4)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        for _ in range(20_000):  # 20k × 106 bytes: far more than the socket buffers hold
            server_node.on_message("ProbeToTracker", Transform(matrix=big))
            if not server.peers:
                break
        wait_until(lambda: not server.peers, 5, "the lagging client to be dropped")
    assert "messages behind" in caplog.text
    stalled.close()


def test_connector_reconnects_with_back_off_when_the_peer_appears() -> None:
    port = free_port()
    connector = Connector("127.0.0.1", port, LOG)
    try:
        time.sleep(0.5)  # several refused attempts
        assert not connector.connected
        server = IgtlServer(port=port, log=LOG)
        try:
            wait_until(lambda: connector.connected, 8, "the connector to reach the new server")
            connector.publish(
                __import__("igtflow.render.igtl.outbox", fromlist=["Outgoing"]).Outgoing(
                    "Text", StringContent("hi"), time.time_ns()
                )
            )
            wait_until(lambda: server.peers and server.peers[0].received == 1, 5, "the message")
        finally:
            server.close()
        wait_until(lambda: not connector.connected, 5, "the connector to notice the loss")
        server = IgtlServer(port=port, log=LOG)
        try:
            wait_until(lambda: connector.connected, 8, "the connector to reconnect")
            assert connector.connects == 2
        finally:
            server.close()
    finally:
        connector.close()


def test_encoding_a_message_shares_the_pixel_buffer() -> None:
    """Large frames are never joined into one bytes object on the way to the socket."""
    pixels = np.zeros((1, 512, 512, 1), np.uint8)
    from igtflow.render.igtl.image import ImageContent

    buffers = encode(ImageContent(pixels, np.eye(4)), "Image", 0)
    assert any(
        isinstance(b, memoryview) and b.obj is not None and b.nbytes == pixels.nbytes
        for b in buffers
    )


def test_a_client_that_connects_late_gets_the_current_mesh_and_frame(
    server_node: IgtlServerNode,
) -> None:
    vertices = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0]], np.float32)
    server_node.on_message("Model", Mesh(vertices=vertices, faces=[[0, 1, 2]]))
    server_node.on_message("Image", Image(data=np.full((4, 6), 7, np.uint8)))
    server_node.on_message("ProbeToTracker", Transform(matrix=np.eye(4)))  # gone: not a frame
    client = RawClient(server_of(server_node).port)
    try:
        got = sorted((r.type, r.device) for r in client.read(2))
        assert got == [("IMAGE", "Image"), ("POLYDATA", "Model")]
    finally:
        client.close()
