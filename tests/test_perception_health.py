"""The low-confidence alarm: raised at once, cleared only when the confidence has clearly
recovered, so a confidence hovering at the threshold does not flicker the alarm."""

from __future__ import annotations

import logging
from typing import Any

from igtflow.perception.nodes.health import CLEAR_FRAMES, CLEAR_MARGIN, FrameHealth


class Said:
    """Stands in for the node: what FrameHealth publishes, collected."""

    id = "track"
    log = logging.getLogger("test")
    _emitter = object()  # outside a graph: no alarm channel

    def __init__(self) -> None:
        self.statuses: list[Any] = []

    def emit(self, output: str, message: Any) -> None:
        self.statuses.append(message)


def levels(values: list[float], threshold: float = 0.5) -> tuple[list[str], list[bool]]:
    node = Said()
    health = FrameHealth(node)  # type: ignore[arg-type]
    flags = [health.confidence(v, threshold, "tracking") for v in values]
    return [s.level for s in node.statuses], flags


def test_a_confidence_hovering_at_the_threshold_raises_once_and_never_flickers() -> None:
    hovering = [0.6, 0.49, 0.51, 0.48, 0.52, 0.47, 0.53, 0.49, 0.51] * 3
    said, flags = levels(hovering)
    assert said == ["warn"]
    assert flags == [v < 0.5 for v in hovering]  # each frame's own flag stays exact


def test_the_alarm_clears_after_frames_clearly_above_the_threshold() -> None:
    clear = 0.5 + CLEAR_MARGIN + 0.01
    said, _ = levels([0.3] + [clear] * (CLEAR_FRAMES - 1) + [0.52] + [clear] * CLEAR_FRAMES)
    assert said == ["warn", "ok"]
    said, _ = levels([0.9, 0.9, 0.3])
    assert said == ["warn"]  # a good start is not announced
