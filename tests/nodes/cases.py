"""A source of US or XA frames and their layers, with capture stamps made old on purpose."""

from __future__ import annotations

import time
from typing import Literal

from igtflow.stream.messages import Image, Mesh, Points, Transform
from igtflow.stream.node import Source
from tests.helpers.frames import us_scene, xa_scene


class CaseFrames(Source):
    """Emits a frame, its labels, targets, model and probe pose every tick.

    ``ages_ms`` are phases of ``phase_s`` seconds each: during a phase every message is stamped
    that many ms in the past (a late pipeline); the last phase lasts forever.
    """

    repeats_frames = True  # one fixed scene, sent again every tick

    outputs = {
        "image": Image,
        "labels": Image,
        "targets": Points,
        "model": Mesh,
        "probe": Transform,
    }

    def setup(
        self,
        modality: Literal["US", "XA"] = "US",
        size: int = 256,
        ages_ms: tuple[float, ...] = (0.0,),
        phase_s: float = 1.0,
    ) -> None:
        """
        modality: US or XA frames
        size: frame width and height in pixels
        ages_ms: stamp offset per phase (ms in the past)
        phase_s: length of each phase in seconds
        """
        self.scene = (us_scene if modality == "US" else xa_scene)(size)
        self.started = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if not self.started:
            self.started = now
        phase = min(int((now - self.started) / self.phase_s), len(self.ages_ms) - 1)
        stamp = time.time_ns() - int(self.ages_ms[phase] * 1e6)
        scene = self.scene
        self.emit("labels", scene.labels.replace(stamp_ns=stamp))
        self.emit("targets", scene.targets.replace(stamp_ns=stamp))
        self.emit("model", scene.model.replace(stamp_ns=stamp))
        if scene.probe is not None:
            self.emit("probe", scene.probe.replace(stamp_ns=stamp))
        self.emit(
            "image", scene.image.replace(stamp_ns=stamp, meta={**scene.image.meta, "phase": phase})
        )
