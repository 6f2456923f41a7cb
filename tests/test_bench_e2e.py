"""``igtflow bench e2e``: a guidance graph's floor really runs as processes and a real OpenIGTLink
client receives its outputs, with capture → client latency per device (a tiny run; the figures
come from the full bench). The floor is derived from the shipped graph, so it is checked too."""

from __future__ import annotations

import json
from importlib import resources

from igtflow.launch.bench.e2e import COMPUTE_NODES
from igtflow.launch.graph_edit import without_nodes
from igtflow.launch.graph_reader import parse_graph
from tests.helpers.cli import igtflow


def test_floor_drops_the_networks_and_what_only_they_fed() -> None:
    text = resources.files("igtflow.launch").joinpath("graphs/us-guidance.yaml").read_text()
    floor = parse_graph(without_nodes(text, COMPUTE_NODES), "floor")
    ids = {node.id for node in floor.nodes}
    assert {"probe", "overlay", "scene", "slicer", "rec"} <= ids
    assert not ids & {"seg", "reg", "track", "shift"}
    overlay = next(node for node in floor.nodes if node.id == "overlay")
    assert {i.name for i in overlay.inputs} == {"image"}


def test_without_nodes_removes_a_node_left_with_no_inputs() -> None:
    text = (
        "name: g\nnodes:\n"
        "  - {id: src, uses: synthetic-image}\n"
        "  - {id: a, uses: passthrough, inputs: {in: src/image}}\n"
        "  - {id: b, uses: passthrough, inputs: {in: a/out}}\n"
        "  - {id: s, uses: stats, inputs: {'*': {from: '*', policy: queue}}}\n"
    )
    kept = parse_graph(without_nodes(text, ["passthrough"]), "g")
    assert {node.id for node in kept.nodes} == {"src", "s"}


def test_bench_e2e_floor_case_reports_latency_per_device() -> None:
    done = igtflow("bench", "e2e", "--seconds", "2", "--case", "floor_us", "--json", timeout=240)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    case = report["cases"]["floor_us"]
    assert not case["failed"]
    assert {"Image", "Overlay"} <= set(case["devices"])
    assert case["devices"]["Image"]["count"] >= 10  # 30 Hz for 2 s, on a busy machine
    assert 0 < report["floor_us_p99_ms"] < 10_000
    assert case["rss_mb"] and case["cpu_ms_per_frame"]["probe"] is not None
    assert report["us_p99_ms"] is None  # not run: said, not made up
    # overlay compose per frame: generous (a 10x regression fails, a busy machine does not)
    assert 0 < report["overlay_us_p99_ms"] < 60 and report["overlay"]["us_compose"]["frames"] > 30


def test_bench_e2e_refuses_an_unknown_case() -> None:
    done = igtflow("bench", "e2e", "--case", "nope")
    assert done.returncode == 2
    assert "floor_us" in done.stderr
