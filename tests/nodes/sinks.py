"""Sinks that write what reached them as JSON lines, so a test can read it back while it runs."""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import time

import numpy as np

from igtflow.stream.messages import Image, Message, Status, Transform
from igtflow.stream.node import Node
from tests.nodes.sources import expected_frame


def _maps_shared_memory(array: np.ndarray) -> bool:
    """Whether ``array`` is a view of a shared-memory slot (not of bytes received inline)."""
    base: object = array
    while isinstance(base, np.ndarray | memoryview):
        base = base.base if isinstance(base, np.ndarray) else base.obj
    return isinstance(base, mmap.mmap)


def pixels_sha1(data: np.ndarray) -> str:
    """A digest of a frame's pixels, so a test can match a frame to the file it came from."""
    return hashlib.sha1(np.ascontiguousarray(data).tobytes()).hexdigest()


class Recorder(Node):
    """One JSON line per message: seq, number, trace, arrival time, whether its pixels are intact.

    ``sleep_ms`` is a cycle of per-message handler times, to play a slow or bursty consumer.
    """

    inputs = {"in": Message}

    def setup(self, out: str, sleep_ms: tuple[float, ...] = ()) -> None:
        """
        out: JSON-lines file to append to (kept across restarts)
        sleep_ms: handler time per message in ms, cycled (empty = as fast as possible)
        """
        self.file = open(out, "a", buffering=1)  # noqa: SIM115 - open for the node's life
        self.handled = 0
        self.log.info("recording to %s", out)

    def on_in(self, message: Message) -> None:
        record = {
            "pid": os.getpid(),
            "t_ns": time.time_ns(),
            "kind": message.KIND,
            "topic": message.topic,
            "seq": message.seq,
            "stamp_ns": message.stamp_ns,
            "trace": message.trace,
        }
        if isinstance(message, Image) and "n" in message.meta:
            n = int(message.meta["n"])
            record["n"] = n
            record["shape"] = list(message.data.shape)
            record["intact"] = bool(
                np.array_equal(
                    message.data, expected_frame(n, message.data.shape, message.data.dtype)
                )
            )
            record["mapped"] = _maps_shared_memory(message.data)
            record["meta"] = message.meta
        elif isinstance(message, Image):  # frames from elsewhere (files): what they held
            record.update(
                shape=list(message.data.shape),
                dtype=str(message.data.dtype),
                sha1=pixels_sha1(message.data),
                modality=message.modality,
                spacing=list(message.spacing),
                ijk_to_ras=message.ijk_to_ras.tolist(),
                meta=message.meta,
            )
        if isinstance(message, Transform):
            record.update(
                name=message.name,
                matrix=message.matrix.tolist(),
                valid=message.valid,
                meta=message.meta,
            )
        if isinstance(message, Status):
            record.update(
                level=message.level, code=message.code, text=message.text, meta=message.meta
            )
        self.file.write(json.dumps(record, default=str) + "\n")
        if self.sleep_ms:
            time.sleep(self.sleep_ms[self.handled % len(self.sleep_ms)] / 1000)
        self.handled += 1

    def teardown(self) -> None:
        self.file.close()
