"""The ``igtl-client`` node: pushes the graph to a Slicer whose OpenIGTLinkIF listens."""

from __future__ import annotations

from typing import Literal

from igtflow.render.igtl.connector import Connector
from igtflow.render.nodes.igtl_output import IgtlOutput
from igtflow.stream.node import Count, Positive


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` → (host, port); ValueError says what a valid address looks like."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {address!r} is not host:port (e.g. 127.0.0.1:18944)")
    return host, int(port)


class IgtlClientNode(IgtlOutput):
    """Sends images, transforms, meshes, points and status to a listening OpenIGTLink server."""

    def setup(
        self,
        address: str = "127.0.0.1:18944",
        header_version: Literal[0, 1, 2] = 0,
        mesh_triangles: Count = 20000,
        queue_depth: Count = 256,
        stall_s: Positive = 5.0,
    ) -> None:
        """
        address: host:port of the listening peer (Slicer: OpenIGTLinkIF connector in server mode)
        header_version: 0 = v1 until the peer sends v2 (PlusServer's rule); 1 or 2 = always that
        mesh_triangles: triangle budget of a mesh (Open3D quadric decimation above it)
        queue_depth: transforms/points/status the peer may lag behind before it is dropped
        stall_s: a peer whose socket takes nothing for this long is dropped (and reconnected)
        """
        host, port = parse_address(address)
        self.start(Connector(host, port, self.log, queue_depth, header_version, stall_s))
