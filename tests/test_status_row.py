"""Status rows: what the live table, ``--json`` and the benches read about each node."""

from __future__ import annotations

import json
import os

from igtflow.launch.graph import NodeSpec
from igtflow.launch.status_row import NodeRun, NodeState, status_row
from igtflow.launch.status_table import STATE_STYLE, cpu_budget_warning, status_table
from igtflow.stream.runtime import NodeConfig

KEYS = [
    "node", "uses", "state", "pid", "restarts", "rate_in_hz", "rate_out_hz", "age_p50_ms",
    "age_p99_ms", "received", "sent", "drops", "lost", "malformed", "send_drops", "cpu_percent",
    "cpu_ms_per_frame", "alarms", "last_alarm", "exit_code", "restart_gap_ms",
    "restart_gap_frames", "restart_gaps", "files",
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


def test_cpu_per_frame_is_cpu_time_over_the_messages_taken_in_or_a_sources_sent() -> None:
    seg, source = run(), run("probe")
    seg.update_rates({"received": 0, "sent": 0, "cpu_s": 0.0}, 0.0)
    seg.update_rates({"received": 30, "sent": 60, "cpu_s": 0.15}, 1.0)
    source.update_rates({"received": 0, "sent": 0, "cpu_s": 0.0}, 0.0)
    source.update_rates({"received": 0, "sent": 20, "cpu_s": 0.04}, 1.0)
    assert status_row(seg)["cpu_ms_per_frame"] == 5.0  # 150 ms over 30 frames in
    assert status_row(source)["cpu_ms_per_frame"] == 2.0
    assert status_row(run())["cpu_ms_per_frame"] is None  # nothing measured yet


def test_a_graph_using_more_cpu_than_the_machine_has_is_said_under_the_table() -> None:
    rows = [status_row(run(n)) for n in ("seg", "track", "scene")]
    for row, cpu in zip(rows, (95.0, 80.0, 40.0), strict=True):
        row["cpu_percent"] = cpu
    warning = cpu_budget_warning(rows, cores=2)
    assert (
        "215 %" in warning and "2 core" in warning and warning.index("seg") < warning.index("track")
    )
    assert cpu_budget_warning(rows, cores=4) == ""
    rows[0]["cpu_percent"] = 100.0 * (os.cpu_count() or 1)  # over whatever runs the test
    assert "heaviest seg" in str(status_table("g", rows, 1.0).caption)
