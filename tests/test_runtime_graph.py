"""A running graph end to end: transports, trace hops, logs, thread budgets, the CLI run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.graph_runs import GraphRun, chain, read_jsonl

IGTFLOW = Path(sys.executable).parent / "igtflow"
LOG_RECORD = re.compile(r"\d\d:\d\d:\d\d ")  # a record's first line; tracebacks follow it


def test_tcp_transport_when_a_node_names_a_host(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    out = tmp_path / "remote.jsonl"
    run = start_graph(
        f"""
name: tcp
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: 50, width: 256, height: 256}}
  - id: remote
    uses: tests.nodes.sinks:Recorder
    host: 127.0.0.1
    inputs: {{in: src/image}}
    params: {{out: "{out}"}}
"""
    )
    (image,) = [o for o in run.nodes["src"].config.outputs if o.name == "image"]
    assert image.endpoint.startswith("tcp://127.0.0.1:")
    assert run.nodes["remote"].config.inputs[0].endpoint == image.endpoint

    records = run.wait(lambda: len(r := read_jsonl(out)) >= 5 and r, 10, "frames over tcp")
    # 128 KiB frames would go through shared memory on ipc; over tcp they travel inline.
    assert all(r["shape"] == [256, 256] and r["intact"] and not r["mapped"] for r in records)
    assert not list(run.supervisor.run_dir.glob("shm/src.image.*"))


def test_trace_has_one_hop_per_node(start_graph: Callable[[str], GraphRun], tmp_path: Path) -> None:
    out = tmp_path / "sink.jsonl"
    run = start_graph(
        f"""
name: trace
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: 50}}
  - id: first
    uses: passthrough
    inputs: {{in: src/image}}
  - id: second
    uses: passthrough
    inputs: {{in: first/out}}
  - id: sink
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: second/out}}
    params: {{out: "{out}"}}
"""
    )
    records = run.wait(lambda: len(r := read_jsonl(out)) >= 5 and r, 10, "traced messages")
    for record in records:
        trace = record["trace"]
        assert [hop[0] for hop in trace] == ["src", "first", "second"]
        (_, src_in, src_out) = trace[0]
        assert src_in == src_out, "a source's hop starts and ends when it emits"
        times = [record["stamp_ns"], *(t for hop in trace for t in hop[1:]), record["t_ns"]]
        assert times == sorted(times), f"trace times go backwards: {trace}"


def test_each_node_logs_with_its_id_to_the_run_log_folder(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    out = tmp_path / "sink.jsonl"
    run = start_graph(chain(out, rate_hz=50))
    run.wait(lambda: read_jsonl(out), 10, "messages at the sink")
    run.stop()

    logs = tmp_path / "logs"
    assert (logs / "graph.yaml").read_text() == run.graph.text
    texts = {node: (logs / f"{node}.log").read_text() for node in ("src", "relay", "sink")}
    assert "numbered source 32x32 ready" in texts["src"]
    assert f"recording to {out}" in texts["sink"]
    for node, text in texts.items():
        for line in filter(LOG_RECORD.match, text.splitlines()):
            assert line.split()[1] == node, f"{node}.log has a line of another node: {line!r}"
    # The same lines reach the supervisor's terminal, each marked with its node.
    assert any(" src INFO numbered source" in line for line in run.log_lines)
    assert any(" sink INFO recording to" in line for line in run.log_lines)


def test_thread_budget_is_set_in_each_node(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    budgets = {"lean": 1, "wide": 3}
    nodes = "".join(
        f"""
  - id: {node}
    uses: tests.nodes.budget:ThreadReport
    threads: {threads}
    params: {{rate_hz: 20, out: "{tmp_path / node}.json"}}
"""
        for node, threads in budgets.items()
    )
    run = start_graph(f"name: budgets\nnodes:{nodes}")
    reports = {
        node: run.wait(
            lambda node=node: (
                (tmp_path / f"{node}.json").exists()
                and json.loads((tmp_path / f"{node}.json").read_text())
            ),
            10,
            f"the thread report of {node}",
        )
        for node in budgets
    }
    for node, threads in budgets.items():
        report = reports[node]
        assert report["node"] == node
        assert set(report["env"].values()) == {str(threads)}, report["env"]
        assert report["env"]["OMP_NUM_THREADS"] == str(threads)
        assert report["cv2"] == threads


SYNTHETIC = Path(__file__).resolve().parents[1] / "launch" / "graphs" / "synthetic.yaml"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, dict], Path]:
    """One ``igtflow run synthetic.yaml --duration 3 --json``: exit code, rows, working folder."""
    cwd = tmp_path_factory.mktemp("synthetic")
    done = subprocess.run(
        [str(IGTFLOW), "run", str(SYNTHETIC), "--duration", "3", "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["exit_code"] == done.returncode
    return done.returncode, {row["node"]: row for row in report["nodes"]}, cwd


def test_synthetic_graph_runs(synthetic: tuple[int, dict[str, dict], Path]) -> None:
    code, rows, cwd = synthetic
    assert code == 0
    assert set(rows) == {"probe", "relay", "stats"}
    for node, row in rows.items():
        assert (row["state"], row["restarts"], row["malformed"]) == ("stopped", 0, 0), node
    assert rows["probe"]["sent"] > 30 and rows["probe"]["rate_out_hz"] > 20
    assert rows["relay"]["received"] > 30 and rows["relay"]["sent"] > 30
    assert rows["stats"]["received"] > 60, "stats reads both probe/image and relay/out"
    assert rows["stats"]["rate_in_hz"] > 40
    assert list(cwd.glob("runs/synthetic-*/stats.log"))


def test_synthetic_graph_loses_nothing(synthetic: tuple[int, dict[str, dict], Path]) -> None:
    _, rows, _ = synthetic
    for node, row in rows.items():
        assert (row["lost"], row["alarms"]) == (0, 0), node
    # The stats sink reads with `queue`: nothing may be skipped there. The relay reads `latest`,
    # which skips by design when two frames arrive while it is descheduled (both cores busy);
    # a handful is the contract, a steady loss is a fault.
    assert rows["stats"]["drops"] == 0
    assert rows["relay"]["drops"] <= max(2, rows["probe"]["sent"] // 20), rows["relay"]


def test_the_final_status_table_prints_whole_into_a_log_file(tmp_path: Path) -> None:
    # A CI log or `make demo > log` is no terminal: rich must not cut cells to 80 columns there.
    log = tmp_path / "run.log"
    with log.open("w") as sink:
        done = subprocess.run(
            [str(IGTFLOW), "run", str(SYNTHETIC), "--duration", "1"],
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=60,
        )
    text = log.read_text()
    assert done.returncode == 0, text[-3000:]
    table = [line for line in text.splitlines() if line.startswith("│")]
    assert len(table) == 3, text[-3000:]
    assert not any("…" in line for line in table), "\n".join(table)
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    assert "restarts" in header and "…" not in header, header


def test_a_background_node_runs_at_a_lower_os_priority_than_the_live_path(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    import psutil

    from igtflow.stream.threads import BACKGROUND_NICE

    run = start_graph(
        f"""
name: priorities
nodes:
  - id: live
    uses: tests.nodes.budget:ThreadReport
    params: {{out: "{tmp_path / "live"}.json"}}
  - id: view
    uses: tests.nodes.budget:ThreadReport
    priority: background
    params: {{out: "{tmp_path / "view"}.json"}}
"""
    )
    run.wait(lambda: (tmp_path / "view.json").exists(), 10, "the background node's report")
    nice = {node: psutil.Process(run.nodes[node].pid).nice() for node in ("live", "view")}
    assert nice["view"] == min(19, nice["live"] + BACKGROUND_NICE), nice
    assert run.nodes["view"].spec.priority == "background"


def test_a_node_type_may_ask_for_background_and_a_graph_may_overrule_it() -> None:
    from igtflow.launch.graph_reader import parse_graph

    text = """
name: scene
nodes:
  - id: src
    uses: synthetic-image
  - id: scene
    uses: scene3d
    inputs: {image: src/image}
  - id: scene_live
    uses: scene3d
    priority: normal
    inputs: {image: src/image}
"""
    graph = parse_graph(text, "scene.yaml")
    assert graph.node("scene").priority == "background"
    assert graph.node("scene_live").priority == "normal"
    assert graph.node("src").priority == "normal"
