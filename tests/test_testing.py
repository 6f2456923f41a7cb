"""igtflow.stream.testing: a node made as a node process makes it, driven without a graph."""

from __future__ import annotations

import numpy as np
import pytest

from igtflow.launch.graph_issues import GraphError
from igtflow.launch.graph_reader import parse_graph
from igtflow.stream.messages import Image, Message, Transform
from igtflow.stream.node import Node, PermanentError, Source
from igtflow.stream.nodes.passthrough import PassThrough
from igtflow.stream.nodes.synthetic import SyntheticImage
from igtflow.stream.testing import NodeHarness

SYNTHETIC = "igtflow.stream.nodes.synthetic:SyntheticImage"


class Gain(Node):
    """Multiplies each frame by ``gain``; remembers what it saw of its parameters in setup."""

    inputs = {"image": Image}
    outputs = {"image": Image}

    def setup(self, gain: float = 2.0, label: str = "x") -> None:
        """gain: factor applied to every pixel"""
        self.seen_in_setup = (self.gain, self.label)

    def on_image(self, image: Image) -> None:
        self.emit("image", image.restamped(data=image.data * self.gain))


class Unfinished(Source):
    """Needs a device it cannot find."""

    outputs = {"image": Image}

    def setup(self, device: str = "/dev/probe0") -> None:
        raise PermanentError(f"no probe at {device}; plug it in or set params.device")


class WrongKind(Source):
    outputs = {"pose": Transform}

    def tick(self) -> None:
        self.emit("pose", Image(data=np.zeros((2, 2), np.uint8)))


def validator_message(params: str) -> str:
    """What ``igtflow validate`` says about a synthetic-image node ``probe`` with ``params``."""
    text = f"name: g\nnodes:\n  - id: probe\n    uses: {SYNTHETIC}\n    params: {params}\n"
    with pytest.raises(GraphError) as caught:
        parse_graph(text)
    (issue,) = caught.value.issues
    return issue.message


def test_a_source_ticked_three_times_emits_seq_0_to_2_on_its_topic() -> None:
    with NodeHarness(SyntheticImage, {"width": 8, "height": 4}, node_id="probe") as probe:
        for _ in range(3):
            probe.tick()
        images = probe.emitted["image"]
    assert [m.seq for m in images] == [0, 1, 2]
    assert {m.topic for m in images} == {"probe/image"}
    assert all(m.data.shape == (4, 8) for m in images)
    assert [m.trace[-1][0] for m in images] == ["probe"] * 3


def test_a_relay_fed_messages_emits_them_in_order_with_its_hop_added() -> None:
    sent = [
        Image(data=np.full((2, 3), n, np.uint8), topic="cam/image", seq=10 + n) for n in range(3)
    ]
    with NodeHarness(PassThrough, node_id="relay") as relay:
        for message in sent:
            relay.feed("in", message)
        out = relay.emitted["out"]
    assert [int(m.data[0, 0]) for m in out] == [0, 1, 2]
    assert [(m.topic, m.seq) for m in out] == [("relay/out", 0), ("relay/out", 1), ("relay/out", 2)]
    assert all(m.trace[-1][0] == "relay" and m.trace[-1][1] <= m.trace[-1][2] for m in out)


def test_parameters_are_attributes_before_setup_runs_coerced_to_their_types() -> None:
    with NodeHarness(Gain, {"gain": 3}, node_id="gain") as node:
        assert node.node.seen_in_setup == (3.0, "x")  # type: ignore[attr-defined]
        assert isinstance(node.node.gain, float)  # type: ignore[attr-defined]
        node.feed("image", Image(data=np.ones((2, 2), np.float32)))
        assert node.emitted["image"][0].data.tolist() == [[3.0, 3.0], [3.0, 3.0]]


def test_a_node_type_may_be_named_by_its_module_path() -> None:
    with NodeHarness(SYNTHETIC, {"width": 4, "height": 4}, node_id="probe") as probe:
        probe.tick()
        assert isinstance(probe.node, SyntheticImage)
        assert probe.emitted["image"][0].topic == "probe/image"


@pytest.mark.parametrize(
    ("params", "yaml"),
    [
        ({"width": 0}, "{width: 0}"),
        ({"dtype": "unit8"}, "{dtype: unit8}"),
        ({"widht": 8}, "{widht: 8}"),
        ({"noise": True}, "{noise: true}"),
    ],
)
def test_a_bad_parameter_is_refused_with_the_validators_words(params: dict, yaml: str) -> None:
    with pytest.raises(ValueError) as caught:
        NodeHarness(SYNTHETIC, params, node_id="probe")
    assert str(caught.value) == validator_message(yaml)


def test_an_error_in_setup_comes_out_of_the_harness() -> None:
    with pytest.raises(PermanentError, match="no probe at /dev/probe9"):
        NodeHarness(Unfinished, {"device": "/dev/probe9"})


def test_an_input_or_kind_the_node_does_not_declare_is_refused_as_live() -> None:
    with NodeHarness(PassThrough) as relay, pytest.raises(KeyError, match="no input 'image'"):
        relay.feed("image", Message())
    with NodeHarness(WrongKind, node_id="pose") as source, pytest.raises(TypeError, match="pose"):
        source.tick()
    with NodeHarness(PassThrough) as relay, pytest.raises(TypeError, match="has no tick"):
        relay.tick()


def test_teardown_runs_once_when_the_block_ends() -> None:
    calls: list[str] = []

    class Closing(PassThrough):
        def teardown(self) -> None:
            calls.append(self.id)

    with NodeHarness(Closing, node_id="c") as node:
        node.teardown()
    assert calls == ["c"]
