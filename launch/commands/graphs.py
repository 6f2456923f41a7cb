"""``igtflow validate`` and ``igtflow nodes``: check a graph file, list the node types to use."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from igtflow.launch.commands.options import GraphArg, JsonOpt, SetOpt
from igtflow.launch.commands.terminal import err, out
from igtflow.report import print_json


def validate(
    graph: GraphArg,
    set_: SetOpt = None,
    json_: JsonOpt = False,
    import_nodes: Annotated[
        bool,
        typer.Option(
            "--import/--no-import",
            help="import the module of each 'uses: package.module:Class' node to check its "
            "parameters and wiring; --no-import checks everything else and lists those nodes "
            "as not checked",
        ),
    ] = True,
) -> None:
    """Check a graph file without starting anything; problems are printed as file:line: message.

    A node written 'uses: package.module:Class' is checked by importing its module, which runs
    that module's code: validate a graph from someone you do not trust with --no-import.
    """
    from igtflow.launch.graph_issues import GraphError
    from igtflow.launch.graph_reader import load_graph

    try:
        spec = load_graph(graph, set_ or [], import_nodes)
    except GraphError as exc:
        if json_:
            print_json({"ok": False, "issues": [vars(i) for i in exc.issues]})
        else:
            for issue in exc.issues:
                err.print(str(issue), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    queues = [
        {
            "node": n.id,
            "input": i.name,
            "from": i.source,
            "depth": i.depth,
            "budget_mib": i.budget_mib,
        }
        for n in spec.nodes
        for i in n.inputs
        if i.policy == "queue"
    ]
    curve = spec.curve
    security = {
        "curve_hosts": sorted(curve.hosts) if curve is not None else [],
        "curve_allowed_keys": len(curve.allow) if curve is not None else 0,
        "insecure": spec.insecure,
    }
    if json_:
        nodes = [n.id for n in spec.nodes]
        print_json(
            {
                "ok": True,
                "name": spec.name,
                "nodes": nodes,
                "queues": queues,
                "unchecked": spec.unchecked,
                "security": security,
            }
        )
        return
    for note in spec.unchecked:
        err.print(note, style="yellow", highlight=False, markup=False, soft_wrap=True)
    partly = f", {len(spec.unchecked)} not checked" if spec.unchecked else ""
    out.print(f"{graph}: ok — graph '{spec.name}', {len(spec.nodes)} nodes{partly}")
    if curve is not None:
        out.print(
            f"  tcp edges: CURVE, hosts {', '.join(security['curve_hosts'])}; "
            f"{security['curve_allowed_keys']} client keys allowed",
            highlight=False,
            markup=False,
        )
    elif spec.insecure:
        out.print("  tcp edges: plain tcp allowed off loopback (insecure: true)", style="yellow")
    for q in queues:
        # What a queue may keep back: depth messages, and shared memory at its producer.
        out.print(
            f"  queue {q['node']}.{q['input']} ← {q['from']}: depth {q['depth']}, "
            f"budget {q['budget_mib']} MiB",
            highlight=False,
            markup=False,
        )


def nodes(json_: JsonOpt = False) -> None:
    """List every node type with its inputs, outputs and parameters (type, default, doc)."""
    from igtflow.launch.registry import load_node_class, node_types
    from igtflow.stream.node import all_outputs, node_params, node_summary

    catalogue = []
    for name, node_type in node_types().items():
        cls = load_node_class(name)
        catalogue.append(
            {
                "name": name,
                "class": node_type.path,
                "summary": node_summary(cls),
                "inputs": {k: v.KIND for k, v in cls.inputs.items()},
                "outputs": {k: v.KIND for k, v in all_outputs(cls).items()},
                "params": [
                    {
                        "name": p.name,
                        "type": p.type_name,
                        "default": None if p.required else p.default,
                        "required": p.required,
                        "doc": p.doc,
                    }
                    for p in node_params(cls).values()
                ],
            }
        )
    if json_:
        print_json(catalogue)
        return
    for entry in catalogue:
        table = Table(
            title=f"[bold]{entry['name']}[/] — {entry['summary']}",
            title_justify="left",
            caption=(
                f"inputs: {', '.join(f'{k}:{v}' for k, v in entry['inputs'].items()) or '-'}   "
                f"outputs: {', '.join(f'{k}:{v}' for k, v in entry['outputs'].items())}"
            ),
            caption_justify="left",
        )
        for column in ("param", "type", "default", "doc"):
            table.add_column(column)
        for p in entry["params"]:
            default = "(required)" if p["required"] else repr(p["default"])
            table.add_row(p["name"], p["type"], default, p["doc"])
        out.print(table)
