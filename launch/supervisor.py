"""Starts one process per node, keeps them alive, and stops them all without leftovers.

The supervisor owns the run directory (ipc sockets and shared-memory slots, on tmpfs), the control
channel every node reports on, restarts with back-off per node policy, and the stats behind the
live status table. A dead supervisor takes its nodes with it (PR_SET_PDEATHSIG in each node).
How the graph becomes node configs is :mod:`igtflow.launch.wiring_plan`; what a status row holds
is :mod:`igtflow.launch.status_row`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import zmq

from igtflow.launch.graph import Graph
from igtflow.launch.lockstep import LockstepLedger
from igtflow.launch.status_row import ENDED, NodeRun, NodeState, status_row
from igtflow.launch.wiring_plan import wiring_plan
from igtflow.ports import free_port
from igtflow.stream import control
from igtflow.stream.node import GRAPH_ENV
from igtflow.stream.threads import thread_budget_env

RUN_PREFIX = "igtflow-"
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 1.2
HEARTBEAT_LOST_S = 1.5  # three beats (control.HEARTBEAT_S): a frozen process within 2 s
HUNG_LOOP_S = 10.0
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
STABLE_AFTER_S = 10.0
DRAIN_GRACE_S = 1.0  # after the last source ends (live), for queues to empty before a stop

LogSink = Callable[[str], None]


def _tmpfs_root() -> Path:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_run_dirs(root: Path | None = None) -> list[Path]:
    """Delete run directories whose supervisor is gone (e.g. it was killed with -9)."""
    removed = []
    for path in (root or _tmpfs_root()).glob(f"{RUN_PREFIX}*"):
        try:
            pid = int(path.name[len(RUN_PREFIX) :].split("-")[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class Supervisor:
    """Runs a validated graph as processes; call ``start``, then ``poll`` until ``stop``."""

    def __init__(
        self,
        graph: Graph,
        log_dir: Path,
        log_sink: LogSink | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
        lockstep: bool = False,
        host: str | None = None,
        pick_port: Callable[[str], int] = free_port,
    ) -> None:
        """``lockstep``: offline replay; every input is lossless and each message a source sends
        is handled by every node downstream before the next one leaves (deterministic runs).
        ``host``: run only the nodes placed on that host (``host:`` in the graph); the other
        hosts run theirs with the same graph and the same ``pick_port`` (a sequence from a
        shared base, see :func:`~igtflow.launch.wiring_plan.sequential_ports`), so every tcp
        edge has one address on both sides.
        """
        self.graph = graph
        self.log_dir = Path(log_dir)
        self.log_sink = log_sink or (lambda line: print(line, file=sys.stderr, flush=True))
        self.ready_timeout_s = ready_timeout_s
        remove_stale_run_dirs()
        self.run_dir = Path(
            tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-", dir=_tmpfs_root())
        )
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.control_endpoint = f"ipc://{self.run_dir}/control.sock"
        self.router.bind(self.control_endpoint)
        self.stopping = False
        self.paused = False
        self.events: list[str] = []
        self.lockstep = lockstep
        self.ledger = LockstepLedger(graph) if lockstep else None
        configs = wiring_plan(graph, self.run_dir, self.control_endpoint, lockstep, pick_port)
        self.nodes: dict[str, NodeRun] = {
            spec.id: NodeRun(spec=spec, config=configs[spec.id])
            for spec in graph.nodes
            if host is None or spec.host == host
        }

    # --- processes ---------------------------------------------------------------------------

    def _spawn(self, node: NodeRun) -> None:
        config_path = self.run_dir / f"{node.spec.id}.json"
        data = node.config.to_dict()
        data["restart_count"] = node.restarts
        data["files"] = [{"path": p, "state": s} for p, s in node.files.items()]
        data["log_dir"] = str(self.log_dir)
        config_path.write_text(json.dumps(data))
        env = {
            **os.environ,
            **thread_budget_env(node.spec.threads),
            "PYTHONUNBUFFERED": "1",
            GRAPH_ENV: str(self.log_dir / "graph.yaml"),
        }
        node.process = subprocess.Popen(
            [sys.executable, "-m", "igtflow.stream.process", str(config_path)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops the nodes
        )
        node.state = NodeState.STARTING
        node.started_at = time.monotonic()
        node.last_heartbeat = time.monotonic()
        node.restart_at = None
        threading.Thread(
            target=self._pump_output,
            args=(node.process,),
            name=f"log-{node.spec.id}",
            daemon=True,
        ).start()

    def _pump_output(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            self.log_sink(raw.decode(errors="replace").rstrip())

    def _send(self, node_id: str, kind: str, **fields: Any) -> None:
        try:
            self.router.send_multipart(
                [node_id.encode(), control.pack(kind, **fields)], zmq.NOBLOCK
            )
        except zmq.ZMQError:
            pass  # node not connected (yet or any more): its process state tells the rest

    def _event(self, text: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {text}")
        self.log_sink(f"supervisor: {text}")

    def start(self) -> None:
        """Spawn every node, wait until all are ready, then let the sources go."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / "graph.yaml").write_text(self.graph.text)
        for node in self.nodes.values():
            self._spawn(node)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            self.poll(0.05, send_go=False)
            waiting = [s for s in self.nodes.values() if s.state == NodeState.STARTING]
            if not waiting:
                break
        else:
            names = ", ".join(
                s.spec.id for s in self.nodes.values() if s.state == NodeState.STARTING
            )
            self._event(f"nodes not ready after {self.ready_timeout_s:.0f} s: {names}")
        for node in self.nodes.values():
            if node.state == NodeState.READY:
                self._go(node)

    def _go(self, node: NodeRun) -> None:
        """Let a ready node run, telling it which of its consumers are alive to wait for."""
        subscribers = {
            out.name: sum(
                1
                for consumer, _ in self.graph.consumers(node.spec.id, out.name)
                # a consumer on another host is that host's to supervise: assume it listens
                if consumer.id not in self.nodes or self.nodes[consumer.id].state not in ENDED
            )
            for out in node.config.outputs
        }
        self._send(node.spec.id, control.GO, subscribers=subscribers)
        node.state = NodeState.RUNNING

    def poll(self, timeout_s: float = 0.1, send_go: bool = True) -> None:
        """Handle control messages and process exits for up to ``timeout_s``."""
        end = time.monotonic() + timeout_s
        while True:
            remaining = max(0.0, end - time.monotonic())
            if self.router.poll(int(remaining * 1000)):
                self._drain_control(send_go)
            self._check_processes()
            if time.monotonic() >= end:
                return

    def _drain_control(self, send_go: bool = False) -> None:
        """Handle every control message already received, without waiting for more."""
        while True:
            try:
                identity, data = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                continue
            self._on_control(identity.decode(errors="replace"), data, send_go)

    def _on_control(self, identity: str, data: bytes, send_go: bool) -> None:
        node_id = identity.partition("#")[0]  # "<node>#lockstep" is the node's lockstep line
        node = self.nodes.get(node_id)
        if node is None:
            return
        try:
            message = control.unpack(data)
        except ValueError:
            return
        if node.process is None or message.get("pid") != node.process.pid:
            return  # from a previous incarnation of the node
        now = time.monotonic()
        node.last_heartbeat = now
        kind = message["type"]
        if kind == control.STATS:
            node.update_rates(message.get("stats", {}), now)
        elif kind == control.READY:
            node.state = NodeState.READY
            if send_go and not self.stopping:
                self._go(node)
        elif kind == control.ALARM:
            node.alarms += 1
            node.last_alarm = f"{message.get('code')}: {message.get('text')}"
            if isinstance(message.get("gap"), dict):
                node.gaps.append(message["gap"])
        elif kind == control.FILE:
            node.files[str(message.get("path"))] = str(message.get("state"))
        elif kind == control.FAILED:
            node.last_alarm = str(message.get("text", "failed"))
        elif kind == control.DONE and self.ledger is not None:
            self.ledger.done(node_id, message.get("handled"), message.get("emitted") or [])
            self._grant()
            self._release(self.ledger.release())
        elif kind == control.EOS:
            node.sent_all_at = now
            self._event(f"{node_id} has sent everything it had")

    def _check_processes(self) -> None:
        now = time.monotonic()
        for node in self.nodes.values():
            process = node.process
            if node.restart_at is not None:
                if now >= node.restart_at and not self.stopping:
                    node.restarts += 1
                    self._event(f"restarting {node.spec.id} (restart {node.restarts})")
                    self._spawn(node)
                continue
            if process is None or node.state in ENDED:
                continue
            code = process.poll()
            if code is None:
                if node.state == NodeState.RUNNING and self._looks_hung(node, now):
                    self._event(f"{node.spec.id} stopped responding; killing it")
                    process.kill()
                continue
            if self.stopping:
                node.state = NodeState.STOPPED
                continue
            self._on_exit(node, code, now)

    def _looks_hung(self, node: NodeRun, now: float) -> bool:
        if now - node.last_heartbeat > HEARTBEAT_LOST_S:
            return True
        return (node.stats.get("loop_age_ms") or 0) > HUNG_LOOP_S * 1000

    def _on_exit(self, node: NodeRun, code: int, now: float) -> None:
        node.exit_code = code
        for path, file_state in node.files.items():
            if file_state == "writing":
                node.files[path] = "open"  # left unclosed: the next process recovers it
        spec = node.spec
        if self.ledger is not None:
            # What it was handling is gone with it; waiting for it would hang the replay.
            source = self.ledger.forget(spec.id)
            self._grant()
            self._release(source)
        if code == 0:
            node.state = NodeState.FINISHED
            self._event(f"{spec.id} finished")
            return
        if now - node.started_at > STABLE_AFTER_S:
            node.consecutive_failures = 0
        reason = f"signal {-code}" if code < 0 else f"exit code {code}"
        if code == control.EXIT_PERMANENT:
            node.state = NodeState.FAILED
            why = node.last_alarm or "a fault a restart cannot fix"
            self._event(f"{spec.id} {why}; not restarting")
            return
        if spec.restart == "never" or node.restarts >= spec.max_restarts:
            node.state = NodeState.FAILED
            why = "restart: never" if spec.restart == "never" else f"{node.restarts} restarts used"
            self._event(f"{spec.id} died ({reason}) and stays down ({why})")
            return
        backoff = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**node.consecutive_failures)
        node.consecutive_failures += 1
        node.state = NodeState.RESTARTING
        node.restart_at = now + backoff
        self._event(f"{spec.id} died ({reason}); restarting in {backoff:.1f} s")

    def stop(self) -> None:
        """Stop every node within ~2 s and remove the run directory (sockets, shared memory)."""
        self.stopping = True
        for node in self.nodes.values():
            self._send(node.spec.id, control.STOP)
        deadline = time.monotonic() + STOP_GRACE_S
        for node in self.nodes.values():
            process = node.process
            if process is None:
                continue
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            if node.state not in (NodeState.FAILED, NodeState.FINISHED):
                node.state = NodeState.STOPPED
                node.exit_code = process.returncode
        self._drain_control()  # what the nodes said last (a file closed) is waiting there
        for node in self.nodes.values():
            for path, file_state in node.files.items():
                if file_state == "writing":
                    node.files[path] = "open"  # its process ended without closing it
        self.router.close(linger=0)
        self.ctx.term()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def _grant(self) -> None:
        """Tell lockstep nodes which deliveries to handle now, and in which order."""
        assert self.ledger is not None
        for node_id, handle in self.ledger.grants():
            self._send(node_id + control.LOCKSTEP_SUFFIX, control.GRANT, handle=handle)

    def _release(self, source: str | None) -> None:
        """Let a lockstep source send its next message."""
        if source is not None:
            self._send(source + control.LOCKSTEP_SUFFIX, control.NEXT)

    def pause(self, paused: bool) -> None:
        """Hold (or let go) every source; the rest of the graph drains what is in flight."""
        self.paused = paused
        for node in self.nodes.values():
            if node.spec.is_source:
                self._send(node.spec.id, control.PAUSE if paused else control.RESUME)
        self._event("sources paused" if paused else "sources resumed")

    def drained(self, sources: Iterable[str] | None = None) -> bool:
        """Every source (or those named) has sent everything and the graph has handled it:
        exactly in lockstep, otherwise after ``DRAIN_GRACE_S`` of quiet (live queues cannot be
        seen). Sources that never end (a live phantom beside a replay) are left out by naming.
        """
        wanted = set(sources) if sources is not None else None
        nodes = [
            s
            for s in self.nodes.values()
            if s.spec.is_source and (wanted is None or s.spec.id in wanted)
        ]
        if not nodes:
            return False
        ends = []
        for node in nodes:
            if node.sent_all_at is not None:
                ends.append(node.sent_all_at)
            elif node.state not in (NodeState.FAILED, NodeState.FINISHED):
                return False
        if self.ledger is not None:
            return self.ledger.idle
        return not ends or time.monotonic() - max(ends) >= DRAIN_GRACE_S

    @property
    def failed(self) -> list[str]:
        return [s.spec.id for s in self.nodes.values() if s.state == NodeState.FAILED]

    def snapshot(self) -> list[dict[str, Any]]:
        """One dict per node: the status table's rows, also what ``--json`` prints."""
        return [status_row(node) for node in self.nodes.values()]
