"""``igtflow bench soak``: the US guidance graph with a fault injected (seed 4: the recorder is
killed first), real processes and a real OpenIGTLink client; the recorder comes back, writes a
new part, and nothing is lost outside the fault window (a short run; figures come from the full
soak)."""

from __future__ import annotations

import json

from tests.helpers.cli import igtflow


def test_soak_survives_a_killed_recorder_and_loses_nothing_outside_it() -> None:
    done = igtflow("bench", "soak", "--minutes", "0.35", "--seed", "4", "--json", timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["faults"] and report["faults"][0]["node"] == "rec"
    assert report["unrecovered"] == [] and report["failed"] == []
    assert report["restarts_by_node"].get("rec") == 1  # back once, not crashing in a loop
    assert report["recording_parts"] >= 2
    assert report["frames_lost_outside_faults"] == 0
    assert report["faults"][0]["recovery_ms"] < 30_000
    assert report["p99_fault_free_ms"] is not None
