"""A node killed mid-run costs a counted, recorded gap, never a silent hole or a seq that wraps.

Each test runs ``igtflow run --json`` on source → relay → recorder as real processes, kills one
node with SIGKILL once the recording flows, lets the supervisor restart it, stops the run with
Ctrl-C and then checks the summary, the files and ``igtflow inspect`` against each other.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import psutil
import pytest
from mcap.reader import make_reader

from tests.helpers.graph_runs import wait_until

IGTFLOW = Path(sys.executable).parent / "igtflow"
RATE_HZ = 30

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.access("/dev/shm", os.W_OK),
    reason="run directories live on Linux tmpfs (/dev/shm)",
)


def graph(out: Path) -> str:
    return f"""
name: gaps
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: {RATE_HZ}, width: 32, height: 32}}
  - id: relay
    uses: passthrough
    inputs: {{in: src/image}}
  - id: rec
    uses: record
    inputs: {{"*": {{from: "*", policy: queue, depth: 256}}}}
    params: {{path: "{out}"}}
"""


def node_pid(cli: subprocess.Popen, node_id: str) -> int | None:
    """The pid of the live process running ``node_id`` (its config file is ``<id>.json``)."""
    for child in psutil.Process(cli.pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and any(
                a.endswith(f"/{node_id}.json") for a in child.cmdline()
            ):
                return child.pid
        except psutil.NoSuchProcess:
            continue
    return None


def recorded_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.parent.glob("*.mcap"))


def run_and_kill(tmp_path: Path, victim: str) -> tuple[dict[str, Any], Path]:
    """Run the graph, SIGKILL ``victim`` mid-run, stop once it records again; the --json."""
    out = tmp_path / "rec" / "run.mcap"
    (tmp_path / "graph.yaml").write_text(graph(out))
    stdout = tmp_path / "run.json"
    with stdout.open("wb") as sink, (tmp_path / "run.err").open("wb") as err:
        cli = subprocess.Popen(
            [str(IGTFLOW), "run", "graph.yaml", "--json", "--log-dir", "logs"],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=err,
        )
    try:
        wait_until(lambda: out.exists() and recorded_bytes(out) > 20_000, 20, "a recording")
        old = node_pid(cli, victim)
        assert old is not None
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: node_pid(cli, victim) not in (None, old), 15, "a restart")
        new = node_pid(cli, victim)
        after = recorded_bytes(out)
        wait_until(lambda: recorded_bytes(out) > after + 20_000, 15, "recording after it")
        assert node_pid(cli, victim) == new, "the restarted node died again"
        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=15) == 0, (tmp_path / "run.err").read_text()[-2000:]
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    return json.loads(stdout.read_text()), out


def messages(paths: list[Path]) -> dict[str, list[tuple[int, int]]]:
    """``topic → [(seq, stamp_ns)]`` in file order, read by the stock reader (closed files)."""
    found: dict[str, list[tuple[int, int]]] = {}
    for path in paths:
        with path.open("rb") as file:
            for _, channel, message in make_reader(file).iter_messages(log_time_order=False):
                found.setdefault(channel.topic, []).append((message.sequence, message.publish_time))
    return found


def inspect(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [str(IGTFLOW), "inspect", str(path), "--json"], capture_output=True, check=True
    )
    return json.loads(done.stdout)


def check_files_and_seq(report: dict[str, Any], out: Path, parts: int) -> list[Path]:
    """Every file is listed, closed (or recovered), readable by the stock reader; seq per topic
    rises strictly across restarts and parts, and inspect sees no wrap-around."""
    listed = [Path(f["path"]) for f in report["files"]]
    assert len(listed) == parts
    assert sorted(listed) == sorted(out.parent.glob("*.mcap")), "a file the summary does not list"
    assert not list(out.parent.glob("*.closing"))
    assert {f["state"] for f in report["files"]} <= {"closed", "recovered"}
    for topic, seen in messages(listed).items():
        seqs = [seq for seq, _ in seen]
        assert all(b > a for a, b in pairwise(seqs)), f"{topic}: {seqs}"
    for path in listed:
        for topic, tally in inspect(path)["topics"].items():
            assert tally["seq_restarts"] == 0, topic
            assert tally["missing_seq"] < 1000, f"{path.name} {topic}: {tally['missing_seq']}"
    return listed


def row(report: dict[str, Any], node: str) -> dict[str, Any]:
    return next(r for r in report["nodes"] if r["node"] == node)


def test_killed_recorder_counts_its_gap_and_closes_the_part_it_was_killed_in(
    tmp_path: Path,
) -> None:
    report, out = run_and_kill(tmp_path, "rec")
    rec = row(report, "rec")
    assert rec["restarts"] == 1
    first, second = check_files_and_seq(report, out, parts=2)
    assert [f["state"] for f in report["files"]] == ["recovered", "closed"]
    assert (first, second) == (out, out.with_name("run.part2.mcap"))
    # The gap per topic is exactly what the first part kept and the second part lacks.
    kept, resumed = messages([first]), messages([second])
    gaps = {g["topic"]: g for g in rec["restart_gaps"]}
    assert set(gaps) == {"src/image", "relay/out"}
    for topic, gap in gaps.items():
        last_seq, last_ns = kept[topic][-1]
        first_seq, first_ns = resumed[topic][0]
        assert gap["frames"] == first_seq - last_seq - 1 > 0
        assert (gap["start_ns"], gap["end_ns"]) == (last_ns, first_ns)
    assert rec["restart_gap_frames"] == sum(g["frames"] for g in gaps.values())
    assert rec["alarms"] >= 2
    # The recording says so too, and inspect reports the hole, not a wrapped count.
    recorded = {g["topic"]: g for g in inspect(second)["restart_gaps"]}
    assert {t: g["frames"] for t, g in recorded.items()} == {
        t: g["frames"] for t, g in gaps.items()
    }
    assert inspect(first)["closed"] and inspect(first)["metadata"]["recovered_from"] == str(out)


def test_killed_relay_counts_the_frames_its_output_never_carried(tmp_path: Path) -> None:
    report, out = run_and_kill(tmp_path, "relay")
    relay = row(report, "relay")
    assert relay["restarts"] == 1
    (path,) = check_files_and_seq(report, out, parts=1)
    (gap,) = relay["restart_gaps"]
    assert gap["topic"] == "relay/out" and not gap["estimated"]
    # The recorder read the source directly: the frames it has inside the hole are the lost ones.
    found = messages([path])
    inside = [s for _, s in found["src/image"] if gap["start_ns"] < s < gap["end_ns"]]
    assert gap["frames"] == len(inside) > 0
    # The input's seq jump counts what the new process never received; a frame the old one had
    # taken but was killed before sending lies in the hole too, yet was no jump on its input.
    assert relay["lost"] >= gap["frames"] - 1
    stamps = [s for _, s in found["relay/out"]]
    assert gap["start_ns"] in stamps and gap["end_ns"] in stamps
    (recorded,) = inspect(path)["restart_gaps"]
    assert (recorded["topic"], recorded["frames"]) == ("relay/out", gap["frames"])


def test_killed_source_continues_its_seq_and_estimates_what_it_never_captured(
    tmp_path: Path,
) -> None:
    report, out = run_and_kill(tmp_path, "src")
    src = row(report, "src")
    assert src["restarts"] == 1
    (path,) = check_files_and_seq(report, out, parts=1)
    (gap,) = src["restart_gaps"]
    assert gap["topic"] == "src/image" and gap["estimated"]
    assert gap["frames"] == max(0, round(gap["gap_ms"] * RATE_HZ / 1000) - 1)
    assert gap["frames"] > 0
    seqs = [seq for seq, _ in messages([path])["src/image"]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a source's seq goes on by one"
    (recorded,) = inspect(path)["restart_gaps"]
    assert (recorded["topic"], recorded["frames"]) == ("src/image", gap["frames"])


def test_inspect_counts_a_seq_that_goes_back_as_a_restart_not_as_missing(tmp_path: Path) -> None:
    from igtflow.launch.inspect_recording import inspect_recording
    from igtflow.stream.messages import Status
    from igtflow.stream.recording import RecordingWriter

    path = tmp_path / "old.mcap"
    with RecordingWriter(path, "") as writer:
        for topic, seqs in (("a/status", [*range(10), *range(5)]), ("b/status", [0, 1, 5])):
            for seq in seqs:
                writer.write(Status(text="x").restamped(topic=topic, seq=seq))
    topics = inspect_recording(path)["topics"]
    assert (topics["a/status"]["missing_seq"], topics["a/status"]["seq_restarts"]) == (0, 1)
    assert (topics["b/status"]["missing_seq"], topics["b/status"]["seq_restarts"]) == (3, 0)
