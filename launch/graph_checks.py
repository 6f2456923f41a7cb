"""Checks across nodes: every input resolved against the outputs that exist, kinds matched,
wildcards expanded, no input into a Source, each node type's own wiring rules, cycles and port
clashes.

These need every node read first; :mod:`igtflow.launch.graph_reader` reads the nodes one by one
and hands the drafts here, and each mistake goes back through ``report`` with its line.
"""

from __future__ import annotations

from typing import Any

from igtflow.launch.graph import InputSpec
from igtflow.launch.graph_draft import NodeDraft, WireDraft
from igtflow.launch.graph_issues import Report
from igtflow.launch.safe_yaml import quote
from igtflow.launch.topology import cycles
from igtflow.stream.messages import Message
from igtflow.stream.node import WILDCARD, ImageSpec, Node, all_outputs
from igtflow.stream.param_values import is_int, suggest


def wire_inputs(report: Report, drafts: list[NodeDraft], nodes: dict[str, NodeDraft]) -> None:
    """Resolve every input against the outputs that exist; expand wildcards."""
    for draft in drafts:
        _read_outputs(report, draft)
    unloaded = {node_id for node_id, d in nodes.items() if d.cls is None}
    refs = [f"{n}/{o}" for n, d in nodes.items() if d.cls is not None for o in d.outputs]
    for draft in drafts:
        if draft.cls is None:
            continue
        taken = {wire.name for wire in draft.wires if wire.name != WILDCARD}
        for wire in draft.wires:
            where = f"input {quote(wire.name)} of node {draft.label}"
            kind = _input_kind(draft.cls, wire.name)
            is_wild = wire.ref == WILDCARD or wire.ref.endswith("/" + WILDCARD)
            if wire.name == WILDCARD and not is_wild:
                report(
                    wire.line,
                    f"{where} reads {quote(wire.ref)}; the wildcard input reads '*' (every "
                    "output of every other node) or 'node/*' (every output of one node)",
                )
            elif is_wild and wire.name != WILDCARD:
                report(
                    wire.line,
                    f"{where} reads {quote(wire.ref)}, but only the input '*' may read a "
                    "wildcard; name one output ('node/output')",
                )
            elif is_wild:
                _expand(report, draft, wire, kind, nodes, unloaded, taken)
            else:
                _resolve(report, draft, wire, where, kind, nodes, unloaded, refs)


def _read_outputs(report: Report, draft: NodeDraft) -> None:
    """The draft's outputs; a node whose parameters rule out any output becomes unloaded."""
    if draft.cls is None:
        return
    try:
        draft.outputs = all_outputs(draft.cls, draft.id or "", draft.params)
    except (ValueError, OSError) as exc:
        report(draft.line, f"node {draft.label} ({draft.uses}): {exc}")
        draft.cls = None


def _resolve(
    report: Report,
    draft: NodeDraft,
    wire: WireDraft,
    where: str,
    kind: type[Message],
    nodes: dict[str, NodeDraft],
    unloaded: set[str],
    refs: list[str],
) -> None:
    node_id, slash, output = wire.ref.partition("/")
    if not slash or not node_id or not output or "/" in output:
        report(
            wire.line,
            f"{where} reads {quote(wire.ref)}, which is not 'node/output'"
            + suggest(wire.ref, refs, ""),
        )
        return
    if node_id in unloaded:
        return  # its type failed to load, already reported; its outputs are unknown
    upstream = nodes.get(node_id)
    if upstream is None or upstream.cls is None:
        why = f"no node {quote(node_id)}"
    elif output not in upstream.outputs:
        outs = ", ".join(upstream.outputs) or "none"
        why = f"outputs of {node_id}: {outs}"
    else:
        out_kind = upstream.outputs[output]
        if not _kinds_match(out_kind, kind):
            report(
                wire.line,
                f"{where} expects {_kind_name(kind)}, but {quote(wire.ref)} carries "
                f"{_kind_name(out_kind)}",
            )
            return
        draft.inputs.append(
            InputSpec(
                wire.name,
                node_id,
                output,
                wire.policy,
                wire.depth,
                wire.line,
                wire.budget_mib,
            )
        )
        return
    report(
        wire.line,
        f"{where} reads {quote(wire.ref)}, which does not exist ({why})"
        + suggest(wire.ref, refs, ""),
    )


def _expand(
    report: Report,
    draft: NodeDraft,
    wire: WireDraft,
    kind: type[Message],
    nodes: dict[str, NodeDraft],
    unloaded: set[str],
    taken: set[str],
) -> None:
    if wire.ref == WILDCARD:
        # Another catch-all reader (a recorder beside a stats sink) is left out: each would
        # read the other's status and form a cycle.
        sources = [
            d
            for i, d in nodes.items()
            if d is not draft and i not in unloaded and not _reads_everything(d)
        ]
    else:
        node_id = wire.ref[: -len("/" + WILDCARD)]
        if node_id in unloaded:
            return
        if node_id not in nodes:
            report(
                wire.line,
                f"input '*' of node {draft.label} reads {quote(wire.ref)}, but there is no "
                f"node {quote(node_id)}" + suggest(node_id, list(nodes), "nodes"),
            )
            return
        sources = [nodes[node_id]]
    # A typed wildcard subscribes to the outputs of its kind and leaves the others alone.
    added = 0
    for upstream in sources:
        assert upstream.cls is not None and upstream.id is not None
        for output, out_kind in upstream.outputs.items():
            name = f"{upstream.id}/{output}"
            if name in taken or not _kinds_match(out_kind, kind):
                continue
            draft.inputs.append(
                InputSpec(
                    name,
                    upstream.id,
                    output,
                    wire.policy,
                    wire.depth,
                    wire.line,
                    wire.budget_mib,
                )
            )
            added += 1
    if not added and not (wire.ref == WILDCARD and unloaded):
        report(
            wire.line,
            f"input '*' of node {draft.label} reads {quote(wire.ref)}, which matches no "
            f"{_kind_name(kind)} output",
        )


def check_sources(report: Report, nodes: dict[str, NodeDraft]) -> None:
    """A Source makes its data on its own: a type that declares inputs and still derives from
    Source would be started, paused and waited for as if nothing fed it."""
    for draft in nodes.values():
        if draft.cls is None or not draft.wires or not draft.is_source:
            continue
        names = ", ".join(quote(wire.name) for wire in draft.wires)
        report(
            draft.wires[0].line,
            f"node {draft.label} ({draft.uses}) is a Source, which makes its data on its own "
            f"and takes no inputs, but reads {names}; remove the inputs, or derive "
            f"{draft.cls.__name__} from Ticking instead of Source to tick beside its inputs",
        )


def check_node_wiring(report: Report, nodes: dict[str, NodeDraft]) -> None:
    """The node types' own checks of their wiring (``Node.check_wiring``)."""
    for draft in nodes.values():
        if draft.cls is None:
            continue
        names = [wire.name for wire in draft.inputs]
        params = {n: p.default for n, p in draft.declared.items() if not p.required}
        params.update(draft.params)
        try:
            problems = draft.cls.check_wiring(params, names)
        except Exception as exc:  # a buggy check must not crash validation
            problems = [f"checking its wiring failed: {type(exc).__name__}: {exc}"]
        for problem in problems:
            report(draft.line, f"node {draft.label} ({draft.uses}): {problem}")


def check_upstream(report: Report, nodes: dict[str, NodeDraft]) -> None:
    """Each node's parameters against what its inputs will carry (``Node.check_upstream``), at
    the line of the parameter at fault: a model card whose input does not fit the frames."""
    for draft in nodes.values():
        if draft.cls is None:
            continue
        upstream = {
            wire.name: _image_spec(nodes.get(wire.node), wire.output) for wire in draft.inputs
        }
        try:
            problems = draft.cls.check_upstream(_values(draft), upstream)
        except Exception as exc:  # a buggy check must not crash validation
            problems = [("", f"checking its inputs failed: {type(exc).__name__}: {exc}")]
        for param, problem in problems:
            line = draft.param_lines.get(param) or draft.line
            report(line, f"node {draft.label} ({draft.uses}): {problem}")


def _image_spec(upstream: NodeDraft | None, output: str) -> ImageSpec | None:
    if upstream is None or upstream.cls is None:
        return None
    try:
        return upstream.cls.image_spec(output, _values(upstream))
    except Exception:  # unknown is always a safe answer
        return None


def _values(draft: NodeDraft) -> dict[str, Any]:
    """The node's parameters as it will run with them: the graph's, then the defaults."""
    values = {n: p.default for n, p in draft.declared.items() if not p.required}
    values.update(draft.params)
    return values


def check_cycles(report: Report, nodes: dict[str, NodeDraft]) -> None:
    edges = {i: {w.node for w in d.inputs if w.node in nodes} for i, d in nodes.items()}
    for cycle in cycles(list(nodes), edges):
        start, last = cycle[0], cycle[-2]
        line = next(w.line for w in nodes[start].inputs if w.node == last)
        report(
            line,
            f"nodes {' -> '.join(cycle)} form a cycle; data must flow one way, "
            f"so remove one of these inputs",
        )


def check_ports(report: Report, nodes: dict[str, NodeDraft]) -> None:
    """Two nodes on one host that bind the same port would fail only at run time."""
    seen: dict[tuple[str | None, int], tuple[str, str, int]] = {}
    for draft in nodes.values():
        if draft.cls is None:
            continue
        values = {n: p.default for n, p in draft.declared.items() if not p.required}
        values.update(draft.params)
        for name, value in values.items():
            if not (name == "port" or name.endswith("_port")):
                continue
            port = _port_number(value)
            if port is None:
                continue
            line = draft.param_lines.get(name) or draft.line
            key = (draft.host, port)
            if key in seen:
                other, other_param, other_line = seen[key]
                host = "this host" if draft.host is None else f"host {draft.host}"
                report(
                    line,
                    f"node {draft.label} uses port {port} ({name!r}), which node {other!r} "
                    f"already uses ({other_param!r}, line {other_line}) on {host}; "
                    "give one of them another port",
                )
            else:
                assert draft.id is not None
                seen[key] = (draft.id, name, line)


def _reads_everything(draft: NodeDraft) -> bool:
    return any(w.name == WILDCARD and w.ref == WILDCARD for w in draft.wires)


def _input_kind(cls: type[Node], name: str) -> type[Message]:
    return cls.inputs.get(name) or cls.inputs.get(WILDCARD) or Message


def _kinds_match(out_kind: type[Message], in_kind: type[Message]) -> bool:
    """The base ``Message`` on either side means "any kind"."""
    if out_kind is Message or in_kind is Message:
        return True
    return isinstance(out_kind, type) and issubclass(out_kind, in_kind)


def _kind_name(kind: type[Message]) -> str:
    return getattr(kind, "KIND", None) or kind.__name__


def _port_number(value: Any) -> int | None:
    """A port a node would bind; 0 and empty mean "pick a free one" and never clash."""
    if is_int(value) and value > 0:
        return int(value)
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value)
    return None
