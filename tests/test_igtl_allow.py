"""The OpenIGTLink server's address allow-list, with real clients on real sockets."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pyigtl
import pytest

from igtflow.launch.graph_issues import GraphError
from igtflow.launch.graph_reader import parse_graph
from igtflow.ports import free_port
from igtflow.render.igtl.allow import AddressRule
from igtflow.render.igtl.server import IgtlServer
from igtflow.render.nodes.igtl_server import IgtlServerNode
from igtflow.stream.messages import Transform
from igtflow.stream.testing import NodeHarness
from tests.helpers.graph_runs import wait_until
from tests.helpers.igtl_peers import RawClient


@pytest.fixture
def allowing_node() -> Iterator[IgtlServerNode]:
    """An igtl-server that lets in clients from 127.0.0.1 only."""
    params = {"port": free_port(), "stall_s": 1.0, "allow": ("127.0.0.1",)}
    with NodeHarness(IgtlServerNode, params, node_id="slicer") as harness:
        yield harness.node  # type: ignore[misc]


def test_a_client_from_an_unlisted_address_is_refused_logged_and_counted(
    allowing_node: IgtlServerNode, caplog: pytest.LogCaptureFixture
) -> None:
    server: IgtlServer = allowing_node.transport  # type: ignore[assignment]
    client = pyigtl.OpenIGTLinkClient("127.0.0.1", server.port, start_now=True)
    try:
        wait_until(lambda: len(server.peers) == 1, 30, "the listed client")
        with caplog.at_level(logging.WARNING, logger=allowing_node.log.name):
            stranger = RawClient(server.port, source="127.0.0.2")
            try:
                with pytest.raises(ConnectionError):
                    stranger.read(1, timeout_s=5)
            finally:
                stranger.close()
        assert server.refused == 1 and len(server.peers) == 1
        assert "127.0.0.2" in caplog.text and "not on the server's allow list" in caplog.text

        allowing_node.on_message("ProbeToTracker", Transform(matrix=np.eye(4)))
        got = client.wait_for_message("ProbeToTracker", timeout=10)
        assert got is not None, "the listed client no longer receives"
    finally:
        client.stop()


def test_networks_ipv4_mapped_addresses_and_an_empty_list() -> None:
    rule = AddressRule(["10.1.2.0/24", "::1"])
    assert rule.allows("10.1.2.77") and rule.allows("::ffff:10.1.2.5") and rule.allows("::1")
    assert not rule.allows("10.1.3.1") and not rule.allows("not an address")
    assert AddressRule().allows("192.0.2.1"), "no list: everyone who reaches the port"


def test_a_bad_allow_entry_is_a_validation_error_with_its_line() -> None:
    text = """name: g
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
  - id: slicer
    uses: igtl-server
    inputs: {image: src/image}
    params: {allow: [10.1.2.0/24, theatre-pc]}
"""
    with pytest.raises(GraphError) as caught:
        parse_graph(text, "g.yaml")
    (issue,) = caught.value.issues
    assert issue.line == 5 and "'theatre-pc' is not an address or network" in issue.message
