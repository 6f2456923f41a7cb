"""The ``foxglove-bridge`` node: a running graph, live, in the Foxglove app.

Every message wired in is rewritten in Foxglove's well-known protobuf schemas by the same mapping
``igtflow convert --to foxglove`` uses (``render/foxglove_mapping.py``) and logged to a channel
per topic (``probe/image`` → ``/probe/image``) of foxglove-sdk's WebSocket server, which the app
connects to (*Open connection* → Foxglove WebSocket → ``ws://127.0.0.1:8765``). The SDK's server
keeps a bounded queue per client and drops for a slow one, so the graph never waits on the app.

Foxglove's WebSocket protocol has no authentication: the bridge binds to loopback unless the
graph says ``allow_remote: true`` (reach it from another machine through an SSH tunnel instead).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message as Proto

from igtflow.render.foxglove_mapping import to_foxglove
from igtflow.render.web_server import is_loopback
from igtflow.stream.messages import Message
from igtflow.stream.node import WILDCARD, ImageSpec, Node, PermanentError, PortOrAny

DEFAULT_PORT = 8765  # the Foxglove app's default for a Foxglove WebSocket connection


class FoxgloveBridge(Node):
    """Streams every input live to the Foxglove app through foxglove-sdk's WebSocket server."""

    inputs = {WILDCARD: Message}
    outputs = {}
    # The app is for engineers watching a run: it must never take CPU from the live path.
    priority = "background"

    def setup(
        self,
        host: str = "127.0.0.1",
        port: PortOrAny = DEFAULT_PORT,
        name: str = "igtflow",
        allow_remote: bool = False,
    ) -> None:
        """
        host: address to listen on; anything but loopback also needs allow_remote: true
        port: TCP port the Foxglove app connects to (0 = let the system pick one)
        name: server name the app shows
        allow_remote: accept connections from other machines (the protocol has no password)
        """
        problem = host_problem(host, allow_remote)
        if problem:
            raise PermanentError(problem)
        import foxglove

        self._foxglove = foxglove
        try:
            self.server = foxglove.start_server(name=name, host=host, port=port)
        except Exception as exc:  # the SDK raises its own error type for a failed bind
            raise PermanentError(
                f"cannot start the Foxglove server on {host}:{port} ({exc}); "
                "give this node another port"
            ) from None
        self.channels: dict[str, Any] = {}
        self.skipped: set[str] = set()
        self.log.info("Foxglove WebSocket server on ws://%s:%d", host, self.server.port)

    @classmethod
    def check_upstream(
        cls, params: dict[str, Any], upstream: dict[str, ImageSpec | None]
    ) -> list[tuple[str, str]]:
        problem = host_problem(str(params.get("host", "")), bool(params.get("allow_remote")))
        return [("host", problem)] if problem else []

    def on_message(self, input_name: str, message: Message) -> None:
        converted = to_foxglove(message)
        topic = "/" + (message.topic or input_name).lstrip("/")
        if converted is None:
            if topic not in self.skipped:
                self.skipped.add(topic)
                self.log.info("%s: %s has no Foxglove form; not streamed", topic, message.KIND)
            return
        channel = self.channels.get(topic) or self._channel(topic, converted)
        channel.log(converted.SerializeToString(), log_time=message.stamp_ns)

    def _channel(self, topic: str, example: Proto) -> Any:
        """The channel of ``topic``, advertised with the protobuf schema of its first message."""
        from mcap_protobuf.schema import build_file_descriptor_set

        schema = self._foxglove.Schema(
            name=example.DESCRIPTOR.full_name,
            encoding="protobuf",
            data=build_file_descriptor_set(type(example)).SerializeToString(),
        )
        channel = self._foxglove.Channel(topic, schema=schema, message_encoding="protobuf")
        self.channels[topic] = channel
        return channel

    def teardown(self) -> None:
        self.server.stop()


def host_problem(host: str, allow_remote: bool) -> str:
    """Why this bind is refused ('' when it is fine)."""
    if is_loopback(host) or allow_remote:
        return ""
    return (
        f"host {host!r} lets any machine on the network read the graph, and Foxglove's "
        "WebSocket protocol has no password: keep host: 127.0.0.1 and reach it through an SSH "
        "tunnel (ssh -L 8765:127.0.0.1:8765 ...), or add 'allow_remote: true' to params"
    )
