"""Graph files: what a valid graph becomes (node specs, sources, wildcards, order, shipped graphs).

Graph texts start on line 1 (``\"\"\"\\``); ``# N`` comments mark the lines that assertions name.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from igtflow.launch.graph import InputSpec
from igtflow.launch.graph_reader import load_graph
from tests.helpers.graph_reader import (
    VALID,
    fake_node_types,  # noqa: F401  (autouse: registers the stand-in node types)
    parse,
)

GRAPHS = Path(__file__).resolve().parents[1] / "launch" / "graphs"
SYNTHETIC = GRAPHS / "synthetic.yaml"


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
