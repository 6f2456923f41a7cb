"""Stand-in node types and parse helpers for the graph-reader tests (``tests/test_graph_reader_*``).

The fake types are registered under short names by the autouse fixture :func:`fake_node_types`,
which each of those test files imports; :data:`VALID` is the one valid graph several files read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from textwrap import dedent
from typing import Literal

import pytest

from igtflow.launch import registry
from igtflow.launch.graph import Graph
from igtflow.launch.graph_issues import GraphError, GraphIssue
from igtflow.launch.graph_reader import parse_graph
from igtflow.stream.messages import Image, Status, Transform
from igtflow.stream.node import WILDCARD, Node, Source, Ticking


class FakeSegment(Node):
    """Stands in for a segmentation node: a required parameter and typed optional ones."""

    inputs = {"image": Image}
    outputs = {"labels": Image, "status": Status}

    def setup(
        self,
        model: str,
        threshold: float = 0.5,
        device: Literal["auto", "cpu", "cuda"] = "auto",
        size: tuple[int, int] = (256, 256),
    ) -> None:
        """model: name of the network"""


class FakeTracker(Source):
    """Stands in for a tracker: a source of probe poses."""

    outputs = {"pose": Transform}


class FakeFedSource(Source):
    """A type that is wrongly both: a Source (makes data on its own) with an input."""

    inputs = {"image": Image}
    outputs = {"pose": Transform}


class FakeRedrawer(Ticking):
    """Ticks beside its inputs (as the overlay does) without being a source."""

    inputs = {"image": Image}
    outputs = {"image": Image}


class FakeServer(Node):
    """Stands in for an OpenIGTLink server: binds ports, reads images and transforms."""

    inputs = {"image": Image, "transform": Transform}

    def setup(self, port: int = 18944, status_port: int = 0) -> None:
        """port: where clients connect"""


class FakeImageRecorder(Node):
    """A wildcard input of one kind: it subscribes to images only."""

    inputs = {WILDCARD: Image}


class FakeNamedSink(Node):
    """Checks its own wiring: input names must be short, and it needs at least one input."""

    inputs = {WILDCARD: Image}

    def setup(self, limit: int = 5) -> None:
        """limit: longest input name"""

    @classmethod
    def check_wiring(cls, params: dict, input_names: list[str]) -> list[str]:
        if not input_names:
            return ["needs at least one input"]
        return [
            f"input {n!r} is over {params['limit']}"
            for n in input_names
            if len(n) > params["limit"]
        ]


FAKE_NODES = {
    name: registry.NodeType(name, f"{__name__}:{cls}", "tests")
    for name, cls in {
        "fake-segment": "FakeSegment",
        "fake-tracker": "FakeTracker",
        "fake-fed-source": "FakeFedSource",
        "fake-redrawer": "FakeRedrawer",
        "fake-server": "FakeServer",
        "fake-image-recorder": "FakeImageRecorder",
        "fake-named-sink": "FakeNamedSink",
    }.items()
}


@pytest.fixture(autouse=True)
def fake_node_types(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Registers the stand-in node types beside the installed ones under their short names."""
    installed = registry.node_types()
    monkeypatch.setattr(registry, "node_types", lambda: {**installed, **FAKE_NODES})
    yield


def parse(text: str, overrides: Sequence[str] = ()) -> Graph:
    return parse_graph(dedent(text), "graph.yaml", overrides)


def issues_of(text: str, overrides: Sequence[str] = ()) -> list[GraphIssue]:
    with pytest.raises(GraphError) as caught:
        parse(text, overrides)
    return caught.value.issues


def only_issue(text: str, overrides: Sequence[str] = ()) -> GraphIssue:
    found = issues_of(text, overrides)
    assert len(found) == 1, "\n".join(str(issue) for issue in found)
    return found[0]


VALID = """\
    name: us-guidance
    nodes:
      - id: probe                                   # 3
        uses: synthetic-image
        params: {rate_hz: 30, width: 128}
      - id: tracker                                 # 6
        uses: fake-tracker
      - id: seg                                     # 8
        uses: fake-segment
        inputs: {image: probe/image}                # 10
        params: {model: us-seg, threshold: 1}
        threads: 2
      - id: slicer                                  # 13
        uses: fake-server
        inputs:
          image: {from: seg/labels, policy: queue}  # 16
          transform: {from: tracker/pose, depth: 1} # 17
        host: 10.0.0.5
        restart: never
        max_restarts: 0
      - id: rec                                     # 21
        uses: stats
        inputs: {"*": {from: "*", policy: queue, depth: 256}}  # 23
    insecure: true                                  # plain tcp to 10.0.0.5: a test network
    """
