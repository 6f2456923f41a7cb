"""``igtflow bench registration``: the command runs both ICPs on the same points and reports the
keys the README quotes (a tiny run; the figures come from the full bench)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.cli import igtflow


def test_bench_registration_command_reports_both_methods(tmp_path: Path) -> None:
    saved = tmp_path / "registration.json"
    done = igtflow(
        "bench", "registration", "--points", "800", "--repeats", "2", "--json",
        "--output", str(saved),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert json.loads(saved.read_text()) == report
    for key in ("icp_ms", "icp_open3d_ms"):
        assert 0 < report[key]["p50_ms"] < 10_000, key
    again = igtflow("bench", "registration", "--points", "800", "--output", str(saved))
    assert again.returncode == 2  # an existing report is refused before the run
