"""Running a source node without a graph: its emits go straight into a recording.

``igtflow convert`` and the sample recordings use this, so a file made offline holds exactly the
messages the node sends live, named and numbered as the runtime would name and number them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from igtflow.launch.registry import load_node_class
from igtflow.stream.messages import Message
from igtflow.stream.node import Node, create_node
from igtflow.stream.param_values import check_params
from igtflow.stream.recording import RecordingWriter


class RecordingEmitter:
    """Takes a node's emits and writes them to a recording, stamped as the runtime would.

    ``stamp_ns``, when set, replaces each message's capture stamp (offline there is no "now":
    the caller gives the frame's time).
    """

    def __init__(self, writer: RecordingWriter, node_id: str) -> None:
        self.writer = writer
        self.node_id = node_id
        self.stamp_ns: int | None = None
        self.seq: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def emit(self, output: str, message: Message) -> None:
        seq = self.seq.get(output, 0)
        self.seq[output] = seq + 1
        topic = f"{self.node_id}/{output}"
        stamp = message.stamp_ns if self.stamp_ns is None else self.stamp_ns
        hop = [self.node_id, stamp, stamp]
        self.writer.write(
            message.restamped(topic=topic, seq=seq, stamp_ns=stamp, trace=[hop]),
            log_time_ns=stamp,
        )
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def new_frame(self, output: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.empty(shape, dtype=dtype)


def offline_node(uses: str, node_id: str, params: dict[str, Any], emitter: Any) -> Node:
    """An instance of node type ``uses`` set up with ``params`` (checked and coerced as the graph
    validator checks them, defaults filled in), as the runtime would, emitting into ``emitter``.
    ``rate_hz`` is a parameter like any other; a bad one raises ValueError.
    """
    cls = load_node_class(uses)
    checked = check_params(cls, params, node_id, uses)
    log = logging.getLogger(f"igtflow.offline.{node_id}")
    return create_node(cls, node_id, checked, emitter, log=log)
