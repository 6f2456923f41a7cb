"""Graph files: whole-graph checks (cycles, ports, hosts), every issue reported together,
and loading from a file.

Graph texts start on line 1 (``\"\"\"\\``); ``# N`` comments mark the lines that assertions name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from igtflow.launch.graph_issues import GraphError
from igtflow.launch.graph_reader import load_graph
from tests.helpers.graph_reader import (
    fake_node_types,  # noqa: F401  (autouse: registers the stand-in node types)
    issues_of,
    only_issue,
    parse,
)

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
        insecure: true
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
        ("priority: backgrund", "did you mean 'background'?"),
        ("priority: high", "not one of normal, background"),
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
