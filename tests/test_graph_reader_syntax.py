"""Graph files: YAML shape, node ids and node types, and how mistakes in them are reported
(file, line, fix).

Graph texts start on line 1 (``\"\"\"\\``); ``# N`` comments mark the lines that assertions name.
"""

from __future__ import annotations

import pytest

from tests.helpers.graph_reader import (
    fake_node_types,  # noqa: F401  (autouse: registers the stand-in node types)
    only_issue,
    parse,
)

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
