"""The node loop's parts that decide order and timing, tested without processes: the tick clock,
the live and lockstep schedules, and the rehearsal the loop consults before it sleeps."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from igtflow.stream import control, packets, wire
from igtflow.stream.messages import Image, Message
from igtflow.stream.pacing import TickClock
from igtflow.stream.rehearsal import EARLY_S, LEADS_S, Rehearsal
from igtflow.stream.scheduling import LiveSchedule, LockstepSchedule
from igtflow.stream.transport import LATEST, QUEUE, Arrival

# --- the tick clock ----------------------------------------------------------------------------


def test_ticks_come_every_period_from_the_start() -> None:
    clock = TickClock(rate_hz=10)
    clock.start(now=100.0)
    assert clock.due(100.0), "the first tick is due at once"
    clock.ticked(None, now=100.01)
    assert not clock.due(100.05)
    assert clock.due(100.1)
    clock.ticked(None, now=100.12)  # a little late: the next keeps the grid, not the delay
    assert clock.next_tick == pytest.approx(100.2)
    assert clock.late_ticks == 0


def test_a_tick_more_than_a_period_late_is_counted_and_not_caught_up_on() -> None:
    clock = TickClock(rate_hz=10)
    clock.start(now=100.0)
    clock.ticked(None, now=100.5)  # four ticks' worth behind
    assert clock.late_ticks == 1
    assert clock.next_tick == pytest.approx(100.6), "one period from now, not a burst"


def test_a_tick_that_returns_a_delay_sets_the_next_one_itself() -> None:
    clock = TickClock(rate_hz=30)
    clock.start(now=5.0)
    clock.ticked(0.25, now=5.01)
    assert clock.next_tick == pytest.approx(5.26)
    assert clock.gap == 0.25, "rehearsals judge a ticker by its last wait"
    clock.ticked(-1.0, now=6.0)
    assert clock.next_tick == 6.0, "a negative delay means now"


def test_rate_zero_ticks_as_fast_as_possible() -> None:
    clock = TickClock(rate_hz=0)
    clock.start(now=1.0)
    for now in (1.0, 1.001, 1.002):
        assert clock.due(now)
        clock.ticked(None, now)
    assert clock.wait_ms(2.0, longest_ms=50) == 0.0


def test_the_wait_for_messages_ends_at_the_next_tick_and_never_exceeds_its_cap() -> None:
    clock = TickClock(rate_hz=1)
    clock.start(now=0.0)
    clock.ticked(None, now=0.0)
    assert clock.wait_ms(0.99, longest_ms=50) == pytest.approx(10.0)
    assert clock.wait_ms(0.0, longest_ms=50) == 50
    assert clock.wait_ms(2.0, longest_ms=50) == 0.0


# --- schedules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeInputConfig:
    name: str
    policy: str = LATEST


@dataclass
class FakeInput:
    """An input whose socket is a list: ``receive`` moves what 'arrived' into ``pending``."""

    config: FakeInputConfig
    pending: deque[Arrival] = field(default_factory=deque)
    in_socket: list[Arrival] = field(default_factory=list)
    receives: int = 0

    def receive(self) -> int:
        self.receives += 1
        moved = len(self.in_socket)
        self.pending.extend(self.in_socket)
        self.in_socket.clear()
        return moved

    def pop(self) -> Arrival | None:
        return self.pending.popleft() if self.pending else None

    def take(self, topic: str, seq: int, peek: bool = False) -> Arrival | None:
        for arrival in self.pending:
            if (arrival.message.topic, arrival.message.seq) == (topic, seq):
                if not peek:
                    self.pending.remove(arrival)
                return arrival
        return None


def arrival(topic: str, seq: int) -> Arrival:
    return Arrival(Message().restamped(topic=topic, seq=seq), 0, 0)


class FakeControl:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, kind: str, **fields: Any) -> None:
        self.sent.append(kind)


class FakeLockstepLink:
    """Records DONE reports (copying what was sent: the list is reused) and hands out grants."""

    def __init__(self) -> None:
        self.socket = object()
        self.reports: list[tuple[Any, list[list[Any]]]] = []
        self.ended = False
        self.incoming: list[tuple[bool, list[list[Any]]]] = []

    def done(self, handled: list[Any] | None, emitted: list[list[Any]]) -> None:
        self.reports.append((handled, [list(e) for e in emitted]))

    def end(self) -> None:
        self.ended = True

    def take(self) -> tuple[bool, list[list[Any]]]:
        return self.incoming.pop(0) if self.incoming else (False, [])

    def close(self) -> None:
        pass


def test_live_handles_one_message_per_input_per_turn_and_refills_queues_at_once() -> None:
    latest = FakeInput(FakeInputConfig("image"))
    queue = FakeInput(FakeInputConfig("labels", QUEUE))
    latest.pending.extend([arrival("a/image", 0)])
    queue.pending.extend([arrival("b/labels", 0), arrival("b/labels", 1)])
    handled: list[tuple[str, int]] = []
    schedule = LiveSchedule(
        [latest, queue],  # type: ignore[list-item]
        lambda inp, got: handled.append((inp.config.name, got.message.seq)),
        FakeControl(),  # type: ignore[arg-type]
    )
    assert schedule.work_waiting() and schedule.may_tick()
    assert schedule.sent is None and schedule.handles == [], "live needs no reports, no socket"
    schedule.handle_waiting()
    assert handled == [("image", 0), ("labels", 0)]
    assert (latest.receives, queue.receives) == (0, 1), "a queue input takes in what came"
    schedule.handle_waiting()
    assert handled[-1] == ("labels", 1)
    assert not schedule.work_waiting()


def test_live_says_a_finished_source_is_done_on_the_control_line() -> None:
    link = FakeControl()
    schedule = LiveSchedule([], lambda inp, got: None, link)  # type: ignore[arg-type]
    schedule.ticked()
    schedule.finished()
    assert link.sent == [control.EOS]


def lockstep(*inputs: FakeInput) -> tuple[LockstepSchedule, FakeLockstepLink, list[Any]]:
    link = FakeLockstepLink()
    handled: list[tuple[str, str, int]] = []
    schedule = LockstepSchedule(
        link,  # type: ignore[arg-type]
        {i.config.name: i for i in inputs},  # type: ignore[misc]
        lambda inp, got: handled.append((inp.config.name, got.message.topic, got.message.seq)),
    )
    return schedule, link, handled


def test_lockstep_handles_only_what_was_granted_in_the_order_granted() -> None:
    a, b = FakeInput(FakeInputConfig("a")), FakeInput(FakeInputConfig("b"))
    a.pending.extend([arrival("x/out", 0), arrival("x/out", 1)])
    b.pending.append(arrival("y/out", 0))
    schedule, link, handled = lockstep(a, b)
    assert not schedule.work_waiting(), "nothing granted yet"
    schedule.handle_waiting()
    assert handled == []
    link.incoming.append((False, [["b", "y/out", 0], ["a", "x/out", 1]]))
    schedule.take(link.socket)
    assert schedule.work_waiting()
    schedule.handle_waiting()
    assert handled == [("b", "y/out", 0), ("a", "x/out", 1)]
    assert [r[0] for r in link.reports] == [["b", "y/out", 0], ["a", "x/out", 1]]
    assert list(a.pending) and a.pending[0].message.seq == 0, "the ungranted one stays"


def test_lockstep_waits_for_a_granted_message_that_has_not_arrived() -> None:
    a = FakeInput(FakeInputConfig("a"))
    schedule, link, handled = lockstep(a)
    link.incoming.append((False, [["a", "x/out", 3]]))
    schedule.take(link.socket)
    assert not schedule.work_waiting(), "granted but not here: the loop may sleep"
    schedule.handle_waiting()
    assert handled == [] and a.receives == 1, "it looked in the socket once"
    a.in_socket.append(arrival("x/out", 3))
    schedule.handle_waiting()
    assert handled == [("a", "x/out", 3)]


def test_lockstep_reports_what_each_handler_and_tick_sent_then_waits_for_next() -> None:
    a = FakeInput(FakeInputConfig("a"))
    a.pending.append(arrival("x/out", 0))
    schedule, link, _ = lockstep(a)
    assert schedule.sent is not None and schedule.handles == [link.socket]
    link.incoming.append((False, [["a", "x/out", 0]]))
    schedule.take(link.socket)
    schedule.sent.append(["me/out", 0])  # what the runtime notes while the handler emits
    schedule.handle_waiting()
    assert link.reports == [(["a", "x/out", 0], [["me/out", 0]])]
    assert schedule.sent == [], "each report carries only what was sent since the last"

    schedule.ticked()
    assert len(link.reports) == 1 and schedule.may_tick(), "a tick that sent nothing is unseen"
    schedule.sent.append(["me/out", 1])
    schedule.ticked()
    assert link.reports[-1] == (None, [["me/out", 1]])
    assert not schedule.may_tick(), "the next tick waits until the graph is idle"
    link.incoming.append((True, []))
    schedule.take(link.socket)
    assert schedule.may_tick()
    schedule.finished()
    assert link.ended


# --- the rehearsal ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Tapped:
    """An input as a rehearsal sees it: a tap on the packets taken."""

    on_taken: Any = None


class Sent:
    """An output as a rehearsal sees it: its last small packet."""

    def __init__(self, packet: bytes | None) -> None:
        self.last_packet = packet


def small_packet() -> bytes:
    image = Image(data=np.zeros((8, 8), np.uint8)).restamped(topic="src/image", seq=1)
    return packets.pack(wire.encode(image))


def test_a_steady_input_is_rehearsed_twice_before_each_message_when_idle() -> None:
    clock = FakeClock(10.0)
    inp = Tapped()
    rehearsal = Rehearsal([inp], [Sent(small_packet())], clock)  # type: ignore[list-item]
    assert rehearsal.plan(None, 0.0) is None, "no stream, no rehearsal"
    inp.on_taken(small_packet())
    clock.now = 10.033
    inp.on_taken(small_packet())  # a 30 Hz stream: the next is due at 10.066
    wait_ms = rehearsal.plan(None, 0.0)
    assert wait_ms == pytest.approx((0.033 - LEADS_S[0]) * 1e3)
    rehearsal.idle()
    assert rehearsal.count == 0, "woken before its time: nothing to do"
    clock.now = 10.066 - LEADS_S[0] - EARLY_S / 2  # a wake-up a little early still counts
    rehearsal.idle()
    assert rehearsal.count == 1
    wait_ms = rehearsal.plan(None, 0.0)
    assert wait_ms is not None and clock.now + wait_ms / 1e3 == pytest.approx(10.066 - LEADS_S[1])
    clock.now = 10.066 - LEADS_S[1]
    rehearsal.idle()
    assert rehearsal.count == 2
    assert rehearsal.plan(None, 0.0) is None, "both done: nothing until the next message"


def test_a_slow_tick_is_rehearsed_for_but_a_fast_one_is_not() -> None:
    clock = FakeClock(1.0)
    rehearsal = Rehearsal([], [Sent(small_packet())], clock)  # type: ignore[list-item]
    assert rehearsal.plan(1.001, tick_gap=0.001) is None, "a 1 kHz ticker stays warm"
    assert rehearsal.plan(1.1, tick_gap=0.1) == pytest.approx((0.1 - LEADS_S[0]) * 1e3)


def test_a_message_too_near_is_not_delayed_by_a_rehearsal() -> None:
    clock = FakeClock(1.0)
    rehearsal = Rehearsal([], [Sent(small_packet())], clock)  # type: ignore[list-item]
    rehearsal.plan(1.1, tick_gap=0.1)
    clock.now = 1.0999  # overslept to within SKIP_WITHIN_S of the tick
    rehearsal.idle()
    assert rehearsal.plan(1.1, tick_gap=0.1) == 0.0, "the second is overdue too"
    rehearsal.idle()
    assert rehearsal.count == 0, "both skipped: the tick comes first"
    assert rehearsal.plan(1.1, tick_gap=0.1) is None


def test_rehearsals_are_off_in_lockstep_and_by_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Rehearsal.for_node([], [], lockstep=True) is None
    monkeypatch.setenv("IGTFLOW_REHEARSAL", "0")
    assert Rehearsal.for_node([], [], lockstep=False) is None
    monkeypatch.setenv("IGTFLOW_REHEARSAL", "1")
    assert isinstance(Rehearsal.for_node([], [], lockstep=False), Rehearsal)
