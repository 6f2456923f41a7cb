"""The ``foxglove-bridge`` node in a real graph, read by a Foxglove WebSocket client (the protocol
the Foxglove app speaks, spoken here with aiohttp)."""

from __future__ import annotations

import asyncio
import json
import struct
import time
from typing import Any

import pytest
from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
from foxglove_schemas_protobuf.RawImage_pb2 import RawImage

from igtflow.launch.graph_issues import GraphError
from igtflow.launch.graph_reader import parse_graph
from igtflow.ports import free_port

SUBPROTOCOLS = ("foxglove.sdk.v1", "foxglove.websocket.v1")
MESSAGE_DATA = 0x01  # server → client binary opcode: one message of a subscription


def test_bridge_streams_images_and_poses_live_to_a_foxglove_client(start_graph, tmp_path):
    port = free_port()
    start_graph(
        f"""
name: foxglove-live
nodes:
  - id: probe
    uses: synthetic-image
    params: {{rate_hz: 20, width: 48, height: 32}}
  - id: scene
    uses: tests.nodes.igtl:Scene
    params: {{rate_hz: 20}}
  - id: fox
    uses: foxglove-bridge
    inputs: {{image: probe/image, pose: scene/pose}}
    params: {{port: {port}}}
"""
    )
    got = asyncio.run(_read(port, {"/probe/image", "/scene/pose"}))
    image = RawImage.FromString(got["/probe/image"]["payload"])
    assert (image.width, image.height, image.encoding) == (48, 32, "mono8")
    assert len(image.data) == 48 * 32
    # Stamped with the capture time, a moment ago.
    stamp_ns = image.timestamp.seconds * 10**9 + image.timestamp.nanos
    assert abs(time.time_ns() - stamp_ns) < 10e9
    assert got["/probe/image"]["log_time_ns"] == stamp_ns
    poses = FrameTransforms.FromString(got["/scene/pose"]["payload"])
    [pose] = poses.transforms
    assert (pose.parent_frame_id, pose.child_frame_id) == ("Tracker", "Probe")
    assert got["/probe/image"]["schemaName"] == "foxglove.RawImage"


async def _read(port: int, topics: set[str], timeout_s: float = 30) -> dict[str, dict[str, Any]]:
    """Connect as the Foxglove app does, subscribe to ``topics``, return one message of each."""
    import aiohttp

    got: dict[str, dict[str, Any]] = {}
    channels: dict[int, dict[str, Any]] = {}
    subscribed: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        ws = await _connect(session, port, deadline)
        async with ws:
            while len(got) < len(topics):
                left = deadline - time.monotonic()
                try:
                    message = await asyncio.wait_for(ws.receive(), max(left, 0.001))
                except asyncio.TimeoutError:  # not yet the builtin on Python 3.10
                    pytest.fail(
                        f"after {timeout_s} s only {sorted(got)} of {sorted(topics)}; "
                        f"advertised {sorted(c['topic'] for c in channels.values())}, "
                        f"subscribed {sorted(c['topic'] for c in subscribed.values())}"
                    )
                if message.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(message.data)
                    if data.get("op") == "advertise":
                        for channel in data["channels"]:
                            channels[channel["id"]] = channel
                        wanted = [
                            c
                            for c in channels.values()
                            if c["topic"] in topics and c["id"] not in subscribed
                        ]
                        for channel in wanted:
                            subscribed[channel["id"]] = channel
                        if wanted:
                            subs = [{"id": c["id"], "channelId": c["id"]} for c in wanted]
                            await ws.send_str(
                                json.dumps({"op": "subscribe", "subscriptions": subs})
                            )
                elif message.type == aiohttp.WSMsgType.BINARY:
                    if message.data[0] != MESSAGE_DATA:
                        continue
                    sub_id, log_time = struct.unpack_from("<IQ", message.data, 1)
                    channel = subscribed[sub_id]
                    got[channel["topic"]] = {
                        **channel,
                        "log_time_ns": log_time,
                        "payload": bytes(message.data[13:]),
                    }
                else:
                    pytest.fail(f"the bridge closed the connection: {message}")
    return got


async def _connect(session: Any, port: int, deadline: float) -> Any:
    """The server starts with the node; retry until it listens."""
    import aiohttp

    while True:
        try:
            return await session.ws_connect(f"ws://127.0.0.1:{port}/", protocols=SUBPROTOCOLS)
        except aiohttp.ClientConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def test_bridge_beyond_loopback_is_refused_at_its_host_line_unless_allowed():
    text = """name: open
nodes:
  - id: src
    uses: synthetic-image
  - id: fox
    uses: foxglove-bridge
    inputs: {image: src/image}
    params:
      host: 0.0.0.0
"""
    with pytest.raises(GraphError) as caught:
        parse_graph(text, "graph.yaml")
    [issue] = caught.value.issues
    assert (issue.path, issue.line) == ("graph.yaml", 9)
    assert "no password" in issue.message and "allow_remote" in issue.message
    parse_graph(text + "      allow_remote: true\n", "graph.yaml")
