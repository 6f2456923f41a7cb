"""Graph files: node parameters and ``--set node.param=value`` overrides, and how mistakes in
them are reported.

Graph texts start on line 1 (``\"\"\"\\``); ``# N`` comments mark the lines that assertions name.
"""

from __future__ import annotations

from tests.helpers.graph_reader import (
    VALID,
    fake_node_types,  # noqa: F401  (autouse: registers the stand-in node types)
    only_issue,
    parse,
)

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
