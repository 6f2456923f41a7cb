"""Graph files: what a valid graph becomes, and how each mistake is reported (file, line, fix).

Graph texts start on line 1 (``\"\"\"\\``); ``# N`` comments mark the lines that assertions name.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from textwrap import dedent
from typing import Literal

import pytest

from igtflow.launch import registry
from igtflow.launch.graph import Graph, InputSpec
from igtflow.launch.graph_issues import GraphError, GraphIssue
from igtflow.launch.graph_reader import load_graph, parse_graph
from igtflow.stream.messages import Image, Status, Transform
from igtflow.stream.node import WILDCARD, Node, Source, Ticking

GRAPHS = Path(__file__).resolve().parents[1] / "launch" / "graphs"
SYNTHETIC = GRAPHS / "synthetic.yaml"


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
    """


# -- what a valid graph becomes ---------------------------------------------------------------


def test_valid_graph_parses_into_node_specs_with_defaults() -> None:
    graph = parse(VALID)
    assert graph.name == "us-guidance"
    assert graph.path == "graph.yaml"
    assert graph.text == dedent(VALID)
    assert [n.id for n in graph.nodes] == ["probe", "tracker", "seg", "slicer", "rec"]
    assert [n.line for n in graph.nodes] == [3, 6, 8, 13, 21]

    probe = graph.node("probe")
    assert probe.uses == "synthetic-image"
    assert probe.import_path == "igtflow.stream.nodes.synthetic:SyntheticImage"
    assert probe.params == {"rate_hz": 30.0, "width": 128}
    assert type(probe.params["rate_hz"]) is float and type(probe.params["width"]) is int
    assert (probe.host, probe.restart, probe.max_restarts, probe.threads) == (
        None,
        "on-failure",
        5,
        1,
    )

    seg = graph.node("seg")
    assert seg.params == {"model": "us-seg", "threshold": 1.0}
    assert seg.inputs == (InputSpec("image", "probe", "image", "latest", 1, 10),)
    assert seg.threads == 2

    slicer = graph.node("slicer")
    assert slicer.inputs == (
        InputSpec("image", "seg", "labels", "queue", 16, 16),
        InputSpec("transform", "tracker", "pose", "latest", 1, 17),
    )
    assert (slicer.host, slicer.restart, slicer.max_restarts) == ("10.0.0.5", "never", 0)


def test_sources_are_the_nodes_whose_type_is_a_source_not_those_without_inputs() -> None:
    graph = parse(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
          - id: redraw
            uses: fake-redrawer
            inputs: {image: probe/image}
          - id: idle
            uses: fake-redrawer
          - id: rec
            uses: stats
            inputs: {"*": {from: "*"}}
        """
    )
    sources = {spec.id: spec.is_source for spec in graph.nodes}
    assert sources == {"probe": True, "redraw": False, "idle": False, "rec": False}


def test_wildcard_from_star_reads_every_output_of_every_other_node() -> None:
    rec = parse(VALID).node("rec")
    assert rec.inputs == tuple(
        InputSpec(f"{node}/{output}", node, output, "queue", 256, 23)
        for node, output in [
            ("probe", "image"),
            ("probe", "status"),
            ("tracker", "pose"),
            ("tracker", "status"),
            ("seg", "labels"),
            ("seg", "status"),
            ("slicer", "status"),
        ]
    )


def test_wildcard_from_one_node_reads_all_its_outputs_only() -> None:
    graph = parse(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
          - id: seg
            uses: fake-segment
            inputs: {image: probe/image}
            params: {model: m}
          - id: rec
            uses: stats
            inputs: {"*": {from: "seg/*"}}
        """
    )
    assert [(i.name, i.policy, i.depth) for i in graph.node("rec").inputs] == [
        ("seg/labels", "latest", 1),
        ("seg/status", "latest", 1),
    ]


def test_typed_wildcard_reads_only_outputs_of_its_kind() -> None:
    graph = parse(
        """\
        nodes:
          - id: tracker
            uses: fake-tracker
          - id: probe
            uses: synthetic-image
          - id: rec
            uses: fake-image-recorder
            inputs: {"*": "*"}
        """
    )
    assert [i.name for i in graph.node("rec").inputs] == ["probe/image"]


def test_wildcard_node_also_takes_named_inputs() -> None:
    graph = parse(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
          - id: stats
            uses: stats
            inputs: {camera: probe/image}
        """
    )
    assert graph.node("stats").inputs == (InputSpec("camera", "probe", "image", "latest", 1, 6),)


def test_message_kind_on_either_side_matches_any_kind() -> None:
    graph = parse(
        """\
        nodes:
          - id: tracker
            uses: fake-tracker
          - id: relay
            uses: passthrough
            inputs: {in: tracker/pose}
          - id: seg
            uses: fake-segment
            inputs: {image: relay/out}
            params: {model: m}
        """
    )
    assert graph.node("seg").inputs[0].source == "relay/out"


def test_topo_order_puts_upstream_first_whatever_the_file_order() -> None:
    graph = parse(
        """\
        name: reversed
        nodes:
          - id: sink
            uses: stats
            inputs: {"*": {from: "relay/*"}}
          - id: relay
            uses: passthrough
            inputs: {in: probe/image}
          - id: probe
            uses: synthetic-image
        """
    )
    assert [n.id for n in graph.topo_order()] == ["probe", "relay", "sink"]
    assert [i.name for i in graph.node("sink").inputs] == ["relay/out", "relay/status"]


def test_consumers_lists_every_reader_of_one_output() -> None:
    graph = parse(VALID)
    readers = [(node.id, wire.name) for node, wire in graph.consumers("seg", "labels")]
    assert readers == [("slicer", "image"), ("rec", "seg/labels")]
    assert graph.consumers("slicer", "nothing") == []


def test_node_lookup_of_a_missing_id_names_the_ids_that_exist() -> None:
    with pytest.raises(KeyError, match="nodes: probe, tracker, seg, slicer, rec"):
        parse(VALID).node("sgm")


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text("nodes:\n  - id: probe\n    uses: synthetic-image\n")
    graph = load_graph(path)
    assert (graph.name, graph.path) == ("bench", str(path))


@pytest.mark.parametrize("path", sorted(GRAPHS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_graph_is_valid(path: Path) -> None:
    assert load_graph(path).nodes


def test_synthetic_graph_is_valid_source_to_passthrough_to_stats() -> None:
    graph = load_graph(SYNTHETIC)
    assert [(n.id, n.uses) for n in graph.topo_order()] == [
        ("probe", "synthetic-image"),
        ("relay", "passthrough"),
        ("stats", "stats"),
    ]
    assert graph.node("probe").params == {"rate_hz": 30.0, "width": 256, "height": 256}
    assert graph.node("relay").inputs[0].source == "probe/image"
    assert "relay/out" in [i.source for i in graph.node("stats").inputs]


# -- overrides (--set node.param=value) --------------------------------------------------------


def test_override_replaces_yaml_value_typed_as_yaml_scalar() -> None:
    graph = parse(VALID, ["probe.width=64", "probe.rate_hz=60", "seg.device=cpu"])
    assert graph.node("probe").params == {"rate_hz": 60.0, "width": 64}
    assert graph.node("seg").params["device"] == "cpu"


def test_override_falls_back_to_text_for_text_params() -> None:
    assert parse(VALID, ["seg.model=2024"]).node("seg").params["model"] == "2024"


def test_override_of_unknown_node_suggests_close_id() -> None:
    issue = only_issue(VALID, ["sge.threshold=0.2"])
    assert (issue.path, issue.line) == ("<--set>", 0)
    assert "no node 'sge'" in issue.message
    assert "did you mean 'seg'?" in issue.message


def test_override_of_unknown_param_suggests_close_name() -> None:
    issue = only_issue(VALID, ["seg.treshold=0.2"])
    assert (issue.path, issue.line) == ("<--set>", 0)
    assert "seg.treshold=0.2" in issue.message
    assert "no parameter 'treshold'" in issue.message
    assert "did you mean 'threshold'?" in issue.message


def test_override_with_wrong_type_names_expected_type() -> None:
    issue = only_issue(VALID, ["probe.width=wide"])
    assert (issue.path, issue.line) == ("<--set>", 0)
    assert "'width'" in issue.message and "expects int" in issue.message
    assert "'wide'" in issue.message


def test_malformed_override_shows_the_expected_form() -> None:
    issue = only_issue(VALID, ["seg-threshold=0.2"])
    assert "not node.param=value" in issue.message


# -- YAML shape ---------------------------------------------------------------------------------


def test_bad_yaml_syntax_reports_the_parser_line() -> None:
    issue = only_issue(
        """\
        name: broken
        nodes:
          - id: probe
            uses: synthetic-image
            params: {rate_hz: 30, width: 256]   # 5
        """
    )
    assert issue.line == 5
    assert issue.message.startswith("invalid YAML")


def test_duplicate_yaml_key_is_a_syntax_error_at_the_second_key() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
            uses: passthrough                   # 4
        """
    )
    assert issue.line == 4
    assert "duplicate key" in issue.message


@pytest.mark.parametrize("text", ["", "- id: probe\n", "just text\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    issue = only_issue(text)
    assert issue.line == 1
    assert "mapping with 'name' and 'nodes'" in issue.message


def test_missing_nodes_is_reported() -> None:
    issue = only_issue("name: empty\n")
    assert issue.line == 1
    assert "no 'nodes'" in issue.message


def test_empty_nodes_list_is_reported() -> None:
    issue = only_issue("name: empty\nnodes: []\n")
    assert issue.line == 2
    assert "non-empty list" in issue.message


def test_unknown_top_level_key_names_line_and_suggests() -> None:
    issue = only_issue(
        """\
        name: g
        nodes:
          - id: probe
            uses: synthetic-image
        nmae: typo                              # 5
        """
    )
    assert issue.line == 5
    assert "unknown key 'nmae'" in issue.message and "did you mean 'name'?" in issue.message


def test_unknown_node_key_names_line_and_suggests() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
            parms: {width: 64}                  # 4
        """
    )
    assert issue.line == 4
    assert "unknown key 'parms' in node 'probe'" in issue.message
    assert "did you mean 'params'?" in issue.message


def test_node_entry_must_be_a_mapping() -> None:
    issue = only_issue("nodes:\n  - id: probe\n    uses: synthetic-image\n  - relay\n")
    assert issue.line == 4
    assert "node #2 must be a mapping" in issue.message


# -- ids and types ------------------------------------------------------------------------------


def test_missing_id_is_reported_at_the_node_entry() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
          - uses: passthrough                   # 4
            inputs: {in: probe/image}
        """
    )
    assert issue.line == 4
    assert "node #2 has no 'id'" in issue.message


def test_duplicate_id_is_reported_at_the_second_naming_the_first() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe                           # 2
            uses: synthetic-image
          - id: relay
            uses: passthrough
            inputs: {in: probe/image}
          - id: probe                           # 7
            uses: synthetic-image
        """
    )
    assert issue.line == 7
    assert "duplicate node id 'probe'" in issue.message and "line 2" in issue.message


@pytest.mark.parametrize("bad_id", ["1probe", "probe.main", "a/b", "x" * 33, "'pro be'", "7"])
def test_id_must_be_usable_as_a_socket_name(bad_id: str) -> None:
    issue = only_issue(f"nodes:\n  - uses: synthetic-image\n    id: {bad_id}\n")
    assert issue.line == 3
    assert "is not valid" in issue.message and "letter" in issue.message


def test_longest_valid_id_is_accepted() -> None:
    node_id = "p" + "_-9" * 10 + "x"
    assert len(node_id) == 32
    graph = parse(f"nodes:\n  - id: {node_id}\n    uses: synthetic-image\n")
    assert graph.nodes[0].id == node_id


def test_unknown_node_type_suggests_a_registered_short_name() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-imag                # 3
        """
    )
    assert issue.line == 3
    assert "unknown node type 'synthetic-imag'" in issue.message
    assert "did you mean 'synthetic-image'?" in issue.message


def test_unknown_node_type_without_close_match_lists_known_types() -> None:
    issue = only_issue("nodes:\n  - id: x\n    uses: quux\n")
    assert "known types:" in issue.message and "passthrough" in issue.message


def test_unimportable_class_path_names_the_module() -> None:
    issue = only_issue("nodes:\n  - id: x\n    uses: igtflow.nowhere:Thing\n")
    assert issue.line == 3
    assert "igtflow.nowhere" in issue.message and "cannot import" in issue.message


def test_inputs_reading_a_node_of_unknown_type_are_not_reported_twice() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-imag
          - id: relay
            uses: passthrough
            inputs: {in: probe/anything}
        """
    )
    assert "unknown node type" in issue.message


# -- parameters --------------------------------------------------------------------------------


def test_unknown_param_names_line_and_suggests() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
            params:
              rate_hz: 30
              widht: 64                         # 6
        """
    )
    assert issue.line == 6
    assert "node 'probe' (synthetic-image) has no parameter 'widht'" in issue.message
    assert "did you mean 'width'?" in issue.message


def test_mistyped_param_names_expected_type_and_value() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
            params: {width: big}                # 4
        """
    )
    assert issue.line == 4
    assert "parameter 'width' of node 'probe' expects int 1..16384, got 'big'" in issue.message


def test_yes_no_value_is_not_a_number() -> None:
    text = "nodes:\n  - id: probe\n    uses: synthetic-image\n    params: {width: true}\n"
    issue = only_issue(text)
    assert issue.line == 4
    assert "expects int 1..16384, got True" in issue.message


def test_choice_param_suggests_the_close_choice() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: seg
            uses: fake-segment
            params: {model: m, device: cpuu}    # 4
        """
    )
    assert issue.line == 4
    assert "'device'" in issue.message and "did you mean 'cpu'?" in issue.message


def test_params_are_coerced_to_annotated_types() -> None:
    text = "nodes:\n  - id: s\n    uses: fake-segment\n    params: {model: m, size: [1, 2]}\n"
    graph = parse(text)
    assert graph.node("s").params == {"model": "m", "size": (1, 2)}


def test_missing_required_param_is_reported_at_the_node() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: seg                             # 2
            uses: fake-segment
            params: {threshold: 0.3}
        """
    )
    assert issue.line == 2
    assert "node 'seg' (fake-segment) needs parameter 'model' (str)" in issue.message


def test_required_param_may_come_from_an_override() -> None:
    text = "nodes:\n  - id: seg\n    uses: fake-segment\n"
    assert parse(text, ["seg.model=us-seg"]).node("seg").params == {"model": "us-seg"}


# -- inputs ------------------------------------------------------------------------------------


def test_undeclared_input_name_suggests_a_declared_one() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
          - id: relay
            uses: passthrough
            inputs: {inn: probe/image}          # 6
        """
    )
    assert issue.line == 6
    assert "node 'relay' (passthrough) has no input 'inn'" in issue.message
    assert "did you mean 'in'?" in issue.message


def test_input_to_a_missing_output_names_outputs_and_suggests() -> None:
    text = """\
        name: us-guidance
        nodes:
          - id: probe
            uses: synthetic-image
            params: {rate_hz: 30}

          - id: tracker
            uses: fake-tracker

          - id: seg
            uses: fake-segment
            params: {model: us-seg}
            inputs:
              image: probe/img
        """
    assert str(only_issue(text)) == (
        "graph.yaml:14: input 'image' of node 'seg' reads 'probe/img', which does not exist "
        "(outputs of probe: image, status); did you mean 'probe/image'?"
    )


def test_input_from_a_missing_node_suggests_a_close_reference() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
          - id: relay
            uses: passthrough
            inputs: {in: prob/image}            # 6
        """
    )
    assert issue.line == 6
    assert "reads 'prob/image', which does not exist (no node 'prob')" in issue.message
    assert "did you mean 'probe/image'?" in issue.message


def test_malformed_input_reference_asks_for_node_slash_output() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
          - id: relay
            uses: passthrough
            inputs: {in: probe.image}           # 6
        """
    )
    assert issue.line == 6
    assert "'probe.image', which is not 'node/output'" in issue.message
    assert "did you mean 'probe/image'?" in issue.message


def test_long_form_input_needs_from() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
          - id: relay
            uses: passthrough
            inputs:
              in: {policy: queue}               # 7
        """
    )
    assert issue.line == 7
    assert "needs 'from: node/output'" in issue.message


def test_kind_mismatch_names_both_kinds() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: tracker
            uses: fake-tracker
          - id: seg
            uses: fake-segment
            params: {model: m}
            inputs: {image: tracker/pose}       # 7
        """
    )
    assert issue.line == 7
    assert "input 'image' of node 'seg' expects Image" in issue.message
    assert "'tracker/pose' carries Transform" in issue.message


def test_wildcard_on_a_node_without_wildcard_input_is_rejected() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
          - id: relay
            uses: passthrough
            inputs: {"*": {from: "*"}}          # 6
        """
    )
    assert issue.line == 6
    assert "no wildcard input '*'" in issue.message and "(in)" in issue.message


def test_wildcard_reference_on_a_named_input_is_rejected() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
          - id: relay
            uses: passthrough
            inputs: {in: "probe/*"}             # 6
        """
    )
    assert issue.line == 6
    assert "only the input '*' may read a wildcard" in issue.message


def test_wildcard_from_a_missing_node_suggests() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
          - id: rec
            uses: stats
            inputs: {"*": {from: "prbe/*"}}     # 6
        """
    )
    assert issue.line == 6
    assert "no node 'prbe'" in issue.message and "did you mean 'probe'?" in issue.message


def test_source_takes_no_inputs() -> None:
    issue = only_issue("nodes:\n  - id: p\n    uses: synthetic-image\n    inputs: {in: p/image}\n")
    assert issue.line == 4
    assert "takes no inputs" in issue.message


def test_a_source_type_wired_with_inputs_is_reported_at_its_first_input() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
          - id: tracker
            uses: fake-fed-source
            inputs: {image: probe/image}       # 6
        """
    )
    assert issue.line == 6
    assert "node 'tracker' (fake-fed-source) is a Source" in issue.message
    assert "reads 'image'" in issue.message
    assert "derive FakeFedSource from Ticking instead of Source" in issue.message


@pytest.mark.parametrize(
    ("wire", "words"),
    [
        ("{from: probe/image, policy: quee}", "did you mean 'queue'?"),
        ("{from: probe/image, policy: queue, depth: 0}", "depth 0"),
        ("{from: probe/image, policy: queue, depth: 100001}", "from 1 to 100000"),
        ("{from: probe/image, depth: deep}", "depth 'deep'"),
        ("{from: probe/image, depth: true}", "depth True"),
        ("{from: probe/image, polcy: queue}", "did you mean 'policy'?"),
        ("{from: probe/image, policy: queue, budget_mib: 0}", "budget_mib 0"),
        ("{from: probe/image, policy: queue, budget_mib: lots}", "budget_mib 'lots'"),
        ("{from: probe/image, budget_mib: 64}", "applies to 'policy: queue' only"),
    ],
)
def test_bad_policy_or_depth_is_reported_at_its_line(wire: str, words: str) -> None:
    issue = only_issue(
        f"""\
        nodes:
          - id: probe
            uses: synthetic-image
          - id: relay
            uses: passthrough
            inputs:
              in: {wire}
        """
    )
    assert issue.line == 7
    assert words in issue.message


def test_a_queue_takes_a_memory_budget_and_defaults_to_256_mib() -> None:
    graph = parse(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
          - id: rec
            uses: passthrough
            inputs: {in: {from: probe/image, policy: queue, depth: 64, budget_mib: 512}}
          - id: other
            uses: passthrough
            inputs: {in: {from: probe/image, policy: queue}}
        """
    )
    assert graph.node("rec").inputs[0].budget_mib == 512
    assert graph.node("other").inputs[0].budget_mib == 256


# -- whole-graph checks --------------------------------------------------------------------------


def test_cycle_names_the_nodes_in_it() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: probe
            uses: synthetic-image
          - id: a
            uses: passthrough
            inputs: {in: c/out}                 # 6
          - id: b
            uses: passthrough
            inputs: {in: a/out}
          - id: c
            uses: passthrough
            inputs: {in: b/out}
        """
    )
    assert issue.line == 6
    assert "nodes a -> b -> c -> a form a cycle" in issue.message


def test_node_reading_itself_is_a_cycle() -> None:
    issue = only_issue("nodes:\n  - id: a\n    uses: passthrough\n    inputs: {in: a/out}\n")
    assert issue.line == 4
    assert "a -> a" in issue.message


def test_port_clash_on_one_host_names_both_nodes() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: slicer                          # 2
            uses: fake-server
          - id: hololens
            uses: fake-server
            params: {port: 18944}               # 6
        """
    )
    assert issue.line == 6
    assert "port 18944" in issue.message and "'slicer'" in issue.message
    assert "line 2" in issue.message and "this host" in issue.message


def test_port_clash_includes_params_ending_in_port() -> None:
    issue = only_issue(
        """\
        nodes:
          - id: slicer
            uses: fake-server
            params: {port: 18945}
          - id: hololens
            uses: fake-server
            params: {port: 18946, status_port: 18945}   # 7
        """
    )
    assert issue.line == 7
    assert "'status_port'" in issue.message and "'slicer'" in issue.message


def test_same_port_on_different_hosts_is_fine() -> None:
    graph = parse(
        """\
        nodes:
          - id: slicer
            uses: fake-server
          - id: remote
            uses: fake-server
            host: 10.0.0.5
        """
    )
    assert [n.host for n in graph.nodes] == [None, "10.0.0.5"]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("restart: nevr", "did you mean 'never'?"),
        ("max_restarts: -1", "'max_restarts' of node 'probe' must be a whole number >= 0"),
        ("max_restarts: 2.5", "got 2.5"),
        ("threads: 0", "'threads' of node 'probe' must be a whole number >= 1"),
        ("threads: two", "got 'two'"),
        ("host: 5", "'host' of node 'probe' must be a host name"),
    ],
)
def test_bad_restart_threads_or_host_is_reported_at_its_line(line: str, words: str) -> None:
    issue = only_issue(f"nodes:\n  - id: probe\n    uses: synthetic-image\n    {line}\n")
    assert issue.line == 4
    assert words in issue.message


def test_every_issue_is_reported_together_in_line_order() -> None:
    text = """\
        name: many
        nodes:
          - id: probe
            uses: synthetic-image
            params: {widht: 64}                 # 5
          - id: seg
            uses: fake-segmnt                   # 7
          - id: relay
            uses: passthrough
            inputs: {in: probe/img}             # 10
          - id: probe                           # 11
            uses: stats
            threads: 0                          # 13
        """
    with pytest.raises(GraphError) as caught:
        parse(text, ["relay.speed=2"])
    error = caught.value
    assert [(i.path, i.line) for i in error.issues] == [
        ("graph.yaml", 5),
        ("graph.yaml", 7),
        ("graph.yaml", 10),
        ("graph.yaml", 11),
        ("graph.yaml", 13),
        ("<--set>", 0),
    ]
    assert str(error).splitlines() == [str(issue) for issue in error.issues]


def test_load_graph_reports_the_file_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("nodes:\n  - id: probe\n    uses: synthetic-imag\n")
    with pytest.raises(GraphError) as caught:
        load_graph(path)
    assert str(caught.value).startswith(f"{path}:3: node 'probe' uses unknown node type")


def test_missing_graph_file_is_a_graph_error(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match="cannot read graph file"):
        load_graph(tmp_path / "absent.yaml")


def test_node_types_check_their_own_wiring_and_issues_land_on_the_node_line() -> None:
    text = """\
    name: own-checks
    nodes:
      - id: probe
        uses: synthetic-image
      - id: short                                   # 5
        uses: fake-named-sink
        inputs: {img: probe/image}
      - id: long                                    # 8
        uses: fake-named-sink
        inputs: {a_long_name: probe/image}
        params: {limit: 8}
      - id: empty                                   # 12
        uses: fake-named-sink
    """
    found = issues_of(text)
    assert [(i.line, i.message) for i in found] == [
        (8, "node 'long' (fake-named-sink): input 'a_long_name' is over 8"),
        (12, "node 'empty' (fake-named-sink): needs at least one input"),
    ]
