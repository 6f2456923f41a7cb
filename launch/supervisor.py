"""Starts one process per node, keeps them alive, and stops them all without leftovers.

The supervisor owns the run directory (ipc sockets and shared-memory slots, on tmpfs), the control
channel every node reports on, restarts with back-off per node policy, and the stats behind the
live status table. A dead supervisor takes its nodes with it (PR_SET_PDEATHSIG in each node).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from igtflow.launch.graph import Graph, NodeSpec
from igtflow.launch.lockstep import LockstepLedger
from igtflow.stream import control
from igtflow.stream.node import GRAPH_ENV
from igtflow.stream.runtime import NodeConfig
from igtflow.stream.threads import thread_budget_env
from igtflow.stream.transport import QUEUE, InputConfig, OutputConfig, ipc_endpoint

from igtflow.ports import free_port

RUN_PREFIX = "igtflow-"
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 1.2
HEARTBEAT_LOST_S = 5.0
HUNG_LOOP_S = 10.0
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
STABLE_AFTER_S = 10.0
DRAIN_GRACE_S = 1.0  # after the last source ends (live), for queues to empty before a stop
LOCKSTEP_DEPTH = 1024

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


@dataclass
class NodeState:
    """What the supervisor knows about one node; one row of the status table."""

    spec: NodeSpec
    config: NodeConfig
    process: subprocess.Popen | None = None
    state: str = "starting"
    restarts: int = 0
    consecutive_failures: int = 0
    started_at: float = 0.0
    restart_at: float | None = None
    last_heartbeat: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    rate_in: float = 0.0
    rate_out: float = 0.0
    cpu_percent: float = 0.0
    alarms: int = 0
    last_alarm: str = ""
    exit_code: int | None = None
    sent_all_at: float | None = None  # a source said it has sent everything (EOS)
    gaps: list[dict[str, Any]] = field(default_factory=list)  # restart gaps, one per topic
    files: dict[str, str] = field(default_factory=dict)  # path → writing/open/closed/recovered
    _prev: tuple[float, int, int, float] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def update_rates(self, stats: dict[str, Any], now: float) -> None:
        received, sent, cpu = (
            stats.get("received", 0),
            stats.get("sent", 0),
            stats.get("cpu_s", 0.0),
        )
        if self._prev is not None:
            t0, r0, s0, c0 = self._prev
            dt = now - t0
            if dt > 0.2:
                self.rate_in = max(0.0, (received - r0) / dt)
                self.rate_out = max(0.0, (sent - s0) / dt)
                self.cpu_percent = max(0.0, 100.0 * (cpu - c0) / dt)
                self._prev = (now, received, sent, cpu)
        else:
            self._prev = (now, received, sent, cpu)
        self.stats = stats


def _gap_ms(gaps: list[dict[str, Any]]) -> float:
    """How long a node's restarts held its topics up: per restart its longest gap, summed."""
    longest: dict[Any, float] = {}
    for gap in gaps:
        key = gap.get("restart")
        longest[key] = max(longest.get(key, 0.0), float(gap.get("gap_ms", 0.0)))
    return round(sum(longest.values()), 1)


class Supervisor:
    """Runs a validated graph as processes; call ``start``, then ``poll`` until ``stop``."""

    def __init__(
        self,
        graph: Graph,
        log_dir: Path,
        log_sink: LogSink | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
        lockstep: bool = False,
    ) -> None:
        """``lockstep``: offline replay; every input is lossless and each message a source sends
        is handled by every node downstream before the next one leaves (deterministic runs).
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
        self.nodes: dict[str, NodeState] = {}
        self.stopping = False
        self.paused = False
        self.events: list[str] = []
        self.lockstep = lockstep
        self.ledger = LockstepLedger(graph) if lockstep else None
        self._build_configs()

    # --- configuration -----------------------------------------------------------------------

    def _endpoint(self, producer: NodeSpec, output: str) -> str:
        hosts = {producer.host} | {c.host for c, _ in self.graph.consumers(producer.id, output)}
        if hosts == {None}:
            return ipc_endpoint(self.run_dir, producer.id, output)
        bind_host = producer.host or "127.0.0.1"
        return f"tcp://{bind_host}:{free_port(bind_host)}"

    def _build_configs(self) -> None:
        endpoints: dict[tuple[str, str], str] = {}
        outputs: dict[str, list[OutputConfig]] = {}
        for spec in self.graph.nodes:
            outputs[spec.id] = []
            for name in spec.outputs:
                consumers = self.graph.consumers(spec.id, name)
                endpoint = self._endpoint(spec, name)
                endpoints[(spec.id, name)] = endpoint
                depth = max([i.depth for _, i in consumers if i.policy == QUEUE], default=0)
                outputs[spec.id].append(
                    OutputConfig(
                        name=name,
                        topic=f"{spec.id}/{name}",
                        endpoint=endpoint,
                        subscribers=len(consumers),
                        sndhwm=max(16, depth),
                    )
                )
        for spec in self.graph.nodes:
            inputs = [
                InputConfig(
                    name=i.name,
                    topic=f"{i.node}/{i.output}",
                    endpoint=endpoints[(i.node, i.output)],
                    policy=QUEUE if self.lockstep else i.policy,
                    depth=max(i.depth, LOCKSTEP_DEPTH) if self.lockstep else i.depth,
                    budget_mib=i.budget_mib,
                )
                for i in spec.inputs
            ]
            config = NodeConfig(
                node_id=spec.id,
                import_path=spec.import_path,
                run_dir=str(self.run_dir),
                control=self.control_endpoint,
                params=dict(spec.params),
                outputs=outputs[spec.id],
                inputs=inputs,
                threads=spec.threads,
                lockstep=self.lockstep,
            )
            self.nodes[spec.id] = NodeState(spec=spec, config=config)

    # --- processes ---------------------------------------------------------------------------

    def _spawn(self, state: NodeState) -> None:
        config_path = self.run_dir / f"{state.spec.id}.json"
        data = state.config.to_dict()
        data["restart_count"] = state.restarts
        data["files"] = [{"path": p, "state": s} for p, s in state.files.items()]
        data["log_dir"] = str(self.log_dir)
        config_path.write_text(json.dumps(data))
        env = {
            **os.environ,
            **thread_budget_env(state.spec.threads),
            "PYTHONUNBUFFERED": "1",
            GRAPH_ENV: str(self.log_dir / "graph.yaml"),
        }
        state.process = subprocess.Popen(
            [sys.executable, "-m", "igtflow.stream.process", str(config_path)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops the nodes
        )
        state.state = "starting"
        state.started_at = time.monotonic()
        state.last_heartbeat = time.monotonic()
        state.restart_at = None
        threading.Thread(
            target=self._pump_output,
            args=(state.process,),
            name=f"log-{state.spec.id}",
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
        for state in self.nodes.values():
            self._spawn(state)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            self.poll(0.05, send_go=False)
            waiting = [s for s in self.nodes.values() if s.state == "starting"]
            if not waiting:
                break
        else:
            names = ", ".join(s.spec.id for s in self.nodes.values() if s.state == "starting")
            self._event(f"nodes not ready after {self.ready_timeout_s:.0f} s: {names}")
        for state in self.nodes.values():
            if state.state == "ready":
                self._go(state)

    def _go(self, state: NodeState) -> None:
        """Let a ready node run, telling it which of its consumers are alive to wait for."""
        alive = {"failed", "finished", "stopped"}
        subscribers = {
            out.name: sum(
                1
                for consumer, _ in self.graph.consumers(state.spec.id, out.name)
                if self.nodes[consumer.id].state not in alive
            )
            for out in state.config.outputs
        }
        self._send(state.spec.id, control.GO, subscribers=subscribers)
        state.state = "running"

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
        state = self.nodes.get(node_id)
        if state is None:
            return
        try:
            message = control.unpack(data)
        except ValueError:
            return
        if state.process is None or message.get("pid") != state.process.pid:
            return  # from a previous incarnation of the node
        now = time.monotonic()
        state.last_heartbeat = now
        kind = message["type"]
        if kind == control.STATS:
            state.update_rates(message.get("stats", {}), now)
        elif kind == control.READY:
            state.state = "ready"
            if send_go and not self.stopping:
                self._go(state)
        elif kind == control.ALARM:
            state.alarms += 1
            state.last_alarm = f"{message.get('code')}: {message.get('text')}"
            if isinstance(message.get("gap"), dict):
                state.gaps.append(message["gap"])
        elif kind == control.FILE:
            state.files[str(message.get("path"))] = str(message.get("state"))
        elif kind == control.FAILED:
            state.last_alarm = str(message.get("text", "failed"))
        elif kind == control.DONE and self.ledger is not None:
            self.ledger.done(node_id, message.get("handled"), message.get("emitted") or [])
            self._grant()
            self._release(self.ledger.release())
        elif kind == control.EOS:
            state.sent_all_at = now
            self._event(f"{node_id} has sent everything it had")

    def _check_processes(self) -> None:
        now = time.monotonic()
        for state in self.nodes.values():
            process = state.process
            if state.restart_at is not None:
                if now >= state.restart_at and not self.stopping:
                    state.restarts += 1
                    self._event(f"restarting {state.spec.id} (restart {state.restarts})")
                    self._spawn(state)
                continue
            if process is None or state.state in ("failed", "finished", "stopped"):
                continue
            code = process.poll()
            if code is None:
                if state.state == "running" and self._looks_hung(state, now):
                    self._event(f"{state.spec.id} stopped responding; killing it")
                    process.kill()
                continue
            if self.stopping:
                state.state = "stopped"
                continue
            self._on_exit(state, code, now)

    def _looks_hung(self, state: NodeState, now: float) -> bool:
        if now - state.last_heartbeat > HEARTBEAT_LOST_S:
            return True
        return (state.stats.get("loop_age_ms") or 0) > HUNG_LOOP_S * 1000

    def _on_exit(self, state: NodeState, code: int, now: float) -> None:
        state.exit_code = code
        for path, file_state in state.files.items():
            if file_state == "writing":
                state.files[path] = "open"  # left unclosed: the next process recovers it
        spec = state.spec
        if self.ledger is not None:
            # What it was handling is gone with it; waiting for it would hang the replay.
            source = self.ledger.forget(spec.id)
            self._grant()
            self._release(source)
        if code == 0:
            state.state = "finished"
            self._event(f"{spec.id} finished")
            return
        if now - state.started_at > STABLE_AFTER_S:
            state.consecutive_failures = 0
        reason = f"signal {-code}" if code < 0 else f"exit code {code}"
        if code == control.EXIT_PERMANENT:
            state.state = "failed"
            why = state.last_alarm or "a fault a restart cannot fix"
            self._event(f"{spec.id} {why}; not restarting")
            return
        if spec.restart == "never" or state.restarts >= spec.max_restarts:
            state.state = "failed"
            why = "restart: never" if spec.restart == "never" else f"{state.restarts} restarts used"
            self._event(f"{spec.id} died ({reason}) and stays down ({why})")
            return
        backoff = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**state.consecutive_failures)
        state.consecutive_failures += 1
        state.state = "restarting"
        state.restart_at = now + backoff
        self._event(f"{spec.id} died ({reason}); restarting in {backoff:.1f} s")

    def stop(self) -> None:
        """Stop every node within ~2 s and remove the run directory (sockets, shared memory)."""
        self.stopping = True
        for state in self.nodes.values():
            self._send(state.spec.id, control.STOP)
        deadline = time.monotonic() + STOP_GRACE_S
        for state in self.nodes.values():
            process = state.process
            if process is None:
                continue
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            if state.state not in ("failed", "finished"):
                state.state = "stopped"
                state.exit_code = process.returncode
        self._drain_control()  # what the nodes said last (a file closed) is waiting there
        for state in self.nodes.values():
            for path, file_state in state.files.items():
                if file_state == "writing":
                    state.files[path] = "open"  # its process ended without closing it
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
        for state in self.nodes.values():
            if not state.spec.inputs:
                self._send(state.spec.id, control.PAUSE if paused else control.RESUME)
        self._event("sources paused" if paused else "sources resumed")

    def drained(self, sources: Iterable[str] | None = None) -> bool:
        """Every source (or those named) has sent everything and the graph has handled it:
        exactly in lockstep, otherwise after ``DRAIN_GRACE_S`` of quiet (live queues cannot be
        seen). Sources that never end (a live phantom beside a replay) are left out by naming.
        """
        wanted = set(sources) if sources is not None else None
        states = [
            s
            for s in self.nodes.values()
            if not s.spec.inputs and (wanted is None or s.spec.id in wanted)
        ]
        if not states:
            return False
        ends = []
        for state in states:
            if state.sent_all_at is not None:
                ends.append(state.sent_all_at)
            elif state.state not in ("failed", "finished"):
                return False
        if self.ledger is not None:
            return self.ledger.idle
        return not ends or time.monotonic() - max(ends) >= DRAIN_GRACE_S

    @property
    def failed(self) -> list[str]:
        return [s.spec.id for s in self.nodes.values() if s.state == "failed"]

    def snapshot(self) -> list[dict[str, Any]]:
        """One dict per node: the status table's rows, also what ``--json`` prints."""
        rows = []
        for s in self.nodes.values():
            rows.append(
                {
                    "node": s.spec.id,
                    "uses": s.spec.uses,
                    "state": s.state,
                    "pid": s.pid,
                    "restarts": s.restarts,
                    "rate_in_hz": round(s.rate_in, 2),
                    "rate_out_hz": round(s.rate_out, 2),
                    "age_p50_ms": s.stats.get("age_p50_ms"),
                    "age_p99_ms": s.stats.get("age_p99_ms"),
                    "received": s.stats.get("received", 0),
                    "sent": s.stats.get("sent", 0),
                    "drops": s.stats.get("drops", 0),
                    "lost": s.stats.get("lost", 0),
                    "malformed": s.stats.get("malformed", 0),
                    "send_drops": s.stats.get("send_drops", 0),
                    "cpu_percent": round(s.cpu_percent, 1),
                    "alarms": s.alarms,
                    "last_alarm": s.last_alarm,
                    "exit_code": s.exit_code,
                    "restart_gap_ms": _gap_ms(s.gaps),
                    "restart_gap_frames": sum(g.get("frames", 0) for g in s.gaps),
                    "restart_gaps": list(s.gaps),
                    "files": [{"path": p, "state": f} for p, f in s.files.items()],
                }
            )
        return rows
