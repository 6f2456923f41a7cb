"""The 3D scene (vedo): models, the live US slice or the C-arm, the probe, targets and ages.

Rendered offscreen to an RGB array when no display exists (VTK picks EGL, Mesa's software
driver on a machine without a GPU), or into a live window. Actors are rebuilt only when their
input message changes; the camera is fixed (a preset view fitted once to the first content, or
given explicitly), so successive snapshots and video frames line up.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from igtflow.render.freshness import Freshness, assess
from igtflow.render.image_geometry import GeometryError, ProjectionGeometry, frame_geometry
from igtflow.stream.messages import Image, Mesh, Message, Points, Transform

# Camera direction (from the focus towards the camera) and view-up, in RAS.
VIEWS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "oblique": ((0.6, 1.0, 0.5), (0, 0, 1)),
    "anterior": ((0, 1, 0), (0, 0, 1)),
    "posterior": ((0, -1, 0), (0, 0, 1)),
    "right": ((1, 0, 0), (0, 0, 1)),
    "left": ((-1, 0, 0), (0, 0, 1)),
    "superior": ((0, 0, 1), (0, 1, 0)),
}
MODEL_RGB = (0.75, 0.75, 0.8)
DEFORMED_RGB = (1.0, 0.59, 0.0)
TARGET_RGB = (1.0, 0.0, 1.0)
STALE_ALPHA = 0.25
STALE_GREY = (0.55, 0.55, 0.55)
LAYERS = ("model", "deformed", "image", "probe", "targets")


class SceneError(RuntimeError):
    """The 3D renderer could not start (no display and no offscreen OpenGL)."""


def prepare_offscreen(show: bool) -> bool:
    """Pick the render window before VTK loads; True when rendering offscreen.

    Without a display, VTK would first try X11 and print a warning per window; EGL directly is
    quiet and works on Mesa's software driver (libegl-mesa0, libgl1-mesa-dri).
    """
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    offscreen = not (show and has_display)
    if offscreen and not has_display:
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    return offscreen


@dataclass
class _Actor:
    message: Message
    actors: list[Any]


def _image_rgb(data: np.ndarray) -> np.ndarray:
    """Any frame as RGB uint8 for a texture (the same windowing as the 2D overlay)."""
    from igtflow.render.overlay_draw import to_rgb

    return to_rgb(data, np.empty((*data.shape[:2], 3), np.uint8))


def textured_quad(corners: np.ndarray, rgb: np.ndarray) -> Any:
    """A flat quad through 4 RAS corners (pixel order: top-left, top-right, bottom-right,
    bottom-left) carrying the frame as its texture; vedo puts array row 0 at v = 1."""
    import vedo

    quad = vedo.Mesh([corners, [[0, 1, 2, 3]]])
    quad.texture(rgb, tcoords=[[0, 1], [1, 1], [1, 0], [0, 0]], interpolate=True, repeat=False)
    quad.lighting("off")
    return quad


def pixel_corners(shape: Sequence[int]) -> np.ndarray:
    """Outer pixel-edge corners of an H×W frame, as (column, row)."""
    h, w = shape[0], shape[1]
    return np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])


class SceneRenderer:
    """Keeps one vedo Plotter and the actors of the latest messages; renders on demand."""

    def __init__(
        self,
        size: tuple[int, int] = (800, 600),
        view: str = "oblique",
        focus: Sequence[float] = (),
        distance_mm: float = 0.0,
        stale_ms: float = 250.0,
        static: Sequence[str] = ("model",),
        offscreen: bool = True,
        title: str = "igtflow 3D",
    ) -> None:
        if view not in VIEWS:
            raise ValueError(f"view {view!r} is not one of {', '.join(VIEWS)}")
        try:
            import vedo

            vedo.settings.default_backend = "vtk"
            # 8× multisampling (vedo's default) triples the cost under Mesa's software driver.
            vedo.settings.multi_samples = 0
            vedo.settings.use_fxaa = True
            self.plotter = vedo.Plotter(
                offscreen=offscreen, size=tuple(size), bg="black", bg2="#1c2333", title=title
            )
        except Exception as exc:  # VTK raises plain errors from deep inside for a missing GL
            raise SceneError(
                f"cannot open a 3D render window ({type(exc).__name__}: {exc}); without a display "
                "it needs EGL: install libegl1 libegl-mesa0 libgl1-mesa-dri (make system-deps)"
            ) from None
        self.view = view
        self.text_scale = max(0.5, 0.8 * size[1] / 600)
        self.focus = np.asarray(focus, float) if len(focus) == 3 else None
        self.distance_mm = distance_mm
        self.stale_ms = stale_ms
        self.static = tuple(static)
        self.layers: dict[str, _Actor] = {}
        self.fitted: set[str] = set()
        self.text: Any = None
        self.banner: Any = None

    def update(self, name: str, message: Message) -> None:
        """Replace the actors of layer ``name`` by those of ``message``."""
        old = self.layers.pop(name, None)
        if old is not None:
            self.plotter.remove(*old.actors)
        actors = self._actors(name, message)
        self.layers[name] = _Actor(message, actors)
        if actors:
            self.plotter.add(*actors)

    def _actors(self, name: str, message: Message) -> list[Any]:
        import vedo

        if isinstance(message, Mesh):
            mesh = vedo.Mesh([message.vertices, message.faces])
            if name == "model":
                return [mesh.c(MODEL_RGB).alpha(0.25).wireframe(False)]
            return [mesh.c(DEFORMED_RGB).alpha(0.7)]
        if isinstance(message, Points):
            if not len(message.points):
                return []
            return [vedo.Spheres(message.points, r=2.5).c(TARGET_RGB)]
        if isinstance(message, Transform):
            return self._probe(message.matrix)
        if isinstance(message, Image):
            return self._image(message)
        return []

    @staticmethod
    def _probe(matrix: np.ndarray) -> list[Any]:
        """A small probe body with its axes (R, G, B = probe x, y, z), 20 mm long."""
        import vedo

        body = vedo.Box(pos=(0, 0, 0), length=18, width=8, height=12).c("#d0d0d8")
        arrows = [
            vedo.Arrow((0, 0, 0), tuple(20 * np.eye(3)[k]), s=0.15, c=c)
            for k, c in enumerate(("red", "green", "blue"))
        ]
        parts = [body, *arrows]
        for part in parts:
            part.apply_transform(matrix)
        return parts

    def _image(self, image: Image) -> list[Any]:
        import vedo

        try:
            geometry = frame_geometry(image)
        except GeometryError:
            return []
        rgb = _image_rgb(image.data)
        corners_px = pixel_corners(image.data.shape)
        if not isinstance(geometry, ProjectionGeometry):
            ijk = np.column_stack([corners_px, np.zeros(4), np.ones(4)])
            corners = (ijk @ image.ijk_to_ras.T)[:, :3]
            quad = textured_quad(corners, rgb)
            return [quad, vedo.Line([*corners, corners[0]], c="yellow", lw=2)]
        # Fluoroscopy: the X-ray source, the detector carrying the image, the beam's edges.
        corners = geometry.detector_points(corners_px)
        source = geometry.source
        parts = [
            textured_quad(corners, rgb),
            vedo.Line([*corners, corners[0]], c="yellow", lw=2),
            vedo.Sphere(source, r=15, c="yellow"),
        ]
        parts += [vedo.Line(source, c, c="yellow", lw=1, alpha=0.4) for c in corners]
        return parts

    def _freshness(self, now_ns: int) -> Freshness | None:
        stamps = {name: entry.message.stamp_ns for name, entry in self.layers.items()}
        if not stamps:
            return None
        if "image" in stamps:
            return assess(stamps.pop("image"), stamps, now_ns, self.stale_ms, self.static, "image")
        # No live image: each layer is judged against the clock alone.
        return assess(now_ns, stamps, now_ns, self.stale_ms, self.static, "newest")

    def _fit_camera(self) -> None:
        bounds = np.array(self.plotter.renderer.ComputeVisiblePropBounds())
        if not np.all(np.isfinite(bounds)) or bounds[1] < bounds[0]:
            return
        lo, hi = bounds[0::2], bounds[1::2]
        focus = self.focus if self.focus is not None else (lo + hi) / 2
        direction, up = (np.asarray(v, float) for v in VIEWS[self.view])
        direction /= np.linalg.norm(direction)
        distance = self.distance_mm or 1.7 * float(np.linalg.norm(hi - lo))
        self.plotter.camera.SetFocalPoint(*focus)
        self.plotter.camera.SetPosition(*(focus + direction * max(distance, 50.0)))
        self.plotter.camera.SetViewUp(*up)
        self.plotter.renderer.ResetCameraClippingRange()
        self.fitted = set(self.layers)

    def render(self, now_ns: int) -> np.ndarray:
        """Draw the scene with each layer's age; an RGB uint8 array of the window."""
        import vedo

        freshness = self._freshness(now_ns)
        if not set(self.layers) <= self.fitted:
            self._fit_camera()  # fixed from now on, unless a new kind of content arrives
        lines = []
        stale = freshness is not None and freshness.stale
        if freshness is not None:
            for layer in freshness.layers:
                if layer.name == "newest":
                    continue
                name = layer.name
                flag = "  STALE" if layer.stale(self.stale_ms) else ""
                flag += "  static" if layer.static else ""
                lines.append(f"{name:<9} age {layer.age_ms:6.0f} ms{flag}")
        if self.text is not None:
            self.plotter.remove(self.text)
        self.text = vedo.Text2D(
            "\n".join(lines) or "waiting for data",
            pos="bottom-left",
            s=self.text_scale,
            c="tomato" if stale else "white",
            bg="black",
            alpha=0.6,
            font="VictorMono",
        )
        self.plotter.add(self.text)
        if self.banner is not None:
            self.plotter.remove(self.banner)
            self.banner = None
        if stale:
            assert freshness is not None
            self.banner = vedo.Text2D(
                f" {freshness.banner()} ",
                pos="top-center",
                s=1.7 * self.text_scale,
                c="white",
                bg="red3",
                alpha=1,
            )
            self.plotter.add(self.banner)
        self._grey(stale)
        self.plotter.render()
        return np.ascontiguousarray(self.plotter.screenshot(asarray=True)[..., :3])

    def _grey(self, stale: bool) -> None:
        """Stale live layers turn grey, so a late model never passes for the current one."""
        for name in ("deformed", "targets"):
            entry = self.layers.get(name)
            if entry is None:
                continue
            colour = STALE_GREY if stale else (DEFORMED_RGB if name == "deformed" else TARGET_RGB)
            for actor in entry.actors:
                actor.c(colour)
        # The slice and the probe keep their own colours, so a stale one fades instead.
        for name in ("image", "probe"):
            entry = self.layers.get(name)
            for actor in entry.actors if entry is not None else ():
                if not hasattr(actor, "fresh_alpha"):
                    actor.fresh_alpha = actor.alpha()  # its own, e.g. 0.4 for beam lines
                actor.alpha(actor.fresh_alpha * (STALE_ALPHA if stale else 1.0))

    def close(self) -> None:
        self.plotter.close()
