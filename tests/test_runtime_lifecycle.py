"""Life and death of a running graph: restarts, failing for good, stopping without leftovers.

Graphs run as real processes, either under an in-process ``Supervisor`` or through the
``igtflow`` command, so signals, exit codes and the run directory on tmpfs are the real ones.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from igtflow.launch.supervisor import RUN_PREFIX, remove_stale_run_dirs
from tests.helpers.graph_runs import GraphRun, chain, read_jsonl, wait_until

IGTFLOW = Path(sys.executable).parent / "igtflow"
TMPFS = Path("/dev/shm")

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.access(TMPFS, os.W_OK),
    reason="run directories live on Linux tmpfs (/dev/shm)",
)


def alive(pid: int) -> bool:
    """A process that still runs (a zombie waiting for its reaper has stopped running)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def run_dirs_of(pid: int) -> list[Path]:
    return sorted(TMPFS.glob(f"{RUN_PREFIX}{pid}-*"))


class Cli:
    """``igtflow run GRAPH`` as a child process, its output in files."""

    def __init__(self, tmp_path: Path, graph_text: str, *args: str) -> None:
        graph = tmp_path / "graph.yaml"
        graph.write_text(graph_text)
        self.stdout_path, self.stderr_path = tmp_path / "cli.out", tmp_path / "cli.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [str(IGTFLOW), "run", str(graph), "--log-dir", str(tmp_path / "logs"), *args],
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def node_pids(self) -> list[int]:
        return [p.pid for p in psutil.Process(self.pid).children(recursive=True)]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # its nodes follow through PR_SET_PDEATHSIG
            self.process.wait()


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Callable[..., Cli]]:
    started: list[Cli] = []

    def start(graph_text: str, *args: str) -> Cli:
        started.append(Cli(tmp_path, graph_text, *args))
        return started[-1]

    yield start
    for process in started:
        process.close()


def test_killed_node_restarts_within_one_second_and_graph_goes_on(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    out = tmp_path / "sink.jsonl"
    run = start_graph(chain(out))
    run.wait(lambda: len(read_jsonl(out)) >= 10, 10, "messages through the relay")
    relay, src, sink = run.nodes["relay"], run.nodes["src"], run.nodes["sink"]
    old_pid, others = relay.pid, (src.pid, sink.pid)
    assert old_pid is not None

    os.kill(old_pid, signal.SIGKILL)
    killed_ns = time.time_ns()

    def through_new_relay() -> dict | None:
        # The relay's hop says when it took the message in: after the kill, it is the new one.
        return next((r for r in read_jsonl(out) if r["trace"][-1][1] > killed_ns), None)

    first = run.wait(through_new_relay, 30, "a message through the restarted relay")
    gap_s = (first["t_ns"] - killed_ns) / 1e9
    assert gap_s < 1.0, f"sink received again {gap_s:.2f} s after the kill"
    run.wait(lambda: relay.state == "running", 30, "the supervisor to see the relay ready")
    assert relay.restarts == 1
    assert relay.pid != old_pid
    assert any("relay died (signal 9)" in event for event in run.supervisor.events)
    assert (src.restarts, sink.restarts, (src.pid, sink.pid)) == (0, 0, others)
    assert all(r["intact"] for r in read_jsonl(out))


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, dict], list[str]]:
    """One ``igtflow run --duration`` of a graph with two nodes that always fail."""
    tmp_path = tmp_path_factory.mktemp("failing")
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        """
name: failing
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {rate_hz: 50}
  - id: flaky
    uses: tests.nodes.faulty:Crashing
    inputs: {in: src/image}
    params: {fail_in: handler}
    max_restarts: 2
  - id: fragile
    uses: tests.nodes.faulty:Crashing
    inputs: {in: src/image}
    restart: never
"""
    )
    done = subprocess.run(
        [str(IGTFLOW), "run", str(graph), "--duration", "4", "--json", "--log-dir", "logs"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout, done.stderr[-3000:]
    report = json.loads(done.stdout)
    return done.returncode, {row["node"]: row for row in report["nodes"]}, report["events"]


def test_node_that_keeps_failing_fails_for_good_and_exit_code_is_nonzero(
    failing_run: tuple[int, dict[str, dict], list[str]],
) -> None:
    code, rows, events = failing_run
    assert code != 0
    flaky = rows["flaky"]
    assert (flaky["state"], flaky["restarts"], flaky["exit_code"]) == ("failed", 2, 1)
    assert "crashing on purpose" in flaky["last_alarm"]
    assert any("flaky died" in e and "stays down (2 restarts used)" in e for e in events)
    assert rows["src"]["state"] == "stopped", "the rest of the graph kept running"


def test_node_with_restart_never_fails_for_good_at_its_first_failure(
    failing_run: tuple[int, dict[str, dict], list[str]],
) -> None:
    code, rows, events = failing_run
    assert code != 0
    fragile = rows["fragile"]
    assert (fragile["state"], fragile["restarts"], fragile["exit_code"]) == ("failed", 0, 1)
    assert "crashing on purpose" in fragile["last_alarm"]
    assert any("fragile died" in e and "stays down (restart: never)" in e for e in events)


def test_a_node_failing_for_good_in_setup_does_not_stall_the_graph(tmp_path: Path) -> None:
    out = tmp_path / "sink.jsonl"
    run = GraphRun(
        f"""
name: setup-fails
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: 50}}
  - id: fragile
    uses: tests.nodes.faulty:Crashing
    inputs: {{in: src/image}}
    params: {{fail_in: setup}}
    restart: never
  - id: sink
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: src/image}}
    params: {{out: "{out}"}}
""",
        tmp_path,
    )
    try:
        run.supervisor.start()
        assert run.nodes["fragile"].state == "failed"
        assert run.nodes["src"].state == "running", "the source never became ready"
        run.wait(lambda: read_jsonl(out), 30, "messages at the sink while 'fragile' is down")
    finally:
        run.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_stops_everything_within_2s_and_leaves_nothing(
    cli: Callable[..., Cli], tmp_path: Path, sig: signal.Signals
) -> None:
    out = tmp_path / "sink.jsonl"
    run = cli(chain(out, size=512, rate_hz=30))
    wait_until(lambda: len(read_jsonl(out)) >= 3, 20, "messages at the sink")
    nodes = run.node_pids()
    assert len(nodes) == 3, nodes
    (run_dir,) = run_dirs_of(run.pid)
    assert list(run_dir.glob("*.sock")), "the run's ipc sockets live in its run directory"
    assert list(run_dir.glob("shm/*.slot")), "so do its shared-memory slots"

    run.process.send_signal(sig)
    sent = time.monotonic()
    code = run.process.wait(timeout=10)
    took = time.monotonic() - sent

    assert took < 2.0, f"igtflow took {took:.2f} s to stop"
    assert code == 0, run.stderr()
    assert [pid for pid in nodes if alive(pid)] == []
    assert not run_dir.exists(), sorted(str(p) for p in run_dir.rglob("*"))


def test_killed_supervisor_takes_its_nodes_with_it(cli: Callable[..., Cli], tmp_path: Path) -> None:
    out = tmp_path / "sink.jsonl"
    run = cli(chain(out))
    wait_until(lambda: len(read_jsonl(out)) >= 3, 20, "messages at the sink")
    nodes = run.node_pids()
    assert len(nodes) == 3, nodes
    (run_dir,) = run_dirs_of(run.pid)

    run.process.kill()
    killed = time.monotonic()
    run.process.wait()
    wait_until(lambda: not any(alive(pid) for pid in nodes), 5, "the nodes to die")
    took = time.monotonic() - killed
    assert took < 2.5, f"nodes outlived their supervisor by {took:.2f} s"

    # Nobody was left to clean up; the next supervisor removes the orphaned run directory.
    assert run_dir in remove_stale_run_dirs()
    assert not run_dir.exists()


def test_no_shared_memory_segment_outlives_the_graph(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    out = tmp_path / "sink.jsonl"
    ours = f"{RUN_PREFIX}{os.getpid()}-"
    before = {p.name for p in TMPFS.iterdir() if p.name.startswith(ours)}
    run = start_graph(chain(out, size=1024, rate_hz=30))
    records = run.wait(lambda: len(r := read_jsonl(out)) >= 5 and r, 10, "2 MiB frames at the sink")
    assert all(r["intact"] and r["mapped"] for r in records), "frames should arrive through shm"
    run_dir = run.supervisor.run_dir
    assert run_dir.parent == TMPFS
    assert list(run_dir.glob("shm/*.slot"))

    run.stop()

    assert not run_dir.exists()
    after = {p.name for p in TMPFS.iterdir() if p.name.startswith(ours)}
    assert after <= before


def test_the_loop_age_a_node_reports_starts_with_its_loop_not_with_its_setup() -> None:
    from igtflow.stream.node_stats import NodeStats

    stats = NodeStats()
    assert stats.snapshot()["loop_age_ms"] is None, "setup time is not loop age"
    stats.loop_ns = time.monotonic_ns() - 2_000_000_000
    assert stats.snapshot()["loop_age_ms"] >= 2000


def test_a_slow_setup_is_not_mistaken_for_a_hung_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Setup (a model loading, a busy machine) may take longer than a loop turn is allowed to.
    import igtflow.launch.supervisor as supervisor

    monkeypatch.setattr(supervisor, "HUNG_LOOP_S", 1.0)
    out = tmp_path / "sink.jsonl"
    run = GraphRun(
        f"""
name: slow-setup
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: 50}}
  - id: slow
    uses: tests.nodes.faulty:SlowSetup
    inputs: {{in: src/image}}
    params: {{setup_s: 2.5}}
  - id: sink
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: slow/out}}
    params: {{out: "{out}"}}
""",
        tmp_path,
    )
    try:
        run.supervisor.start()
        run.wait(lambda: len(read_jsonl(out)) >= 20, 30, "messages through the slow starter")
        run.supervisor.poll(1.0)  # a few heartbeats more
        assert run.nodes["slow"].restarts == 0, run.supervisor.events
        assert not any("stopped responding" in e for e in run.supervisor.events)
    finally:
        run.stop()
