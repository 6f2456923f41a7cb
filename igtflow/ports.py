"""A free TCP port, for whatever must listen on one picked at run time (node endpoints, benches,
tests).

The operating system picks the port for a socket bound to port 0; the socket is closed at once, so
another process may take the port before the caller binds it. Fine on one host for endpoints the
caller binds right away; a caller that must never lose that race binds port 0 itself instead.
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
