"""The 2D overlay node: labels, targets and the model drawn on the live frame, with their ages.

A late or wrong overlay must *look* late or wrong: every frame shows the age of each layer, and
when anything drawn is older than ``stale_ms`` the picture is greyed, a red ``STALE`` banner
is drawn and a ``stale-overlay`` Status (warn) goes out on ``status`` (and ``ok`` on recovery);
a frame its source repeated (``meta['frozen']``, set by the runtime's frozen-source watchdog)
is treated the same way, with a ``FROZEN SOURCE`` banner.
When the registration is not to be trusted (its ``transform`` input, or the targets' or the
model's meta ``valid``, is false), model and targets are drawn grey and a red ``REGISTRATION
INVALID`` (or ``REGISTRATION STALE``) band is drawn at the bottom. The node also ticks
(``rate_hz``): when frames stop coming, it redraws the last one so that a frozen stream turns
stale instead of looking live forever.
"""

from __future__ import annotations

import time
from typing import Annotated

import numpy as np
from pydantic import Field

from igtflow.render.freshness import Freshness
from igtflow.render.overlay_compose import LAYERS, OverlayComposer
from igtflow.render.video_out import FrameOutputs
from igtflow.stream.messages import Image, Mesh, Message, Points, Status, Transform
from igtflow.stream.node import Fraction, NonNegative, Positive, Ticking

STALE_CODE = "stale-overlay"


class Overlay(Ticking):
    """Draws labels, targets, model and confidence on the live image; greys it out when stale."""

    inputs = {
        "image": Image,
        "labels": Image,
        "targets": Points,
        "model": Mesh,
        "confidence": Message,
        "transform": Transform,
    }
    outputs = {"overlay": Image}
    rate_hz = 10.0

    def setup(
        self,
        stale_ms: Positive = 250.0,
        static: tuple[str, ...] = (),
        near_mm: NonNegative = 2.0,
        low_confidence: Fraction = 0.5,
        fill_alpha: Fraction = 0.25,
        show: bool = True,
        video: str = "",
        video_fps: Annotated[float, Field(gt=0, le=1000)] = 15.0,
        snapshot_dir: str = "",
        snapshot_every_s: NonNegative = 0.0,
    ) -> None:
        """
        stale_ms: anything drawn older than this (or this much older than the frame) is stale
        static: inputs that do not age (e.g. [model] for a preoperative model sent once)
        near_mm: a target within this distance of the US plane is drawn filled (in plane)
        low_confidence: below this confidence the bar turns red with a LOW CONFIDENCE warning
            (a message whose node flagged it low_confidence is judged by that node's threshold)
        fill_alpha: opacity of the model's silhouette fill on fluoroscopy (0 = outline only)
        show: open a window when a display exists (DISPLAY or WAYLAND_DISPLAY)
        video: MP4 file to write every overlay frame to ('' = none)
        video_fps: frame rate written in the MP4 header
        snapshot_dir: folder for PNG snapshots; create snapshot.request there for one on demand
        snapshot_every_s: write a PNG snapshot this often (0 = only on request)
        """
        if self.rate_hz <= 0:
            raise ValueError(
                f"rate_hz must be > 0 (the stale watchdog redraws), got {self.rate_hz}"
            )
        unknown = sorted(set(static) - set(LAYERS))
        if unknown:
            raise ValueError(f"static names {unknown}, which are not layers ({', '.join(LAYERS)})")
        self.composer = OverlayComposer(stale_ms, static, near_mm, low_confidence, fill_alpha)
        self.sinks = FrameOutputs(
            self.id, self.log, show, video, video_fps, snapshot_dir, snapshot_every_s
        )
        self.frame: Image | None = None
        self.last_render = 0.0
        self.drawn_stale = False
        self.was_stale = False
        self.render_ms: list[float] = []

    def on_image(self, image: Image) -> None:
        self.frame = image
        self.render(image)

    def on_labels(self, labels: Image) -> None:
        self.composer.set_labels(labels)

    def on_targets(self, targets: Points) -> None:
        self.composer.set_targets(targets)

    def on_model(self, model: Mesh) -> None:
        self.composer.set_model(model)

    def on_confidence(self, message: Message) -> None:
        self.composer.set_confidence(message)

    def on_transform(self, transform: Transform) -> None:
        self.composer.set_transform(transform)

    def tick(self) -> float:
        """Redraw the last frame when no new one came for a tick, and at the very moment
        something drawn crosses ``stale_ms``: a frozen feed never looks live past its limit.
        """
        period = 1.0 / self.rate_hz if self.rate_hz > 0 else 0.1
        if self.frame is None:
            return period
        until_stale = self._seconds_until_stale()
        overdue = time.monotonic() - self.last_render >= period
        if overdue or (until_stale <= 0 and not self.drawn_stale):
            self.render(self.frame)
            until_stale = self._seconds_until_stale()
        waits = [period - (time.monotonic() - self.last_render)]
        if until_stale > 0:
            waits.append(until_stale)
        return max(0.0, min(waits))

    def _seconds_until_stale(self) -> float:
        """Seconds until the frame or a live layer is ``stale_ms`` old (<= 0: it already is)."""
        stamps = [self.frame.stamp_ns] if self.frame is not None else []
        static = set(self.composer.static)
        stamps += [s for name, s in self.composer.stamps.items() if name not in static]
        limit_ns = min(stamps) + self.composer.stale_ms * 1e6
        return (limit_ns - time.time_ns()) / 1e9

    def render(self, frame: Image) -> None:
        t0 = time.perf_counter()
        h, w = frame.data.shape[:2]
        out = self.new_frame("overlay", (h, w, 3), np.uint8)
        freshness = self.composer.compose(frame, out, time.time_ns())
        self.render_ms.append((time.perf_counter() - t0) * 1e3)
        if len(self.render_ms) > 1000:
            del self.render_ms[:500]
        self.last_render = time.monotonic()
        self.drawn_stale = freshness.stale
        self.emit(
            "overlay",
            frame.with_data(
                out,
                meta={
                    **frame.meta,
                    "stale": freshness.stale,
                    "ages_ms": {layer.name: round(layer.age_ms, 1) for layer in freshness.layers},
                },
            ),
        )
        self.sinks.write(out, frame.stamp_ns)
        self._report(freshness)

    def _report(self, freshness: Freshness) -> None:
        """One Status on each change: warn when the view turns stale, ok when it recovers."""
        if freshness.stale == self.was_stale:
            return
        self.was_stale = freshness.stale
        if freshness.stale:
            text = freshness.verdict()
            self.log.warning("%s", text)
            status = Status(level="warn", code=STALE_CODE, text=text, frame=self.id)
        else:
            self.log.info("overlay is live again")
            status = Status(level="ok", code=STALE_CODE, text="overlay is live", frame=self.id)
        self.emit("status", status)

    def teardown(self) -> None:
        self.sinks.close()
        if self.render_ms:
            p50, p99 = np.percentile(self.render_ms, [50, 99])
            self.log.info("overlay compose p50 %.2f ms, p99 %.2f ms", p50, p99)
