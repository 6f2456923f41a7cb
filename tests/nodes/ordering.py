"""Nodes that make arrival order a matter of chance, and one that logs the order it handled."""

from __future__ import annotations

import json
import random
import time

from igtflow.stream.messages import Image
from igtflow.stream.node import Node


class Jittery(Node):
    """Forwards each frame after a random pause: which of two paths is faster is chance."""

    inputs = {"in": Image}
    outputs = {"out": Image}

    def setup(self, max_ms: float = 20.0) -> None:
        """
        max_ms: longest pause before forwarding, in milliseconds
        """
        self.rng = random.Random()  # seeded from the OS: differs on every run

    def on_in(self, image: Image) -> None:
        time.sleep(self.rng.uniform(0.0, self.max_ms) / 1e3)
        self.emit("out", image)


class OrderLog(Node):
    """Appends ``[input, n]`` per handled frame to a JSON-lines file."""

    inputs = {"first": Image, "second": Image}

    def setup(self, out: str) -> None:
        """
        out: JSON-lines file to append to
        """
        self.file = open(out, "a", buffering=1)  # noqa: SIM115 - open for the node's life

    def on_first(self, image: Image) -> None:
        self.file.write(json.dumps(["first", image.meta["n"]]) + "\n")

    def on_second(self, image: Image) -> None:
        self.file.write(json.dumps(["second", image.meta["n"]]) + "\n")
