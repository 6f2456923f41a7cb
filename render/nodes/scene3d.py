"""The 3D scene node: models, the live slice or C-arm, probe and targets, with their ages.

Renders ``rate_hz`` times a second (default 5) with a fixed camera, offscreen when there is no
display, to PNG snapshots and/or an MP4; a window when a display exists and ``show`` is set.
"""

from __future__ import annotations

import time

from igtflow.render.scene import LAYERS, VIEWS, SceneRenderer, prepare_offscreen
from igtflow.render.video_out import FrameOutputs
from igtflow.stream.messages import Image, Mesh, Message, Points, Transform
from igtflow.stream.node import NonNegative, Pixels, Positive, Ticking


class Scene3D(Ticking):
    """Renders the preoperative and deformed models, the live image, probe and targets in 3D."""

    inputs = {
        "model": Mesh,
        "deformed": Mesh,
        "image": Image,
        "probe": Transform,
        "targets": Points,
    }
    outputs = {}
    rate_hz = 5.0
    priority = "background"  # a view for the eye: it waits whenever the live path needs the CPU

    def setup(
        self,
        width: Pixels = 800,
        height: Pixels = 600,
        view: str = "oblique",
        focus: tuple[float, ...] = (),
        distance_mm: NonNegative = 0.0,
        stale_ms: Positive = 250.0,
        static: tuple[str, ...] = ("model",),
        show: bool = True,
        video: str = "",
        snapshot_dir: str = "",
        snapshot_every_s: NonNegative = 1.0,
    ) -> None:
        """
        width: render width in pixels
        height: render height in pixels
        view: fixed camera direction: oblique, anterior, posterior, right, left, superior
        focus: camera focus [R, A, S] in mm (empty = centre of the first content)
        distance_mm: camera distance from the focus (0 = fit the first content)
        stale_ms: a live layer older than this is flagged STALE and drawn grey
        static: inputs that do not age (the preoperative model, sent once)
        show: open a window when a display exists (DISPLAY or WAYLAND_DISPLAY)
        video: MP4 file to write every render to ('' = none)
        snapshot_dir: folder for PNG snapshots; create snapshot.request there for one on demand
        snapshot_every_s: write a PNG snapshot this often (0 = only on request)
        """
        if self.rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0 (renders per second), got {self.rate_hz}")
        if view not in VIEWS:
            raise ValueError(f"view {view!r} is not one of {', '.join(VIEWS)}")
        unknown = sorted(set(static) - set(LAYERS))
        if unknown:
            raise ValueError(f"static names {unknown}, which are not inputs ({', '.join(LAYERS)})")
        offscreen = prepare_offscreen(show)
        self.renderer = SceneRenderer(
            (width, height), view, focus, distance_mm, stale_ms, static, offscreen, self.id
        )
        self.sinks = FrameOutputs(
            self.id,
            self.log,
            show=False,  # the vedo window is the live view; OpenCV shows nothing here
            video=video,
            video_fps=self.rate_hz or 5.0,
            snapshot_dir=snapshot_dir,
            snapshot_every_s=snapshot_every_s,
            snapshot_prefix="scene3d",
        )
        self.log.info("3D scene renders %s", "offscreen" if offscreen else "in a window")

    def on_message(self, input_name: str, message: Message) -> None:
        self.renderer.update(input_name, message)

    def tick(self) -> None:
        rgb = self.renderer.render(time.time_ns())
        self.sinks.write(rgb, time.time_ns())

    def teardown(self) -> None:
        self.sinks.close()
        self.renderer.close()
