"""Testing a node without a graph: made as a node process makes it, driven by hand.

A :class:`NodeHarness` creates the node with :func:`igtflow.stream.node.create_node` (parameters
checked by :func:`~igtflow.stream.param_values.check_params`, exactly as ``igtflow validate``
checks them), then calls its handlers as the runtime does and keeps what it emits, stamped as
the runtime stamps it::

    with NodeHarness(SyntheticImage, {"width": 64}, node_id="probe") as probe:
        probe.tick()
        (image,) = probe.emitted["image"]
        assert image.topic == "probe/image" and image.seq == 0

No sockets, processes or threads: a test of a node's logic runs in microseconds. Node types
are given as a class or a ``module:Class`` path; ``igtflow.launch.registry.load_node_class``
turns a short name (``phantom-us``) into the class.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from igtflow.stream.messages import Message
from igtflow.stream.node import (
    WILDCARD,
    Node,
    Source,
    Ticking,
    all_outputs,
    create_node,
    load_class,
)
from igtflow.stream.param_values import check_params


class CollectingEmitter:
    """An emitter that keeps every message a node emits, per output, in order.

    Each message is stamped as the runtime stamps it before sending: topic ``node_id/output``,
    ``seq`` counting from 0 per output, and a trace hop ``[node_id, t_in_ns, t_out_ns]``
    appended. Given the outputs' ``kinds``, a message of another kind than its output declares
    raises TypeError, as live.
    """

    def __init__(self, node_id: str, kinds: dict[str, type[Message]] | None = None) -> None:
        self.node_id = node_id
        self.kinds = kinds
        self.emitted: dict[str, list[Message]] = {}
        self.files: dict[str, str] = {}  # path → last state, as ``report_file`` told it
        self.t_in_ns: int | None = None  # set while a handler runs, as the runtime does

    def emit(self, output: str, message: Message) -> None:
        expected = None if self.kinds is None else self.kinds.get(output)
        if expected is not None and not isinstance(message, expected):
            raise TypeError(
                f"node {self.node_id!r} emitted a {message.KIND} on {output!r}, "
                f"which is declared as {expected.KIND}"
            )
        sent = self.emitted.setdefault(output, [])
        t_out = time.time_ns()
        hop = [self.node_id, self.t_in_ns if self.t_in_ns is not None else t_out, t_out]
        topic = f"{self.node_id}/{output}"
        sent.append(message.restamped(topic=topic, seq=len(sent), trace=[*message.trace, hop]))

    def new_frame(self, output: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.empty(shape, dtype=dtype)

    def report_file(self, path: str, state: str) -> None:
        self.files[path] = state


class NodeHarness:
    """One node of type ``node_type`` with ``params``, driven by :meth:`feed` and :meth:`tick`.

    ``params`` are checked and coerced as the graph validator does (a bad one raises
    ValueError with the validator's words); ``setup`` runs here and whatever it raises
    (a ``PermanentError``, say) comes out of the constructor. Use it as a context manager
    so ``teardown`` runs even when a test fails.
    """

    def __init__(
        self,
        node_type: type[Node] | str,
        params: dict[str, Any] | None = None,
        node_id: str = "node",
        *,
        lockstep: bool = False,
        restart_count: int = 0,
    ) -> None:
        cls = _node_class(node_type)
        checked = check_params(cls, params or {}, node_id)
        self.emitter = CollectingEmitter(node_id)
        log = logging.getLogger(f"igtflow.test.{node_id}")
        self.node = create_node(
            cls,
            node_id,
            checked,
            self.emitter,
            log=log,
            lockstep=lockstep,
            restart_count=restart_count,
        )
        # As live: the outputs are known once setup has run (a replay's come from its file).
        self.emitter.kinds = all_outputs(cls, node_id, checked)
        self.torn_down = False

    @property
    def emitted(self) -> dict[str, list[Message]]:
        """Output name → every message emitted on it so far, stamped, in order."""
        return self.emitter.emitted

    def feed(self, input_name: str, message: Message) -> None:
        """Hand ``message`` to the node as if it arrived on ``input_name``: its ``on_<input>``
        handler, or ``on_message`` for an input without one (wildcard inputs)."""
        declared = type(self.node).inputs
        if input_name not in declared and WILDCARD not in declared:
            raise KeyError(
                f"{type(self.node).__name__} has no input {input_name!r} ({list(declared)})"
            )
        self.emitter.t_in_ns = time.time_ns()
        try:
            self.node.handler(input_name)(message)
        finally:
            self.emitter.t_in_ns = None

    def tick(self) -> float | None:
        """One tick of a ticking node or source; what ``tick`` returned (seconds until the
        next, or None)."""
        if not isinstance(self.node, Ticking):
            raise TypeError(
                f"{type(self.node).__name__} is neither a Source nor a Ticking node: "
                "it has no tick()"
            )
        return self.node.tick()

    @property
    def finished(self) -> bool:
        """Whether the source said it has sent everything (``finished()``)."""
        return isinstance(self.node, Source) and self.node._finished

    def teardown(self) -> None:
        """Call the node's ``teardown`` (once; later calls do nothing)."""
        if not self.torn_down:
            self.torn_down = True
            self.node.teardown()

    def __enter__(self) -> NodeHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()


def _node_class(node_type: type[Node] | str) -> type[Node]:
    if isinstance(node_type, type):
        if not issubclass(node_type, Node):
            raise TypeError(f"{node_type.__name__} is not a Node class")
        return node_type
    if ":" not in node_type:
        raise LookupError(
            f"{node_type!r} is not a module:Class path; for a short name pass "
            f"igtflow.launch.registry.load_node_class({node_type!r})"
        )
    return load_class(node_type)
