"""The ``igtl-server`` node: Slicer, PLUS clients and AR headsets connect and receive the graph."""

from __future__ import annotations

import errno
from typing import Any, Literal

from igtflow.render.igtl.allow import AddressRule, parse_entry
from igtflow.render.igtl.limits import MIB, Limits
from igtflow.render.igtl.server import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_MESSAGE,
    DEFAULT_PORT,
    IgtlServer,
)
from igtflow.render.nodes.igtl_output import IgtlOutput
from igtflow.stream.node import Count, PermanentError, PortOrAny, Positive


class IgtlServerNode(IgtlOutput):
    """Serves images, transforms, meshes, points and status to any number of OpenIGTLink clients."""

    def setup(
        self,
        host: str = "127.0.0.1",
        port: PortOrAny = DEFAULT_PORT,
        header_version: Literal[0, 1, 2] = 0,
        mesh_triangles: Count = 20000,
        queue_depth: Count = 256,
        stall_s: Positive = 5.0,
        max_message_mb: Count = DEFAULT_MAX_MESSAGE // MIB,
        max_in_flight_mb: Count = DEFAULT_MAX_IN_FLIGHT // MIB,
        allow: tuple[str, ...] = (),
    ) -> None:
        """
        host: address to listen on (0.0.0.0 for every interface)
        port: TCP port (18944 is where Slicer's OpenIGTLinkIF looks for a PlusServer)
        header_version: 0 = v1 until a client sends v2 (PlusServer's rule); 1 or 2 = always that
        mesh_triangles: triangle budget of a mesh (Open3D quadric decimation above it)
        queue_depth: transforms/points/status a client may lag behind before it is dropped
        stall_s: a client whose socket takes nothing for this long is dropped
        max_message_mb: largest message a client may send; a client declaring more is cut
        max_in_flight_mb: unfinished messages of all clients together; a client passing it is cut
        allow: client addresses or networks let in, e.g. [10.1.2.3, 10.1.2.0/24]; others are
            closed at once, logged and counted (empty: every client that reaches the port)
        """
        try:
            rule = AddressRule(allow)
        except ValueError as exc:
            raise PermanentError(f"allow: {exc}") from None
        try:
            server = IgtlServer(
                host,
                port,
                self.log,
                queue_depth,
                header_version,
                stall_s,
                Limits(message=max_message_mb * MIB),
                max_in_flight_mb * MIB,
                rule,
            )
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
                raise
            # The server's own text already names the port and the fix.
            raise PermanentError(exc.strerror or f"cannot listen on {host}:{port}: {exc}") from None
        only = f" (clients from {', '.join(allow)} only)" if allow else ""
        self.log.info("OpenIGTLink server listening on %s:%d%s", server.host, server.port, only)
        self.start(server)

    @classmethod
    def check_wiring(cls, params: dict[str, Any], input_names: list[str]) -> list[str]:
        problems = super().check_wiring(params, input_names)
        for entry in params.get("allow") or ():
            try:
                parse_entry(str(entry))
            except ValueError as exc:
                problems.append(f"parameter 'allow': {exc}")
        return problems
