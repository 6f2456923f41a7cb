"""Where each topic of a node stands, in a file that outlives the node process.

A node process maps ``<run_dir>/ledger/<node>.bin`` (tmpfs) and writes into it, for every output,
the next seq and the stamp of its last message, and for every input the seq and stamp of the last
message it handled. The pages belong to the file, not to the process, so a node killed with -9
leaves an exact record behind. Its restarted process reads it to continue every topic's seq where
the old one stopped (readers never see a seq go back: ``seq`` gaps stay drops, DESIGN.md), and to
measure what the restart cost: the restart gap of each topic, reported by the runtime.

Layout: one row of three little-endian int64 per topic, outputs first, then inputs, in the order
of the node's config (the same for every incarnation): ``[seq, stamp_ns, written]`` where ``seq``
is the next seq (outputs) or the last seq handled (inputs) and ``written`` is 1 once a message was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FIELDS = 3


@dataclass(frozen=True)
class Mark:
    """Where one topic stood when the previous incarnation of a node stopped."""

    seq: int  # outputs: the next seq to send; inputs: the last seq handled
    stamp_ns: int  # capture time of that last message


class Ledger:
    """The node's rows in its ledger file; ``marks`` is what the previous incarnation left."""

    def __init__(self, run_dir: Path, node_id: str, rows: int) -> None:
        path = Path(run_dir) / "ledger" / f"{node_id}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        shape = (max(1, rows), FIELDS)
        existed = path.exists() and path.stat().st_size == shape[0] * FIELDS * 8
        mapped = np.memmap(path, dtype="<i8", mode="r+" if existed else "w+", shape=shape)
        self.table = mapped.view(np.ndarray)  # plain indexing: a memmap row costs a µs a write
        self.marks: list[Mark | None] = [
            Mark(int(seq), int(stamp)) if existed and written else None
            for seq, stamp, written in self.table[:rows].tolist()
        ]

    def note(self, row: int, seq: int, stamp_ns: int) -> None:
        """Record ``seq`` (see the layout) and the stamp of the message at ``row``."""
        table = self.table
        table[row, 0] = seq
        table[row, 1] = stamp_ns
        table[row, 2] = 1
