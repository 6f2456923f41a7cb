"""How old is what a viewer draws, and is any of it too old to be shown as live.

A layer is stale when its capture is older than the limit, either against the clock (``now``) or
against the frame it is drawn on (labels of a frame 400 ms older than the displayed one are
wrong even when the display itself is current). Static layers (a preoperative model sent once)
show their age but never make the view stale. A frame its source repeated (the runtime's
frozen-source watchdog marks it, see ``igtflow.stream.frozen_watch``) makes the view stale
however new its stamp: the picture is not live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FRAME = "frame"


@dataclass(frozen=True)
class LayerAge:
    """Age of one drawn layer: since capture (``age_ms``) and behind the frame (``lag_ms``)."""

    name: str
    age_ms: float
    lag_ms: float
    static: bool = False

    def stale(self, limit_ms: float) -> bool:
        return not self.static and (self.age_ms > limit_ms or self.lag_ms > limit_ms)

    def worst_ms(self) -> float:
        return max(self.age_ms, self.lag_ms)


@dataclass(frozen=True)
class Freshness:
    """The ages of everything in one rendered view and the verdict on it."""

    layers: tuple[LayerAge, ...]
    limit_ms: float
    frozen: str = ""  # the topic of a frozen source the frame came from ("" = none)

    @property
    def stale_layers(self) -> list[LayerAge]:
        return [layer for layer in self.layers if layer.stale(self.limit_ms)]

    @property
    def stale(self) -> bool:
        return bool(self.stale_layers) or bool(self.frozen)

    @property
    def worst(self) -> LayerAge | None:
        """The stalest layer that counts (what the banner names)."""
        stale = self.stale_layers
        return max(stale, key=LayerAge.worst_ms) if stale else None

    def banner(self) -> str:
        if self.frozen:
            return f"FROZEN SOURCE ({self.frozen})"
        worst = self.worst
        if worst is None:
            return ""
        return f"STALE {worst.worst_ms():.0f} ms ({worst.name})"

    def verdict(self) -> str:
        """Why the view is stale, in a sentence ('' when it is live)."""
        if self.frozen:
            return f"overlay shows a frozen source: {self.frozen} repeats its frame"
        worst = self.worst
        if worst is None:
            return ""
        return (
            f"overlay is stale: {worst.name} is {worst.worst_ms():.0f} ms old "
            f"(limit {self.limit_ms:.0f} ms)"
        )


def assess(
    frame_stamp_ns: int,
    layer_stamps: Mapping[str, int],
    now_ns: int,
    limit_ms: float,
    static: Iterable[str] = (),
    frame_name: str = FRAME,
    frozen: str = "",
) -> Freshness:
    """Ages of the frame and each layer at ``now_ns``; ``static`` layers never count as stale;
    ``frozen`` names the source topic when the frame is a repeat (stale however new)."""
    fixed = set(static)
    ages = [LayerAge(frame_name, (now_ns - frame_stamp_ns) / 1e6, 0.0)]
    for name, stamp in layer_stamps.items():
        ages.append(
            LayerAge(
                name,
                (now_ns - stamp) / 1e6,
                max(0.0, (frame_stamp_ns - stamp) / 1e6),
                name in fixed,
            )
        )
    return Freshness(tuple(ages), limit_ms, frozen)
