"""A source that reports the thread budget its process runs under."""

from __future__ import annotations

import json
import os

from igtflow.stream.node import Source
from igtflow.stream.threads import THREAD_ENV


class ThreadReport(Source):
    """Writes ``{env, cv2}`` thread settings to ``out`` on its first tick, after setup's imports."""

    outputs = {}

    def setup(self, out: str) -> None:
        """out: JSON file to write the report to"""
        import cv2  # noqa: F401 - imported in setup, as a real node would, before the budget applies

        self.reported = False

    def tick(self) -> None:
        if self.reported:
            return
        import cv2

        report = {
            "node": self.id,
            "env": {name: os.environ.get(name) for name in THREAD_ENV},
            "cv2": cv2.getNumThreads(),
        }
        tmp = f"{self.out}.tmp"
        with open(tmp, "w") as file:
            json.dump(report, file)
        os.replace(tmp, self.out)
        self.reported = True
