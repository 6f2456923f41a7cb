"""A sink that records every message it receives to an MCAP file (see ``recording.py``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from igtflow.stream.messages import Message
from igtflow.stream.node import GRAPH_ENV, WILDCARD, Node
from igtflow.stream.recording import RecordingWriter


def _free_path(path: Path) -> Path:
    """``path``, or ``<stem>-<n><suffix>`` if taken: a restart must never overwrite a recording."""
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


class Record(Node):
    """Writes every input message, as on the wire, to an MCAP recording with the graph inside."""

    inputs = {WILDCARD: Message}

    def setup(self, path: str, graph: str = "") -> None:
        """
        path: MCAP file to write (an existing file is kept; the next free name-N.mcap is used)
        graph: graph YAML file to store in the recording (default: the copy the launcher wrote)
        """
        graph_path = Path(graph) if graph else self._launcher_graph()
        graph_yaml = graph_path.read_text() if graph_path is not None else ""
        if not graph_yaml:
            self.log.warning("no graph YAML found; the recording will not say what produced it")
        target = _free_path(Path(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        self.writer = RecordingWriter(
            target, graph_yaml, {"node_id": self.id, "started_ns": time.time_ns()}
        )
        self.log.info("recording to %s", target)

    @staticmethod
    def _launcher_graph() -> Path | None:
        """The copy of the graph the launcher keeps for this run (``IGTFLOW_GRAPH``), if any."""
        candidate = Path(os.environ.get(GRAPH_ENV, ""))
        return candidate if candidate.name and candidate.is_file() else None

    def on_message(self, input_name: str, message: Message) -> None:
        self.writer.write(message, time.time_ns())

    def teardown(self) -> None:
        self.writer.close()
        self.log.info("recorded %d messages to %s", self.writer.count, self.writer.path)
