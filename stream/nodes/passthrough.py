"""Forwards every message unchanged: the cheapest possible hop, used to measure transport."""

from __future__ import annotations

from igtflow.stream.messages import Message
from igtflow.stream.node import Node


class PassThrough(Node):
    """Re-publishes each input message on ``out`` (large frames are forwarded without a copy)."""

    inputs = {"in": Message}
    outputs = {"out": Message}

    def on_in(self, message: Message) -> None:
        self.emit("out", message)
