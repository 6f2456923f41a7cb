"""A node that fails on purpose, to exercise restarts and failing for good."""

from __future__ import annotations

import time
from typing import Literal

from igtflow.stream.messages import Message
from igtflow.stream.node import Node


class Crashing(Node):
    """Raises in ``setup`` or on its first message, every time it is started."""

    inputs = {"in": Message}

    def setup(self, fail_in: Literal["setup", "handler"] = "handler") -> None:
        """fail_in: where to raise: 'setup' or 'handler' (on the first message)"""
        if fail_in == "setup":
            raise RuntimeError("crashing on purpose in setup")

    def on_in(self, message: Message) -> None:
        raise RuntimeError(f"crashing on purpose on seq {message.seq}")


class SlowSetup(Node):
    """Takes ``setup_s`` to set up (a model that loads slowly), then passes messages on."""

    inputs = {"in": Message}
    outputs = {"out": Message}

    def setup(self, setup_s: float = 1.0) -> None:
        """setup_s: seconds setup takes"""
        time.sleep(setup_s)

    def on_in(self, message: Message) -> None:
        self.emit("out", message)
