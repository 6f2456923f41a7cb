"""Validating someone else's graph: ``--no-import`` runs none of its code, and size is capped."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from igtflow.launch.graph_reader import MAX_NODES
from tests.helpers.cli import igtflow as run_igtflow


def igtflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_igtflow(*args, timeout=60, cwd=cwd, env={**os.environ, "PYTHONPATH": str(cwd)})


def test_no_import_checks_the_graph_without_running_its_modules(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    (tmp_path / "strangers.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    graph = tmp_path / "theirs.yaml"
    graph.write_text(
        "name: theirs\nnodes:\n"
        "  - id: src\n    uses: synthetic-image\n"
        "  - id: odd\n    uses: strangers:Thing\n    inputs: {image: src/image}\n"
    )
    done = igtflow("validate", "--no-import", str(graph), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    assert json.loads(done.stdout)["unchecked"] == [
        f"{graph}:6: node 'odd' not checked: would import 'strangers'"
    ]
    # Built-in types and wiring are still checked in full.
    graph.write_text(graph.read_text().replace("uses: synthetic-image", "uses: synthetic-imag"))
    done = igtflow("validate", "--no-import", str(graph), cwd=tmp_path)
    assert done.returncode == 2 and "did you mean 'synthetic-image'" in done.stderr
    assert not marker.exists()
    # Without the flag the module is imported, as the help says.
    igtflow("validate", str(graph), cwd=tmp_path)
    assert marker.exists()


def test_validate_help_warns_that_checking_imports_node_modules(tmp_path: Path) -> None:
    done = igtflow("validate", "--help", cwd=tmp_path)
    assert "--no-import" in done.stdout and "runs" in done.stdout


def test_a_graph_past_the_node_cap_is_refused_quickly(tmp_path: Path) -> None:
    graph = tmp_path / "huge.yaml"
    nodes = "".join(f"  - id: n{i}\n    uses: synthetic-image\n" for i in range(MAX_NODES + 1))
    graph.write_text("name: huge\nnodes:\n" + nodes)
    started = time.monotonic()
    done = igtflow("validate", str(graph), cwd=tmp_path)
    assert time.monotonic() - started < 30  # a whole process on a shared machine
    assert done.returncode == 2
    assert f"huge.yaml:2: the graph has {MAX_NODES + 1} nodes, more than the {MAX_NODES}" in (
        done.stderr
    )
