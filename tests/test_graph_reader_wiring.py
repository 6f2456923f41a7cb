"""Graph files: node inputs (references, kinds, wildcards, policies), and how mistakes in them
are reported.

Graph texts start on line 1 (``\"\"\"\\``); ``# N`` comments mark the lines that assertions name.
"""

from __future__ import annotations

import pytest

from tests.helpers.graph_reader import (
    fake_node_types,  # noqa: F401  (autouse: registers the stand-in node types)
    only_issue,
    parse,
)

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
