"""A sink that measures what reaches it: counts, sequence gaps and age since capture."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from igtflow.stream.messages import Message
from igtflow.stream.node import WILDCARD, Node, NonNegative


class StatsSink(Node):
    """Counts messages per input and their age since capture; can write the raw ages as JSON."""

    inputs = {WILDCARD: Message}

    def setup(self, report: str = "", log_every_s: NonNegative = 5.0) -> None:
        """
        report: path of a JSON file written on stop with per-input counts and ages (ms)
        log_every_s: seconds between summary log lines (0 = never)
        """
        self.ages_ms: dict[str, list[float]] = {}
        self.last_seq: dict[str, int] = {}
        self.gaps: dict[str, int] = {}
        self.next_log = time.monotonic() + log_every_s

    def on_message(self, input_name: str, message: Message) -> None:
        self.ages_ms.setdefault(input_name, []).append(message.age_ms())
        last = self.last_seq.get(input_name)
        if last is not None and message.seq > last + 1:
            self.gaps[input_name] = self.gaps.get(input_name, 0) + message.seq - last - 1
        self.last_seq[input_name] = message.seq
        if self.log_every_s and time.monotonic() >= self.next_log:
            self.next_log += self.log_every_s
            for name, ages in self.ages_ms.items():
                self.log.info("%s: %d msgs, p50 age %.2f ms", name, len(ages), np.median(ages))

    def teardown(self) -> None:
        if not self.report:
            return
        summary = {
            name: {
                "count": len(ages),
                "gaps": self.gaps.get(name, 0),
                "last_seq": self.last_seq.get(name),
                "ages_ms": ages,
            }
            for name, ages in self.ages_ms.items()
        }
        Path(self.report).write_text(json.dumps(summary))
