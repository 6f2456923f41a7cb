"""Parameters carry their ranges and choices: ``validate`` refuses a value a node would die on,
at its line, naming what is allowed; ``igtflow nodes`` shows the same bounds."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from igtflow.launch.graph_issues import GraphError
from igtflow.launch.graph_reader import parse_graph
from igtflow.launch.registry import load_node_class, node_types
from igtflow.stream.node import node_params
from tests.helpers.cli import igtflow as run_igtflow


def igtflow(*args: str) -> subprocess.CompletedProcess[str]:
    return run_igtflow(*args, timeout=60)


def test_validate_refuses_values_that_would_crash_the_node(tmp_path: Path) -> None:
    graph = tmp_path / "bad.yaml"
    graph.write_text(
        "name: bad\n"
        "nodes:\n"
        "  - id: src\n"
        "    uses: synthetic-image\n"
        "    params:\n"
        "      dtype: int128\n"  # 6
        "      width: -5\n"  # 7
        "      rate_hz: -30\n"  # 8
        "  - id: srv\n"
        "    uses: igtl-server\n"
        "    inputs: {'*': {from: '*'}}\n"
        "    params: {port: 99999}\n"  # 12
    )
    done = igtflow("validate", str(graph))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert any("bad.yaml:6: " in x and "'uint8', 'uint16', 'float32'" in x for x in lines)
    assert any("bad.yaml:7: " in x and "int 1..16384, got -5" in x for x in lines)
    assert any("bad.yaml:8: " in x and "float 0..10000, got -30" in x for x in lines)
    assert any("bad.yaml:12: " in x and "int 0..65535, got 99999" in x for x in lines)


@pytest.mark.parametrize(
    ("uses", "param", "value", "allowed"),
    [
        ("phantom-us", "probe", "convex", "'linear', 'curvilinear'"),
        ("phantom-us", "breathing_amplitude_mm", 40, "float 0..30"),
        ("phantom-fluoro", "dose", 0, "float > 0"),
        ("overlay", "fill_alpha", 1.5, "float 0..1"),
        ("replay", "rate", 20, "float 0.1..10"),
        ("stats", "log_every_s", -1, "float >= 0"),
    ],
)
def test_out_of_range_values_name_the_allowed_range(
    uses: str, param: str, value: object, allowed: str
) -> None:
    extra = "\n      path: rec.mcap" if uses == "replay" else ""
    text = f"nodes:\n  - id: n\n    uses: {uses}\n    params:\n      {param}: {value}{extra}\n"
    with pytest.raises(GraphError) as caught:
        parse_graph(text, "g.yaml")
    issue = next(i for i in caught.value.issues if repr(param) in i.message)
    assert issue.line == 5 and allowed in issue.message


def test_igtflow_nodes_shows_the_constraints() -> None:
    done = igtflow("nodes", "--json")
    types = {
        (node["name"], p["name"]): p["type"]
        for node in json.loads(done.stdout)
        for p in node["params"]
    }
    assert types["synthetic-image", "width"] == "int 1..16384"
    assert types["synthetic-image", "dtype"] == "'uint8' | 'uint16' | 'float32'"
    assert types["igtl-server", "port"] == "int 0..65535"
    assert types["phantom-us", "rate_hz"] == "float 0..10000"


def test_every_rate_size_and_duration_of_a_builtin_node_is_bounded() -> None:
    unbounded = []
    for name in node_types():
        for param in node_params(load_node_class(name)).values():
            numeric = param.type_name in ("int", "float")
            if numeric and param.name.endswith(("_hz", "_s", "_ms", "width", "height", "port")):
                unbounded.append(f"{name}.{param.name}")
    assert unbounded == []


def test_a_port_in_use_is_said_once_without_restarts_and_the_run_fails(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        graph = tmp_path / "busy.yaml"
        graph.write_text(
            "name: busy\nnodes:\n"
            "  - id: src\n    uses: synthetic-image\n    params: {width: 32, height: 32}\n"
            f"  - id: srv\n    uses: igtl-server\n    inputs: {{image: src/image}}\n"
            f"    params: {{port: {port}}}\n"
        )
        done = igtflow("run", str(graph), "--duration", "1", "--json", "--log-dir", str(tmp_path))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    srv = next(row for row in report["nodes"] if row["node"] == "srv")
    assert srv["restarts"] == 0 and srv["state"] == "failed"
    said = [e for e in report["events"] if "already in use" in e]
    assert len(said) == 1 and "not restarting" in said[0] and "another port" in said[0]
    assert done.stderr.count("already in use") <= 2  # the node's log line, the supervisor's


def test_a_missing_file_stops_its_source_for_good(tmp_path: Path) -> None:
    graph = tmp_path / "missing.yaml"
    graph.write_text(
        "name: missing\nnodes:\n"
        f"  - id: src\n    uses: video\n    params: {{path: {tmp_path / 'nope.mp4'}, rate_hz: 5}}\n"
    )
    done = igtflow("run", str(graph), "--duration", "2", "--json", "--log-dir", str(tmp_path))
    assert done.returncode != 0
    report = json.loads(done.stdout)
    assert report["nodes"][0]["restarts"] == 0
    assert any("no such file" in e and "not restarting" in e for e in report["events"])


def test_a_recording_gone_before_its_replay_starts_is_a_permanent_fault(tmp_path: Path) -> None:
    # validate reads the recording first; this is the file that vanished before the node started
    from igtflow.stream.node import PermanentError
    from igtflow.stream.nodes.replay import Replay
    from igtflow.stream.testing import NodeHarness

    with pytest.raises(PermanentError, match="readable recording"):
        NodeHarness(Replay, {"path": str(tmp_path / "gone.mcap")}, node_id="probe")
