"""The ``igtl-source`` node: reads a PlusServer (or any OpenIGTLink server) into the graph."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Annotated, Literal

from pydantic import Field

from igtflow.render.igtl.codec import Query, Received, decode
from igtflow.render.igtl.connector import Connector
from igtflow.render.igtl.image import ImageContent
from igtflow.render.igtl.limits import MIB, Limits
from igtflow.render.igtl.message_mapping import image_from, points_from, status_from, transform_from
from igtflow.render.igtl.outbox import Outgoing
from igtflow.render.igtl.point import PointContent
from igtflow.render.igtl.protocol import IgtlError, Packet
from igtflow.render.igtl.text import StatusContent
from igtflow.render.igtl.transform import TransformContent
from igtflow.render.nodes.igtl_client import parse_address
from igtflow.stream.messages import Image, Message, Points, Status, Transform
from igtflow.stream.node import Source

MAX_PENDING = 10_000
# Only these become graph messages; anything else is dropped undecoded, so a peer cannot make
# this node spend time on content it never uses (a POLYDATA's cell walk is a Python loop).
FORWARDED = frozenset({"IMAGE", "TRANSFORM", "POINT", "STATUS"})
MAX_REFUSED = 256  # (type, device) pairs remembered for "said once"; a peer inventing names stops


class IgtlSource(Source):
    """Receives IMAGE, TRANSFORM, POINT and STATUS from an OpenIGTLink server such as PlusServer."""

    outputs = {"image": Image, "transforms": Transform, "points": Points, "remote_status": Status}
    rate_hz = 500.0

    def setup(
        self,
        address: str = "127.0.0.1:18944",
        header_version: Literal[1, 2] = 2,
        max_body_mb: Annotated[int, Field(ge=1, le=4096)] = 256,
    ) -> None:
        """
        address: host:port of the server (PlusServer's default is 127.0.0.1:18944)
        header_version: 2 greets the server in v2 so it answers with metadata (PlusServer's rule)
        max_body_mb: a larger message (or an image unlike its own header) closes the connection
        """
        host, port = parse_address(address)
        self.lock = threading.Lock()
        self.images: dict[str, Image] = {}
        self.ordered: deque[tuple[str, Message]] = deque()
        self.skipped_images = 0
        self.overflow = 0
        self.ignored = 0
        self.refused: set[tuple[str, str]] = set()
        self.connector = Connector(
            host,
            port,
            self.log,
            header_version=header_version,
            on_packet=self.on_packet,
            hello=self.greeting if header_version == 2 else None,
            limits=Limits(message=max_body_mb * MIB),
        )

    @staticmethod
    def greeting() -> Outgoing:
        """A header v2 query sent on connect: PlusServer answers a v2 client in v2."""
        return Outgoing("igtflow", Query("GET_STATUS"), time.time_ns())

    def on_packet(self, packet: Packet) -> None:
        """Reader thread: decode, convert, park for the next tick (frames latest-only)."""
        if packet.type not in FORWARDED:
            self.ignored += 1
            return
        try:
            self._park(decode(packet))
        except IgtlError as exc:
            key = (packet.type, packet.device)
            if key in self.refused or len(self.refused) > MAX_REFUSED:
                return
            self.refused.add(key)
            if len(self.refused) > MAX_REFUSED:
                self.log.warning("over %d devices refused; no more are named", MAX_REFUSED)
                return
            self.log.warning("not reading %s %r (said once): %s", packet.type, packet.device, exc)

    def _park(self, received: Received) -> None:
        content = received.content
        if isinstance(content, ImageContent):
            image = image_from(received, content)
            with self.lock:
                if self.images.pop(received.device, None) is not None:
                    self.skipped_images += 1
                self.images[received.device] = image
            return
        if isinstance(content, TransformContent):
            item: tuple[str, Message] = ("transforms", transform_from(received, content))
        elif isinstance(content, PointContent):
            item = ("points", points_from(received, content))
        elif isinstance(content, StatusContent):
            item = ("remote_status", status_from(received, content))
        else:
            return
        with self.lock:
            if len(self.ordered) >= MAX_PENDING:
                self.overflow += 1
                return
            self.ordered.append(item)

    def tick(self) -> None:
        with self.lock:
            ordered, self.ordered = self.ordered, deque()
            images, self.images = self.images, {}
        for output, message in ordered:
            self.emit(output, message)
        for image in images.values():
            self.emit("image", image)

    def teardown(self) -> None:
        self.connector.close()
