"""The wiring plan: what each node process is told about its sockets, from the graph alone.

No process or socket: graphs are built from specs, and tcp ports come from a stand-in picker.
"""

from __future__ import annotations

from pathlib import Path

from igtflow.launch.graph import Graph, InputSpec, NodeSpec, Policy
from igtflow.launch.wiring_plan import LOCKSTEP_DEPTH, wiring_plan
from igtflow.stream.transport import ipc_endpoint

RUN_DIR = Path("/run/igtflow-test")
CONTROL = f"ipc://{RUN_DIR}/control.sock"


def node(node_id: str, *inputs: InputSpec, host: str | None = None, **params: object) -> NodeSpec:
    return NodeSpec(
        id=node_id,
        uses="test",
        import_path=f"tests.nodes.{node_id}:Node",
        params=dict(params),
        inputs=inputs,
        host=host,
        outputs=("out", "status"),
    )


def reads(name: str, ref: str, policy: Policy = "latest", depth: int = 1) -> InputSpec:
    producer, _, output = ref.partition("/")
    return InputSpec(name, producer, output, policy, depth)


def graph(*nodes: NodeSpec) -> Graph:
    return Graph("plan", "<test>", "", nodes)


def no_tcp(host: str) -> int:
    raise AssertionError(f"a graph on one host asked for a tcp port on {host}")


def test_every_node_gets_a_config_in_file_order_with_its_params_and_threads() -> None:
    spec = node("src", rate_hz=30)
    configs = wiring_plan(graph(spec, node("sink", reads("in", "src/out"))), RUN_DIR, CONTROL)
    assert list(configs) == ["src", "sink"]
    src = configs["src"]
    assert (src.node_id, src.import_path, src.run_dir, src.control) == (
        "src",
        "tests.nodes.src:Node",
        str(RUN_DIR),
        CONTROL,
    )
    assert src.params == {"rate_hz": 30} and src.params is not spec.params
    assert src.threads == spec.threads and not src.lockstep


def test_outputs_on_one_host_are_sockets_in_the_run_dir_that_their_readers_connect_to() -> None:
    g = graph(node("src"), node("a", reads("in", "src/out")), node("b", reads("in", "src/out")))
    configs = wiring_plan(g, RUN_DIR, CONTROL, pick_port=no_tcp)
    out = configs["src"].outputs[0]
    assert (out.name, out.topic) == ("out", "src/out")
    assert out.endpoint == ipc_endpoint(RUN_DIR, "src", "out")
    assert out.subscribers == 2
    assert [o.name for o in configs["src"].outputs] == ["out", "status"]
    assert configs["src"].outputs[1].subscribers == 0
    for reader in ("a", "b"):
        (wire,) = configs[reader].inputs
        assert (wire.name, wire.topic, wire.endpoint) == ("in", "src/out", out.endpoint)


def test_an_output_keeps_as_many_messages_as_its_deepest_queue_reader_waits_for() -> None:
    g = graph(
        node("src"),
        node("live", reads("in", "src/out")),
        node("rec", reads("in", "src/out", "queue", 256)),
    )
    out = wiring_plan(g, RUN_DIR, CONTROL)["src"].outputs[0]
    assert out.sndhwm == 256
    shallow = graph(node("src"), node("rec", reads("in", "src/out", "queue", 4)))
    assert wiring_plan(shallow, RUN_DIR, CONTROL)["src"].outputs[0].sndhwm == 16


def test_inputs_keep_their_policy_depth_and_budget_when_live() -> None:
    g = graph(node("src"), node("rec", reads("in", "src/out", "queue", 64)))
    (wire,) = wiring_plan(g, RUN_DIR, CONTROL)["rec"].inputs
    assert (wire.policy, wire.depth, wire.budget_mib) == ("queue", 64, 256)


def test_lockstep_makes_every_input_a_deep_lossless_queue() -> None:
    g = graph(
        node("src"),
        node("live", reads("in", "src/out")),
        node("deep", reads("in", "src/out", "queue", 5000)),
    )
    configs = wiring_plan(g, RUN_DIR, CONTROL, lockstep=True)
    assert all(config.lockstep for config in configs.values())
    (live,) = configs["live"].inputs
    (deep,) = configs["deep"].inputs
    assert (live.policy, live.depth) == ("queue", LOCKSTEP_DEPTH)
    assert (deep.policy, deep.depth) == ("queue", 5000), "a deeper queue stays deeper"


def test_an_output_read_on_another_host_is_tcp_on_its_producers_host() -> None:
    asked: list[str] = []

    def port(host: str) -> int:
        asked.append(host)
        return 7000 + len(asked)

    g = graph(
        node("src", host="10.0.0.2"),
        node("here", reads("in", "src/out")),
        node("local", reads("in", "here/out")),
    )
    configs = wiring_plan(g, RUN_DIR, CONTROL, pick_port=port)
    src_out, src_status = configs["src"].outputs
    assert src_out.endpoint == "tcp://10.0.0.2:7001"
    assert src_status.endpoint == "tcp://10.0.0.2:7002", "a node on another host talks tcp"
    assert configs["here"].inputs[0].endpoint == src_out.endpoint
    here_out = configs["here"].outputs[0]
    assert here_out.endpoint == ipc_endpoint(RUN_DIR, "here", "out"), "both ends on this host"
    assert asked == ["10.0.0.2", "10.0.0.2"]


def test_every_host_gives_a_tcp_edge_the_same_port_from_a_shared_base() -> None:
    from igtflow.launch.wiring_plan import sequential_ports

    graph = Graph(
        "split",
        "g.yaml",
        "",
        (
            node("src", host="10.0.0.1"),
            node("sink", InputSpec("in", "src", "out"), host="10.0.0.2"),
        ),
    )
    plans = [
        wiring_plan(graph, Path("/run"), "ipc://c", pick_port=sequential_ports(47300)) for _ in "ab"
    ]
    ports = [{o.name: o.endpoint for o in plan["src"].outputs} for plan in plans]
    assert ports[0] == ports[1]
    assert ports[0]["out"] == "tcp://10.0.0.1:47300"
    assert plans[1]["sink"].inputs[0].endpoint == "tcp://10.0.0.1:47300"
