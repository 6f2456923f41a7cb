"""The wiring plan: which endpoint each output binds, and the config each node process starts with.

A pure function of the graph (and the run directory), apart from picking free tcp ports for
outputs read on another host; ``pick_port`` stands in for that, so the plan is tested without a
process or a socket. The supervisor writes each config as the node's JSON and spawns it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from igtflow.launch.graph import Graph, NodeSpec
from igtflow.ports import free_port
from igtflow.stream.runtime import NodeConfig
from igtflow.stream.transport import QUEUE, InputConfig, OutputConfig, ipc_endpoint

LOCKSTEP_DEPTH = 1024


def wiring_plan(
    graph: Graph,
    run_dir: Path,
    control_endpoint: str,
    lockstep: bool = False,
    pick_port: Callable[[str], int] = free_port,
) -> dict[str, NodeConfig]:
    """One config per node, in file order.

    An output read only on this host is a unix socket in ``run_dir``; one that crosses hosts is
    tcp on its producer's host, under CURVE when the graph has a ``curve:`` section (the producer
    serves with its host's key, each reader connects with its own). ``lockstep`` makes every
    input a deep lossless queue.
    """

    def endpoint(producer: NodeSpec, output: str) -> str:
        hosts = {producer.host} | {c.host for c, _ in graph.consumers(producer.id, output)}
        if hosts == {None}:
            return ipc_endpoint(run_dir, producer.id, output)
        bind_host = producer.host or "127.0.0.1"
        return f"tcp://{bind_host}:{pick_port(bind_host)}"

    endpoints: dict[tuple[str, str], str] = {}
    outputs: dict[str, list[OutputConfig]] = {}
    for spec in graph.nodes:
        outputs[spec.id] = []
        for name in spec.outputs:
            consumers = graph.consumers(spec.id, name)
            address = endpoint(spec, name)
            endpoints[(spec.id, name)] = address
            depth = max([i.depth for _, i in consumers if i.policy == QUEUE], default=0)
            outputs[spec.id].append(
                OutputConfig(
                    name=name,
                    topic=f"{spec.id}/{name}",
                    endpoint=address,
                    subscribers=len(consumers),
                    sndhwm=max(16, depth),
                    **_server_keys(graph, spec, address),
                )
            )
    configs: dict[str, NodeConfig] = {}
    for spec in graph.nodes:
        inputs = [
            InputConfig(
                name=i.name,
                topic=f"{i.node}/{i.output}",
                endpoint=endpoints[(i.node, i.output)],
                policy=QUEUE if lockstep else i.policy,
                depth=max(i.depth, LOCKSTEP_DEPTH) if lockstep else i.depth,
                budget_mib=i.budget_mib,
                **_client_keys(graph, spec, i.node, endpoints[(i.node, i.output)]),
            )
            for i in spec.inputs
        ]
        configs[spec.id] = NodeConfig(
            node_id=spec.id,
            import_path=spec.import_path,
            run_dir=str(run_dir),
            control=control_endpoint,
            params=dict(spec.params),
            outputs=outputs[spec.id],
            inputs=inputs,
            threads=spec.threads,
            priority=spec.priority,
            lockstep=lockstep,
        )
    return configs


def _server_keys(graph: Graph, producer: NodeSpec, address: str) -> dict[str, Any]:
    """The CURVE server key and allow-list of a tcp output; none on a unix socket or without
    ``curve:``."""
    if graph.curve is None or not address.startswith("tcp://") or producer.host is None:
        return {}
    return {
        "curve_secret": graph.curve.secret_file(producer.host),
        "curve_allow": graph.curve.allow,
    }


def _client_keys(graph: Graph, reader: NodeSpec, producer_id: str, address: str) -> dict[str, str]:
    """The CURVE client keys of ``reader`` on a tcp input (validation made sure both hosts have
    a key pair); none on a unix socket or without ``curve:``."""
    producer = graph.node(producer_id)
    if graph.curve is None or not address.startswith("tcp://"):
        return {}
    if reader.host is None or producer.host is None:
        return {}
    return {
        "curve_secret": graph.curve.secret_file(reader.host),
        "curve_server": graph.curve.public_file(producer.host),
    }


def sequential_ports(base: int) -> Callable[[str], int]:
    """``base``, ``base + 1``, … in the order the plan asks: the same graph gives every host the
    same port for each tcp edge, where free ports picked on each host would differ."""
    count = 0

    def pick(host: str) -> int:
        nonlocal count
        count += 1
        return base + count - 1

    return pick
