"""The loop inside every node process: receive, handle, emit, tick, report.

The runtime owns everything a node must not think about: sockets, policies, shared memory,
sequence numbers, trace hops, pacing, stats and the supervisor's commands. The loop delegates
what it handles next and when it may tick to a ``Schedule`` (``scheduling.py``: live or
lockstep), tick times to a ``TickClock`` (``pacing.py``) and warm-ups to a ``Rehearsal``.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq

from igtflow.stream import control
from igtflow.stream.frozen_watch import FROZEN_META, FrozenWatch
from igtflow.stream.ledger import Ledger, Mark
from igtflow.stream.messages import Image, Message, Status
from igtflow.stream.node import (
    IMPLICIT_OUTPUTS,
    Node,
    PermanentError,
    Source,
    Ticking,
    all_outputs,
    create_node,
    load_class,
)
from igtflow.stream.node_stats import InputStats, NodeStats
from igtflow.stream.pacing import TickClock
from igtflow.stream.rehearsal import Rehearsal
from igtflow.stream.scheduling import LiveSchedule, LockstepSchedule, Schedule
from igtflow.stream.shm import SlotReader
from igtflow.stream.threads import apply_priority, apply_thread_budget
from igtflow.stream.transport import QUEUE, Arrival, Input, InputConfig, Output, OutputConfig
from igtflow.stream.waiter import Waiter
from igtflow.stream.wire import BIG_BUFFER_BYTES

if TYPE_CHECKING:
    from igtflow.stream.curve import Gatekeeper

SUBSCRIBER_WAIT_S = 2.0
POLL_MAX_MS = 50
RECONNECT_MS = 10


@dataclass(frozen=True)
class NodeConfig:
    """Everything the launcher tells a node process (sent as JSON)."""

    node_id: str
    import_path: str
    run_dir: str
    control: str
    params: dict[str, Any] = field(default_factory=dict)
    outputs: list[OutputConfig] = field(default_factory=list)
    inputs: list[InputConfig] = field(default_factory=list)
    threads: int = 1
    priority: str = "normal"  # "background": nice 10 (see launch.graph.Priority)
    restart_count: int = 0
    lockstep: bool = False  # offline replay: report every handled message, sources wait for NEXT
    files: list[dict[str, str]] = field(default_factory=list)  # reported by earlier incarnations

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeConfig:
        return cls(
            **{
                **data,
                "outputs": [
                    OutputConfig(**{**o, "curve_allow": tuple(o.get("curve_allow", ()))})
                    for o in data.get("outputs", [])
                ],
                "inputs": [InputConfig(**i) for i in data.get("inputs", [])],
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class NodeRuntime:
    """Runs one node: the emitter its ``emit``/``new_frame`` calls go to."""

    def __init__(self, config: NodeConfig, log: logging.Logger) -> None:
        self.config = config
        self.log = log
        self.run_dir = Path(config.run_dir)
        self.ctx = zmq.Context.instance()
        self.stats = NodeStats()
        self.reader = SlotReader(self.run_dir / "shm")
        self.outputs: dict[str, Output] = {}
        self.gatekeeper: Gatekeeper | None = None  # the CURVE allow-list, when an output uses it
        self.inputs: list[Input] = []
        self.node: Node | None = None
        self.stop_requested = False
        self.output_kinds: dict[str, type[Message]] = {}
        self.placers: dict[str, Any] = {}
        self.handlers: dict[str, Any] = {}
        self.t_in_ns: int | None = None
        self.control = control.ControlLink(self.ctx, config.control, config.node_id, self.snapshot)
        self.inputs_by_name: dict[str, Input] = {}
        self.schedule: Schedule = (
            LockstepSchedule(
                control.LockstepLink(self.ctx, config.control, config.node_id),
                self.inputs_by_name,
                self._handle,
            )
            if config.lockstep
            else LiveSchedule(self.inputs, self._handle, self.control)
        )
        self.frozen_watch: FrozenWatch | None = None  # made for a live source once it exists
        self.sent = self.schedule.sent  # where emit notes [topic, seq] for the schedule, if at all
        self.rehearsal: Rehearsal | None = None  # made once the sockets are open
        self.eos_sent = False
        self.ledger: Ledger | None = None
        self.output_rows: dict[str, int] = {}
        self.input_rows: dict[str, int] = {}
        # After a restart: where each topic stood when the previous process stopped, until the
        # first message on it measures the restart gap; and what each input missed meanwhile.
        self.resumed_outputs: dict[str, Mark] = {}
        self.resumed_inputs: dict[str, Mark] = {}
        self.missed: dict[str, int] = {}

    def request_stop(self, *_: Any) -> None:
        """Signal handler: only sets a flag, since taking a lock here can deadlock the handler."""
        self.stop_requested = True

    @property
    def stopping(self) -> bool:
        return self.stop_requested or self.control.stop.is_set()

    # --- emitter -------------------------------------------------------------------------------

    def emit(self, output_name: str, message: Message) -> None:
        output = self.outputs[output_name]
        expected = self.output_kinds[output_name]
        if not isinstance(message, expected):
            raise TypeError(
                f"node {self.config.node_id!r} emitted a {message.KIND} on {output_name!r}, "
                f"which is declared as {expected.KIND}"
            )
        t_out = time.time_ns()
        watch = self.frozen_watch
        if isinstance(message, Image) and watch and watch.sent(output_name, message, t_out):
            message = message.restamped(meta={**message.meta, FROZEN_META: output.config.topic})
        hop = [self.config.node_id, self.t_in_ns if self.t_in_ns is not None else t_out, t_out]
        stamped = message.restamped(
            topic=output.config.topic, seq=output.seq, trace=[*message.trace, hop]
        )
        output.seq += 1
        if self.ledger is not None:
            self.ledger.note(self.output_rows[output_name], output.seq, stamped.stamp_ns)
        if self.sent is not None and output.config.subscribers:
            self.sent.append([stamped.topic, stamped.seq])
        output.send(stamped, self.placers[output_name])
        self.stats.sent[output_name] = self.stats.sent.get(output_name, 0) + 1
        if self.resumed_outputs and output_name in self.resumed_outputs:
            self._output_resumed(output_name, stamped)

    def _place(self, output: Output):
        pool = output.pool

        def place(array: np.ndarray) -> dict[str, Any] | None:
            # A frame we hold is forwarded uncopied, unless a queue reads this output: its claim
            # must be on a slot of our own pool (the upstream one does not know that reader).
            ref = None if output.claiming else self.reader.locate(array)
            if ref is None and pool is not None:
                ref = pool.place(array)
                self.stats.inline_fallbacks = pool.inline_fallbacks
            return ref

        return place

    def new_frame(self, output_name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        pool = self.outputs[output_name].pool
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if pool is not None and nbytes >= BIG_BUFFER_BYTES:
            slot = pool.acquire(nbytes)
            if slot is not None:
                return pool.writable(slot, shape, dtype)
        return np.empty(shape, dtype=dtype)

    def alarm(self, code: str, text: str, level: str = "warn", **fields: Any) -> None:
        """Raise an alarm: logged, sent to the supervisor and published on ``status``; the
        ``fields`` travel with it (and in the Status message's ``meta``)."""
        log_at = {"error": logging.ERROR, "ok": logging.INFO}.get(level, logging.WARNING)
        self.log.log(log_at, "%s: %s", code, text)
        self.control.send(control.ALARM, level=level, code=code, text=text, **fields)
        if "status" in self.outputs:
            status = Status(level=level, code=code, text=text, frame=self.config.node_id)
            self.emit("status", status.restamped(meta=fields) if fields else status)

    def restart_gap(
        self, topic: str, start_ns: int, end_ns: int, frames: int, estimated: bool = False
    ) -> None:
        """Report the hole a restart of this node left in ``topic``: no message from capture
        time ``start_ns`` to ``end_ns``, ``frames`` messages lost (``estimated`` from the rate
        where they were never made). Counted by the supervisor, recorded as a Status message.
        """
        gap = {
            "node": self.config.node_id,
            "restart": self.config.restart_count,
            "topic": topic,
            "start_ns": start_ns,
            "end_ns": end_ns,
            "gap_ms": round((end_ns - start_ns) / 1e6, 1),
            "frames": frames,
            "estimated": estimated,
        }
        about = "about " if estimated else ""
        self.alarm(
            "restart-gap",
            f"{topic}: no message for {gap['gap_ms']:.0f} ms while {self.config.node_id} "
            f"restarted; {about}{frames} frame(s) lost",
            gap=gap,
        )

    def report_file(self, path: str, state: str) -> None:
        """Tell the supervisor about a file this node writes (thread-safe)."""
        self.control.send(control.FILE, path=path, state=state)

    def _output_resumed(self, name: str, message: Message) -> None:
        """The first message on an output after a restart: report the hole before it."""
        mark = self.resumed_outputs.pop(name)
        if name in IMPLICIT_OUTPUTS:
            return  # alarms come when they come: no rate to miss
        node = self.node
        if isinstance(node, Source):
            # Frames a source never captured: as many ticks as fit in the hole.
            rate = node.rate_hz
            ticks = round((message.stamp_ns - mark.stamp_ns) * rate / 1e9) - 1 if rate > 0 else 0
            self.restart_gap(message.topic, mark.stamp_ns, message.stamp_ns, max(0, ticks), True)
            return
        # A message it never got to handle is one it never sent.
        frames = max(self.missed.values(), default=0)
        self.restart_gap(message.topic, mark.stamp_ns, message.stamp_ns, frames)

    def snapshot(self) -> dict[str, Any]:
        snapshot = self.stats.snapshot()
        # messages a consumer was too far behind to take, counted where they were made
        snapshot["send_drops"] = sum(o.send_drops for o in list(self.outputs.values()))
        pools = {name: o.pool_stats() for name, o in list(self.outputs.items())}
        snapshot["pools"] = {name: stats for name, stats in pools.items() if stats is not None}
        snapshot["rehearsals"] = self.rehearsal.count if self.rehearsal is not None else 0
        if self.gatekeeper is not None:  # CURVE handshakes refused: a client not on the allow-list
            snapshot["curve_refused"] = self.gatekeeper.refused
        return snapshot

    # --- lifecycle -----------------------------------------------------------------------------

    def _instantiate(self) -> Node:
        config = self.config
        node = create_node(
            load_class(config.import_path),
            config.node_id,
            config.params,
            self,
            log=self.log,
            lockstep=config.lockstep,
            restart_count=config.restart_count,
            earlier_files=config.files,
        )
        apply_thread_budget(config.threads)  # setup may have imported torch or OpenCV
        return node

    def _open_sockets(self) -> None:
        allowed = {path for out in self.config.outputs for path in out.curve_allow}
        if any(out.curve_secret for out in self.config.outputs):
            from igtflow.stream.curve import Gatekeeper  # only a tcp node pays for zmq.auth

            # Before any bind: ZeroMQ asks the gatekeeper during every CURVE handshake.
            self.gatekeeper = Gatekeeper(self.ctx, sorted(allowed), self.log)
        for out in self.config.outputs:
            self.outputs[out.name] = Output(self.ctx, out, self.run_dir, self.config.node_id)
            self.placers[out.name] = self._place(self.outputs[out.name])
        for inp in self.config.inputs:
            stats = self.stats.inputs.setdefault(inp.name, InputStats())
            self.inputs.append(Input(self.ctx, inp, self.reader, stats, self.log))
            self.inputs_by_name[inp.name] = self.inputs[-1]
        if not self.config.lockstep:
            self._open_ledger()
        self.rehearsal = Rehearsal.for_node(
            self.inputs, self.outputs.values(), self.config.lockstep
        )

    def _open_ledger(self) -> None:
        """Keep each topic's place in the run's ledger; after a restart, continue from it."""
        names = [o.name for o in self.config.outputs]
        self.output_rows = {name: row for row, name in enumerate(names)}
        self.input_rows = {i.name: len(names) + row for row, i in enumerate(self.config.inputs)}
        self.ledger = Ledger(self.run_dir, self.config.node_id, len(names) + len(self.input_rows))
        if self.config.restart_count == 0:
            return
        for name, row in self.output_rows.items():
            if (mark := self.ledger.marks[row]) is not None:
                self.outputs[name].seq = mark.seq  # readers never see a topic's seq go back
                self.resumed_outputs[name] = mark
        for name, row in self.input_rows.items():
            if (mark := self.ledger.marks[row]) is not None:
                self.inputs_by_name[name].stats.last_seq = mark.seq  # what it misses is lost
                self.resumed_inputs[name] = mark

    def _subscribers_ready(self, deadline: float) -> bool:
        """True once every output has the subscribers the supervisor expects (or time is up).

        Every node waits for this before it reports ready, and a ticking node again before its
        first tick, so that no message is lost to ZeroMQ's slow-joiner race; after GO, consumers
        that failed for good are no longer waited for.
        """
        expected = self.control.go_fields.get("subscribers", {})
        for output in self.outputs.values():
            output.read_subscriptions()
        missing = [
            o.config.name
            for o in self.outputs.values()
            if o.subscribed < expected.get(o.config.name, o.config.subscribers)
        ]
        if missing and time.monotonic() >= deadline:
            self.log.warning("outputs %s still lack subscribers; starting anyway", missing)
            return True
        return not missing

    def run(self) -> int:
        """Set up, report ready, run until told to stop; the process exit code."""
        apply_priority(self.config.priority)
        self.control.start()
        try:
            self._open_sockets()
            self.node = self._instantiate()
            self.output_kinds = all_outputs(
                type(self.node), self.config.node_id, self.config.params
            )
            self.handlers = {i.config.name: self.node.handler(i.config.name) for i in self.inputs}
            self.frozen_watch = self._frozen_watch(self.node)
        except PermanentError as exc:
            # A restart cannot help: one line, no traceback, and an exit code that says so.
            self.log.error("cannot start: %s", exc)
            self.control.send(control.FAILED, text=f"cannot start: {exc}", permanent=True)
            self._close()
            return control.EXIT_PERMANENT
        except Exception as exc:
            self.log.error("setup failed: %s\n%s", exc, traceback.format_exc())
            self.control.send(control.FAILED, text=f"setup failed: {exc}")
            self._close()
            return 2
        # Ready only once our consumers listen: a relay must not forward frames to nobody.
        deadline = time.monotonic() + SUBSCRIBER_WAIT_S
        while not self.stopping and not self._subscribers_ready(deadline):
            for inp in self.inputs:
                _ = inp.connected  # connect our own inputs meanwhile: a chain starts together
            time.sleep(0.002)
        # What setup built (modules, models) lives for good: keep it out of every collection,
        # so a full collection is short and never lands on a message as a millisecond stall.
        gc.collect()
        gc.freeze()
        self.control.send(control.READY)
        code = 0
        try:
            self._loop()
        except Exception as exc:
            self.log.error("node failed: %s\n%s", exc, traceback.format_exc())
            self.control.send(control.FAILED, text=f"{type(exc).__name__}: {exc}")
            code = 1
        finally:
            try:
                self.node.teardown()
            except Exception as exc:
                self.log.error("teardown failed: %s", exc)
                code = code or 1
            self.control.send(control.BYE, code=code)
            self._close()
        return code

    def _frozen_watch(self, node: Node) -> FrozenWatch | None:
        """The frozen-source watchdog of a live source's Image outputs (none offline)."""
        if not isinstance(node, Source) or node.repeats_frames or self.config.lockstep:
            return None
        topics = {
            name: out.config.topic
            for name, out in self.outputs.items()
            if issubclass(self.output_kinds.get(name, Message), Image)
        }
        return FrozenWatch(topics, node.rate_hz, self.alarm) if topics else None

    def _close(self) -> None:
        for inp in self.inputs:
            inp.close()
        for out in self.outputs.values():
            out.close()
        self.schedule.close()
        self.control.close()
        if self.gatekeeper is not None:
            self.gatekeeper.close()

    def _handle(self, inp: Input, arrival: Arrival) -> None:
        now = time.time_ns()
        self.t_in_ns = now
        message = arrival.message
        lost = inp.stats.account(message.seq, arrival.accounted) + arrival.overwritten
        if self.resumed_inputs and inp.config.name in self.resumed_inputs:
            self._input_resumed(inp, message)
        elif lost and inp.config.policy == QUEUE:
            self.alarm(
                "queue-loss",
                f"input {inp.config.name!r} lost {lost} message(s) before seq {message.seq} "
                f"(depth {inp.config.depth}, budget {inp.config.budget_mib} MiB); "
                "the node is not keeping up",
            )
        self.handlers[inp.config.name](message)
        if self.ledger is not None:
            self.ledger.note(self.input_rows[inp.config.name], message.seq, message.stamp_ns)
        done = time.time_ns()
        # Bookkeeping after the handler: whatever it emitted is already on its way.
        age_ms = (now - message.stamp_ns) / 1e6
        inp.stats.ages_ms.append(age_ms)
        self.stats.ages_ms.append(age_ms)
        self.stats.handler_ms.append((done - now) / 1e6)
        self.t_in_ns = None

    def _input_resumed(self, inp: Input, message: Message) -> None:
        """The first message on an input after a restart: count what the restart missed, and
        report it here when this node has no outputs of its own to show the hole on."""
        mark = self.resumed_inputs.pop(inp.config.name)
        missed = max(0, message.seq - mark.seq - 1)
        self.missed[inp.config.name] = missed
        assert self.node is not None
        sink = not any(name not in IMPLICIT_OUTPUTS for name in self.outputs)
        if sink and not self.node.reports_own_gaps:
            self.restart_gap(message.topic, mark.stamp_ns, message.stamp_ns, missed)

    def _tick(self, node: Ticking) -> float | None:
        """One tick; once a source says it has finished, tell the supervisor (EOS)."""
        self.t_in_ns = None
        delay = node.tick()
        self.schedule.ticked()
        if isinstance(node, Source) and node._finished and not self.eos_sent:
            self.eos_sent = True
            self.schedule.finished()
        return delay

    def _loop(self) -> None:
        node = self.node
        schedule, rehearsal = self.schedule, self.rehearsal
        ticks = isinstance(node, Ticking)
        clock = TickClock(node.rate_hz if isinstance(node, Ticking) else 0.0)
        by_socket: dict[Any, Input] = {inp.socket: inp for inp in self.inputs}
        outputs_by_socket = {o.socket: o for o in self.outputs.values()}
        waiter = Waiter([*by_socket, *outputs_by_socket, *schedule.handles])
        started = False
        subscriber_deadline: float | None = None
        while not self.stopping:
            self.stats.loop_ns = time.monotonic_ns()
            if ticks and not started and self.control.go.is_set():
                if subscriber_deadline is None:
                    subscriber_deadline = time.monotonic() + SUBSCRIBER_WAIT_S
                if self._subscribers_ready(subscriber_deadline):
                    started = True
                    clock.start(time.monotonic())
            ticking = started and schedule.may_tick() and not self.eos_sent
            ticking = ticking and not self.control.paused.is_set()
            if self.frozen_watch is not None:
                if ticking:
                    self.frozen_watch.poll(time.time_ns())
                else:
                    self.frozen_watch.rest()
            timeout = clock.wait_ms(time.monotonic(), POLL_MAX_MS) if ticking else POLL_MAX_MS
            if ticking and self.frozen_watch is not None:
                silent_in_ms = self.frozen_watch.due_in_ms(time.time_ns())
                if silent_in_ms is not None:  # wake when the source turns silent
                    timeout = min(timeout, math.ceil(silent_in_ms))
            if not all(inp.connected for inp in self.inputs):
                timeout = min(timeout, RECONNECT_MS)  # a local input waits for its producer
            rehearse_ms = None
            if rehearsal is not None and waiter.precise:
                rehearse_ms = rehearsal.plan(clock.next_tick if ticking else None, clock.gap)
                if rehearse_ms is not None:
                    timeout = min(timeout, rehearse_ms)
            work_waiting = schedule.work_waiting()
            if work_waiting:
                timeout = 0
            ready = waiter.wait(timeout, precise=rehearse_ms is not None)
            if rehearsal is not None and rehearse_ms is not None and not ready and not work_waiting:
                rehearsal.idle()  # a rehearsal only fills idle time
            for sock in ready:
                if sock in by_socket:
                    by_socket[sock].receive()
                elif sock in outputs_by_socket:
                    outputs_by_socket[sock].read_subscriptions()
                else:
                    schedule.take(sock)
            schedule.handle_waiting()
            if ticking and schedule.may_tick() and clock.due(time.monotonic()):
                assert isinstance(node, Ticking)
                clock.ticked(self._tick(node), time.monotonic())
                self.stats.late_ticks = clock.late_ticks
