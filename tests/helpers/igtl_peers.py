"""Small OpenIGTLink peers for tests: a raw-socket client that checks every CRC with our parser."""

from __future__ import annotations

import socket
import time

from igtflow.render.igtl.codec import Received, decode
from igtflow.render.igtl.reader import Parser


class RawClient:
    """Connects, reads whole messages (CRC checked), can send raw bytes."""

    def __init__(self, port: int, timeout_s: float = 5.0, source: str | None = None) -> None:
        """``source``: the local address to connect from (any 127.x.y.z stands for another
        machine on loopback)."""
        deadline = time.monotonic() + timeout_s
        where = (source, 0) if source else None
        while True:
            try:
                self.sock = socket.create_connection(
                    ("127.0.0.1", port), timeout=timeout_s, source_address=where
                )
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.parser = Parser()

    def read(self, count: int = 1, timeout_s: float = 5.0) -> list[Received]:
        got: list[Received] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            n = self.sock.recv_into(self.parser.buffer())
            if n == 0:
                raise ConnectionError("server closed the connection")
            packet = self.parser.advance(n)
            if packet is not None:
                got.append(decode(packet))
        return got

    def read_until(self, predicate, timeout_s: float = 5.0) -> list[Received]:
        """Messages until one satisfies ``predicate`` (that one included)."""
        got: list[Received] = []
        deadline = time.monotonic() + timeout_s
        while not got or not predicate(got[-1]):
            got += self.read(1, max(0.01, deadline - time.monotonic()))
        return got

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


def serve_frames(rate_hz: float = 30.0, seconds: float = 30.0) -> None:
    """Run the igtl-server node's logic in this process, publishing a 256×256 frame at
    ``rate_hz``; prints the port, then serves until stdin closes or ``seconds`` pass.
    (``python -c "from tests.helpers.igtl_peers import serve_frames; serve_frames()"``)
    """
    import logging
    import sys
    import threading

    import numpy as np

    from igtflow.render.nodes.igtl_server import IgtlServerNode
    from igtflow.stream.messages import Image
    from igtflow.stream.testing import NodeHarness

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    harness = NodeHarness(IgtlServerNode, {"port": 0}, node_id="slicer")
    node = harness.node
    print(node.transport.port, flush=True)  # type: ignore[attr-defined]
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    frame = np.zeros((256, 256), np.uint8)
    period = 1.0 / rate_hz
    next_at = time.monotonic()
    end = next_at + seconds
    while not done.is_set() and time.monotonic() < end:
        harness.feed("Image", Image(data=frame))
        next_at += period
        done.wait(max(0.0, next_at - time.monotonic()))
    harness.teardown()
