"""The ``shift-monitor`` node: how far each target has moved since the case began.

The baseline is each target where the first *valid* estimate put it (a registration's
``targets`` carry meta ``valid``; Points without it count as valid). Every later valid message
gives each target's displacement from there: sent as ``shift`` (``Points``: the displacement
vectors in mm, the targets' names, meta ``shift_mm`` with their lengths), and a ``target-shift``
Status (warn) is raised when one moves more than ``threshold_mm``, with an ``ok`` once every
target is back under it by ``clear_mm``. Targets of an estimate that is not valid are not
compared: a shift measured against a wrong pose would be a false alarm, or a missed one.
"""

from __future__ import annotations

import numpy as np

from igtflow.registration.nodes.alarms import say
from igtflow.stream.messages import Points
from igtflow.stream.node import Node, NonNegative, Positive

SHIFT = "target-shift"


class ShiftMonitor(Node):
    """Each target's displacement since the first valid estimate; an alarm past a threshold."""

    inputs = {"targets": Points}
    outputs = {"shift": Points}

    def setup(self, threshold_mm: Positive = 5.0, clear_mm: NonNegative = 0.5) -> None:
        """
        threshold_mm: a target that moved more than this since the case began raises an alarm
        clear_mm: the alarm clears once every target is this much under the threshold
        """
        self.baseline: dict[str, np.ndarray] = {}
        self.alarmed = False

    def on_targets(self, targets: Points) -> None:
        if targets.meta.get("valid", True) is not True:
            return
        names = targets.labels or [str(n + 1) for n in range(len(targets.points))]
        points = targets.points.astype(np.float64)
        for name, point in zip(names, points, strict=True):
            self.baseline.setdefault(name, point)
        shift = np.stack([p - self.baseline[n] for n, p in zip(names, points, strict=True)])
        lengths = np.linalg.norm(shift, axis=1)
        self.emit(
            "shift",
            Points(
                stamp_ns=targets.stamp_ns,
                points=shift,
                labels=list(names),
                frame=targets.frame,
                meta={
                    "displacement": True,  # vectors, not positions: nothing to score as targets
                    "shift_mm": [round(float(x), 3) for x in lengths],
                    "max_shift_mm": round(float(lengths.max(initial=0.0)), 3),
                    "threshold_mm": self.threshold_mm,
                },
            ),
        )
        self._judge(names, lengths)

    def _judge(self, names: list[str], lengths: np.ndarray) -> None:
        over = [(n, d) for n, d in zip(names, lengths, strict=True) if d > self.threshold_mm]
        if over and not self.alarmed:
            self.alarmed = True
            moved = ", ".join(f"{n} {d:.1f} mm" for n, d in over)
            say(
                self,
                "warn",
                SHIFT,
                f"target shift above {self.threshold_mm:g} mm since the case began: {moved}",
                targets=[n for n, _ in over],
                shift_mm=[round(float(d), 2) for _, d in over],
            )
        elif self.alarmed and lengths.max(initial=0.0) < self.threshold_mm - self.clear_mm:
            self.alarmed = False
            say(self, "ok", SHIFT, f"every target within {self.threshold_mm:g} mm again")
