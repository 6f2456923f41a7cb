"""The lockstep ledger: reports from different processes arrive in any order; idle means idle;
a node is granted a wave's deliveries in one order, whatever order they arrived in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from igtflow.launch.graph_reader import parse_graph
from igtflow.launch.lockstep import LockstepLedger
from tests.helpers.graph_runs import GraphRun, read_jsonl

GRAPH = """name: chain
nodes:
  - id: src
    uses: synthetic-image
  - id: a
    uses: passthrough
    inputs: {in: src/image}
  - id: b
    uses: passthrough
    inputs: {in: a/out}
"""


def ledger() -> LockstepLedger:
    return LockstepLedger(parse_graph(GRAPH))


def test_a_reader_reporting_before_its_producer_does_not_look_idle() -> None:
    book = ledger()
    book.done("src", None, [["src/image", 0]])
    book.done("b", ["in", "a/out", 0], [])  # b's report overtakes a's
    assert not book.idle and book.release() is None, "a has not said it emitted a/out 0"
    book.done("a", ["in", "src/image", 0], [["a/out", 0]])
    assert book.idle and book.release() == "src"


def test_a_node_emitting_twice_keeps_the_graph_busy_until_both_are_handled() -> None:
    book = ledger()
    book.done("src", None, [["src/image", 0]])
    book.done("a", ["in", "src/image", 0], [["a/out", 0], ["a/out", 1]])
    book.done("b", ["in", "a/out", 0], [])
    assert book.release() is None
    book.done("b", ["in", "a/out", 1], [])
    assert book.release() == "src" and book.released == 1


def test_a_dead_reader_does_not_hang_the_replay() -> None:
    book = ledger()
    book.done("src", None, [["src/image", 0]])
    assert book.release() is None
    assert book.forget("a") == "src" and book.idle


ORDERING = """
name: ordering
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: 100, count: {count}}}
  - id: slow
    uses: tests.nodes.ordering:Jittery
    inputs: {{in: src/image}}
  - id: fast
    uses: tests.nodes.ordering:Jittery
    inputs: {{in: src/image}}
  - id: log
    uses: tests.nodes.ordering:OrderLog
    inputs: {{first: slow/out, second: fast/out}}
    params: {{out: "{out}"}}
"""


def test_a_node_with_two_inputs_handles_each_wave_in_one_order(
    start_graph: Callable[..., GraphRun], tmp_path: Path
) -> None:
    # Two paths of random speed meet in one node: live, who arrives first is chance; in
    # lockstep the node is granted both only when both have arrived, inputs in file order.
    count = 12
    out = tmp_path / "order.jsonl"
    run = start_graph(ORDERING.format(count=count, out=out), lockstep=True)
    run.wait(lambda: len(read_jsonl(out)) >= 2 * count, 60, "every frame on both inputs")
    expected = [[name, n] for n in range(count) for name in ("first", "second")]
    assert read_jsonl(out) == expected


def test_a_reader_is_granted_only_once_nothing_upstream_is_busy() -> None:
    book = ledger()
    book.done("src", None, [["src/image", 0]])
    assert book.grants() == [("a", [["in", "src/image", 0]])]
    assert book.grants() == [], "granted once"
    book.done("a", ["in", "src/image", 0], [["a/out", 0], ["a/out", 1]])
    # a emitted twice: b gets both, in seq order, in one grant
    assert book.grants() == [("b", [["in", "a/out", 0], ["in", "a/out", 1]])]


def test_a_reader_waits_while_an_upstream_node_still_has_work() -> None:
    book = ledger()
    book.done("src", None, [["src/image", 0]])
    book.grants()
    book.done("a", ["in", "src/image", 0], [["a/out", 0]])
    book.done("src", None, [["src/image", 1]])  # a is busy again before b was granted
    grants = dict(book.grants())
    assert "b" not in grants and grants["a"] == [["in", "src/image", 1]]
