"""``igtflow eval replay --recordings DIR --workers 2``: every recording of a folder replayed in
lockstep on a local Ray instance, one row each with the scores it gets alone, a damaged file one
failed row with its reason, and no Ray process left behind.

Ray starts once for the whole file (the ``bulk`` fixture, several seconds); the two replays
alone run beside it, so the file costs about one replay's start-up more than the bulk run.
The graph is the phantom's source and the segmentation network only, to keep replays short.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from igtflow.launch.samples import SAMPLES, write_sample
from tests.helpers.cli import igtflow

pytestmark = pytest.mark.slow

GRAPH = """\
name: seg-eval
nodes:
  - id: probe
    uses: phantom-us
    params: {seed: 1001}
  - id: seg
    uses: segment
    inputs: {image: {from: probe/image, policy: queue}}
    params: {model: us-seg}
"""
FRAMES = {"short.mcap": 3, "longer.mcap": 6}
# name → what its failed row must say
DAMAGED = {"damaged.mcap": "not an MCAP recording", "cut.mcap": "no readable message in it"}
REPLAY_TIMEOUT_S = 240


@dataclass
class Bulk:
    report: dict[str, Any]
    returncode: int
    stderr: str
    alone: dict[str, dict[str, Any]]  # `igtflow eval replay REC --json` of each recording
    leftovers: list[str]  # processes of the bulk run still alive after it exited


def _igtflow_popen(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "igtflow", *args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _processes_marked(mark: str) -> list[str]:
    """Processes whose environment carries ``mark`` (the bulk run's and all it started)."""
    found = []
    for process in psutil.process_iter(["pid", "name"]):
        try:
            if process.environ().get("IGTFLOW_TEST_MARK") == mark:
                found.append(f"{process.info['pid']} {process.info['name']}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _leftovers(mark: str, wait_s: float = 10.0) -> list[str]:
    deadline = time.monotonic() + wait_s
    while (found := _processes_marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


@pytest.fixture(scope="module")
def bulk(tmp_path_factory: pytest.TempPathFactory) -> Bulk:
    root = tmp_path_factory.mktemp("bulk")
    folder = root / "recordings"
    for name, frames in FRAMES.items():
        write_sample(replace(SAMPLES[0], file=name, frames=frames), folder)
    (folder / "damaged.mcap").write_bytes(b"this was a recording once" * 100)
    (folder / "cut.mcap").write_bytes((folder / "short.mcap").read_bytes()[:200])
    graph = root / "seg-eval.yaml"
    graph.write_text(GRAPH)
    mark = uuid.uuid4().hex
    # Ray's socket paths must stay under 108 bytes: a short folder of its own, not pytest's.
    ray_tmp = tempfile.mkdtemp(prefix="igtr-", dir="/tmp")
    env = {**os.environ, "IGTFLOW_TEST_MARK": mark, "RAY_TMPDIR": ray_tmp}
    many = _igtflow_popen(
        "eval", "replay", "--recordings", str(folder), "--workers", "2", "--graph", str(graph),
        "--log-dir", str(root / "logs"), "--json", env=env,
    )  # fmt: skip
    alone = {}
    for name in FRAMES:
        alone[name] = _igtflow_popen(
            "eval", "replay", str(folder / name), "--graph", str(graph), "--json",
            "--log-dir", str(root / f"alone-{name}"), env=dict(os.environ),
        )  # fmt: skip
    try:
        stdout, stderr = many.communicate(timeout=REPLAY_TIMEOUT_S)
        scores = {}
        for name, process in alone.items():
            out, err = process.communicate(timeout=REPLAY_TIMEOUT_S)
            assert process.returncode == 0, err[-3000:]
            scores[name] = json.loads(out)
    finally:
        for process in (many, *alone.values()):
            if process.poll() is None:
                process.kill()
    leftovers = _leftovers(mark)
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert stdout.strip(), stderr[-3000:]
    return Bulk(json.loads(stdout), many.returncode, stderr, scores, leftovers)


def _rows_by_name(bulk: Bulk) -> dict[str, dict[str, Any]]:
    return {Path(row["recording"]).name: row for row in bulk.report["rows"]}


def test_every_recording_is_one_row_with_the_scores_it_gets_alone(bulk: Bulk) -> None:
    rows = _rows_by_name(bulk)
    assert sorted(rows) == sorted([*FRAMES, *DAMAGED])
    assert bulk.report["workers"] == 2 and bulk.report["ray"] == "local"
    for name, frames in FRAMES.items():
        row, alone = rows[name], bulk.alone[name]
        assert row["ok"] and row["reason"] is None, row
        assert row["frames"] == alone["frames"] == frames
        assert row["dice"] == alone["dice"], name
        assert set(row["dice"]["seg/labels"]) == {"organ", "vessel", "lesion"}
        assert row["threads"] == 1  # the task's thread budget reached the replay
        assert (Path(row["log_dir"]) / "replay-eval.mcap").is_file()


def test_a_damaged_recording_is_one_failed_row_with_its_reason(bulk: Bulk) -> None:
    rows = _rows_by_name(bulk)
    for name, reason in DAMAGED.items():
        assert not rows[name]["ok"]
        assert name in rows[name]["reason"] and reason in rows[name]["reason"], rows[name]
    assert bulk.report["ok"] == len(FRAMES) and bulk.report["failed"] == len(DAMAGED)
    assert bulk.returncode == 1  # some row failed; the others were still scored


def test_ray_leaves_no_process_behind(bulk: Bulk) -> None:
    assert bulk.leftovers == [], bulk.leftovers


def test_bulk_options_are_refused_before_ray_starts(tmp_path: Path) -> None:
    missing = igtflow("eval", "replay", "--recordings", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "nowhere: no such folder" in missing.stderr
    empty = igtflow("eval", "replay", "--recordings", str(tmp_path))
    assert empty.returncode == 2 and "no recordings (*.mcap)" in empty.stderr
    alone = igtflow("eval", "replay", "--workers", "2")
    assert alone.returncode == 2 and "apply to --recordings DIR" in alone.stderr
    both = igtflow("eval", "replay", "--recordings", str(tmp_path), "--workers", "2",
                   "--address", "auto")  # fmt: skip
    assert both.returncode == 2 and "leave out one of them" in both.stderr
    (tmp_path / "case.mcap").write_bytes(b"")
    nobody = igtflow("eval", "replay", "--recordings", str(tmp_path), "--address", "127.0.0.1:1")
    assert nobody.returncode == 2 and "nothing answers at 127.0.0.1:1" in nobody.stderr
