"""A node's ``inputs:`` as written in the graph file: names its type declares, and for each the
output it reads, its policy (``latest`` or ``queue``), depth and shared-memory budget.

Wiring an input to an output that exists, and matching kinds, needs every node read first; that
is :func:`igtflow.launch.graph_checks.wire_inputs`.
"""

from __future__ import annotations

import typing
from typing import Any

from ruamel.yaml.comments import CommentedMap

from igtflow.launch.graph import DEFAULT_BUDGET_MIB, Policy
from igtflow.launch.graph_draft import NodeDraft, WireDraft
from igtflow.launch.graph_issues import Report
from igtflow.launch.graph_yaml import key_line, unknown_keys
from igtflow.launch.safe_yaml import quote
from igtflow.stream.messages import Message
from igtflow.stream.node import WILDCARD
from igtflow.stream.param_values import is_int, suggest

INPUT_KEYS = ("from", "policy", "depth", "budget_mib")
POLICIES: tuple[Policy, ...] = ("latest", "queue")
DEFAULT_DEPTH: dict[str, int] = {"latest": 1, "queue": 16}
MAX_DEPTH = 100_000
MAX_BUDGET_MIB = 1 << 20


def read_inputs(report: Report, entry: CommentedMap, draft: NodeDraft) -> None:
    """Read the node's ``inputs:`` into ``draft.wires``, checked against the inputs its type
    declares; each wire is resolved later, once every node is read.
    """
    inputs = entry.get("inputs")
    if inputs is None:
        return
    if not isinstance(inputs, CommentedMap):
        report(
            key_line(entry, "inputs"),
            f"'inputs' of node {draft.label} must map input names to 'node/output'",
        )
        return
    declared = draft.cls.inputs if draft.cls is not None else None
    for name, value in inputs.items():
        line = key_line(inputs, name)
        where = f"input {quote(name)} of node {draft.label}"
        if not isinstance(name, str):
            report(line, f"{where}: input names are text")
            continue
        if declared is not None and not _declares(declared, name):
            if not declared:
                report(line, f"node {draft.label} ({draft.uses}) takes no inputs")
            elif name == WILDCARD:
                report(
                    line,
                    f"node {draft.label} ({draft.uses}) has no wildcard input '*'; "
                    f"wire its inputs by name ({', '.join(declared)})",
                )
            else:
                report(
                    line,
                    f"node {draft.label} ({draft.uses}) has no input {quote(name)}"
                    + suggest(name, declared, "inputs"),
                )
            continue
        wire = read_wire(report, name, value, line, where)
        if wire is not None:
            draft.wires.append(wire)


def read_wire(report: Report, name: str, value: Any, line: int, where: str) -> WireDraft | None:
    """One input as written: ``node/output``, or a mapping with its policy, depth and budget."""
    if isinstance(value, str):
        return WireDraft(name, value, "latest", DEFAULT_DEPTH["latest"], line)
    if not isinstance(value, CommentedMap):
        report(
            line,
            f"{where} must be 'node/output' or a mapping with 'from', 'policy', 'depth'"
            ", 'budget_mib'",
        )
        return None
    unknown_keys(report, value, INPUT_KEYS, f"in {where}")
    ok = True
    ref = value.get("from")
    if not isinstance(ref, str):
        report(line, f"{where} needs 'from: node/output'")
        ok = False
    policy = value.get("policy", "latest")
    if policy not in POLICIES:
        report(
            key_line(value, "policy"),
            f"policy {quote(policy)} of {where} is not one of {', '.join(POLICIES)}"
            + suggest(str(policy), POLICIES, ""),
        )
        ok = False
    depth = value.get("depth", DEFAULT_DEPTH.get(str(policy), 1))
    if not is_int(depth) or not 1 <= depth <= MAX_DEPTH:
        report(
            key_line(value, "depth"),
            f"depth {quote(depth)} of {where} must be a whole number from 1 to {MAX_DEPTH}",
        )
        ok = False
    budget = value.get("budget_mib", DEFAULT_BUDGET_MIB)
    if not is_int(budget) or not 1 <= budget <= MAX_BUDGET_MIB:
        report(
            key_line(value, "budget_mib"),
            f"budget_mib {quote(budget)} of {where} must be a whole number of MiB from 1 to "
            f"{MAX_BUDGET_MIB}",
        )
        ok = False
    elif "budget_mib" in value and policy != "queue":
        report(
            key_line(value, "budget_mib"),
            f"budget_mib of {where} applies to 'policy: queue' only (a latest input keeps "
            "nothing back); remove it or set 'policy: queue'",
        )
        ok = False
    if not ok:
        return None
    return WireDraft(
        name, str(ref), typing.cast(Policy, str(policy)), int(depth), line, int(budget)
    )


def _declares(declared: dict[str, type[Message]], name: str) -> bool:
    """A node that declares the wildcard also takes any named input."""
    return name in declared or WILDCARD in declared
