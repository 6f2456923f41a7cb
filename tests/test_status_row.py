"""Status rows: what the live table, ``--json`` and the benches read about each node."""

from __future__ import annotations

import json

from igtflow.launch.graph import NodeSpec
from igtflow.launch.status_row import NodeRun, NodeState, status_row
from igtflow.launch.status_table import STATE_STYLE
from igtflow.stream.runtime import NodeConfig

KEYS = [
    "node", "uses", "state", "pid", "restarts", "rate_in_hz", "rate_out_hz", "age_p50_ms",
    "age_p99_ms", "received", "sent", "drops", "lost", "malformed", "send_drops", "cpu_percent",
    "alarms", "last_alarm", "exit_code", "restart_gap_ms", "restart_gap_frames", "restart_gaps",
    "files",
]  # fmt: skip


def run(node_id: str = "seg") -> NodeRun:
    spec = NodeSpec(id=node_id, uses="segment", import_path="x:Y", params={})
    return NodeRun(spec=spec, config=NodeConfig(node_id, "x:Y", "/tmp", "ipc://c"))


def test_a_row_has_every_key_in_order_and_its_state_as_plain_text() -> None:
    node = run()
    node.state = NodeState.RESTARTING
    row = status_row(node)
    assert list(row) == KEYS
    assert type(row["state"]) is str and row["state"] == "restarting"
    assert json.loads(json.dumps(row))["state"] == "restarting"


def test_a_state_compares_formats_and_serialises_as_its_text() -> None:
    assert NodeState.FAILED == "failed" and NodeState("failed") is NodeState.FAILED
    assert f"{NodeState.FAILED}" == str(NodeState.FAILED) == "failed"
    assert json.dumps(NodeState.FAILED) == '"failed"'
    assert STATE_STYLE.get("failed") == STATE_STYLE[NodeState.FAILED] == "bold red"


def test_restart_gaps_count_the_longest_topic_per_restart() -> None:
    node = run()
    node.gaps = [
        {"restart": 1, "topic": "seg/out", "gap_ms": 120.0, "frames": 3},
        {"restart": 1, "topic": "seg/status", "gap_ms": 80.0, "frames": 0},
        {"restart": 2, "topic": "seg/out", "gap_ms": 40.0, "frames": 1},
    ]
    row = status_row(node)
    assert (row["restart_gap_ms"], row["restart_gap_frames"]) == (160.0, 4)


def test_files_are_listed_with_their_last_state() -> None:
    node = run()
    node.files = {"/rec/a.mcap": "open"}
    assert status_row(node)["files"] == [{"path": "/rec/a.mcap", "state": "open"}]
