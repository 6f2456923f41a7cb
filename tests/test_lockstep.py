"""The lockstep ledger: reports from different processes arrive in any order; idle means idle."""

from __future__ import annotations

from igtflow.launch.graph import parse_graph
from igtflow.launch.lockstep import LockstepLedger

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
