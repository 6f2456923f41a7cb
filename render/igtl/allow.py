"""Which client addresses an OpenIGTLink server lets in: an allow-list of addresses and networks.

OpenIGTLink has no authentication of its own, so on a hospital network the server's only gate is
the address a client connects from. The rule is Python's :mod:`ipaddress`: each entry is an
address (``10.1.2.3``) or a network (``10.1.2.0/24``); an empty list lets everyone in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRule:
    """An allow-list of client addresses; :meth:`allows` answers per connection."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.networks: tuple[Network, ...] = tuple(parse_entry(e) for e in entries)

    def allows(self, address: str) -> bool:
        """Whether a client connecting from ``address`` may stay (always, with no list)."""
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d
        return any(ip.version == net.version and ip in net for net in self.networks)


def parse_entry(entry: str) -> Network:
    """One allow-list entry as a network; a ValueError says what is wrong and what is meant."""
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"{entry!r} is not an address or network; write e.g. '10.1.2.3' or '10.1.2.0/24'"
        ) from None
