"""Where a viewer's frames go: a live window, an MP4 file, PNG snapshots (timed or on request).

A window needs a display (``DISPLAY``/``WAYLAND_DISPLAY``). It is OpenCV's where OpenCV has a GUI,
and VTK's otherwise (the headless OpenCV igtflow installs has none).
A snapshot on demand: create a file named ``snapshot.request`` in the snapshot folder; the next
frame is written there as ``snapshot-<time>.png`` and the request file is removed. (A file, not a
signal, so it works the same from a shell, a script or another host's shared folder.)
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REQUEST_FILE = "snapshot.request"


class VideoOutError(RuntimeError):
    """A video or snapshot file that cannot be written; names the path and the fix."""


def has_display() -> bool:
    """Whether a window could open: an X11 or Wayland display is named in the environment."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class FrameOutputs:
    """Sends each RGB frame to the outputs that were asked for; each may be off."""

    def __init__(
        self,
        name: str,
        log: logging.Logger,
        show: bool = False,
        video: str = "",
        video_fps: float = 15.0,
        snapshot_dir: str = "",
        snapshot_every_s: float = 0.0,
        snapshot_prefix: str = "overlay",
    ) -> None:
        self.name = name
        self.log = log
        self.window = show and has_display() and self._open_window(name)
        self.video_path = Path(video) if video else None
        self.video_fps = video_fps
        self.writer: cv2.VideoWriter | None = None
        self.frames_written = 0
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir else None
        self.snapshot_every_s = snapshot_every_s
        self.prefix = snapshot_prefix
        self.next_snapshot = 0.0
        self.snapshots: list[Path] = []
        if self.snapshot_dir is not None:
            try:
                self.snapshot_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise VideoOutError(
                    f"cannot create snapshot_dir {self.snapshot_dir}: {exc}"
                ) from None
        if self.video_path is not None:
            try:
                self.video_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise VideoOutError(f"cannot create the folder of video {video}: {exc}") from None

    def _open_window(self, name: str) -> Any:
        """An OpenCV window, or a VTK one where OpenCV has no GUI (the headless wheel)."""
        try:
            cv2.namedWindow(name, cv2.WINDOW_NORMAL)
            return True
        except cv2.error:
            pass
        try:
            return VtkWindow(name)
        except Exception as exc:  # no usable OpenGL on this display: say so, keep the files
            self.log.warning("cannot open a window (%s); use video or snapshot_dir", exc)
            return False

    @property
    def wants_frames(self) -> bool:
        """Whether any output is on (else the node skips the colour conversion)."""
        return bool(self.window or self.video_path or self.snapshot_dir)

    def write(self, rgb: np.ndarray, stamp_ns: int) -> None:
        """Show / encode / snapshot one frame (RGB uint8)."""
        if not self.wants_frames:
            return
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if isinstance(self.window, VtkWindow):
            self.window.show(rgb)
        elif self.window:
            cv2.imshow(self.name, bgr)
            cv2.waitKey(1)
        if self.video_path is not None:
            self._encode(bgr)
        if self.snapshot_dir is not None:
            self._snapshots(bgr, stamp_ns)

    def _encode(self, bgr: np.ndarray) -> None:
        if self.writer is None:
            h, w = bgr.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            writer = cv2.VideoWriter(str(self.video_path), fourcc, self.video_fps, (w, h))
            if not writer.isOpened():
                raise VideoOutError(
                    f"cannot write MP4 video {self.video_path} (mp4v codec); check the folder "
                    "is writable and the name ends in .mp4"
                )
            self.writer = writer
            self.size = (w, h)
        if (bgr.shape[1], bgr.shape[0]) != self.size:
            bgr = cv2.resize(bgr, self.size)  # a video keeps its first frame's size
        self.writer.write(bgr)
        self.frames_written += 1

    def _snapshots(self, bgr: np.ndarray, stamp_ns: int) -> None:
        assert self.snapshot_dir is not None
        request = self.snapshot_dir / REQUEST_FILE
        if request.exists():
            self._save(bgr, f"snapshot-{time.strftime('%Y%m%d-%H%M%S')}-{stamp_ns % 10**9:09d}")
            request.unlink(missing_ok=True)
        now = time.monotonic()
        if self.snapshot_every_s > 0 and now >= self.next_snapshot:
            self.next_snapshot = now + self.snapshot_every_s
            self._save(bgr, f"{self.prefix}-{stamp_ns}")
            self._save(bgr, f"{self.prefix}-latest")

    def _save(self, bgr: np.ndarray, stem: str) -> None:
        assert self.snapshot_dir is not None
        path = self.snapshot_dir / f"{stem}.png"
        tmp = path.with_suffix(".tmp.png")
        # Written aside then renamed: a viewer polling the folder never reads half a PNG.
        if not cv2.imwrite(str(tmp), bgr):
            raise VideoOutError(f"cannot write snapshot {path}; check snapshot_dir is writable")
        os.replace(tmp, path)
        if not stem.endswith("-latest"):
            self.snapshots.append(path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            self.log.info("wrote %d frames to %s", self.frames_written, self.video_path)
        if isinstance(self.window, VtkWindow):
            self.window.close()
        elif self.window:
            cv2.destroyWindow(self.name)


class VtkWindow:
    """A live 2D window drawn by VTK: the installed OpenCV is the headless build, without GUI.

    Each frame is uploaded in place into one VTK image, not rebuilt.
    """

    def __init__(self, title: str, offscreen: bool = False) -> None:
        from igtflow.render.scene import prepare_offscreen

        prepare_offscreen(not offscreen)
        import vedo

        self._vedo = vedo
        self.title = title
        self.offscreen = offscreen
        self.plotter: Any = None
        self.image: Any = None
        self.pixels: np.ndarray | None = None

    def show(self, rgb: np.ndarray) -> None:
        from vtkmodules.util.numpy_support import vtk_to_numpy

        upright = np.flipud(rgb)  # VTK's rows run bottom to top
        h, w = rgb.shape[:2]
        if self.pixels is None or self.pixels.shape != (h * w, 3):
            if self.plotter is not None:  # the frame size changed: a window of the new size
                self.plotter.close()
            self.plotter = self._vedo.Plotter(
                title=self.title, size=(w, h), offscreen=self.offscreen, interactive=False
            )
            self.image = self._vedo.Image(np.ascontiguousarray(upright))
            self.plotter.show(self.image, mode="image", zoom="tightest", interactive=False)
            self.pixels = vtk_to_numpy(self.image.dataset.GetPointData().GetScalars())
        self.pixels[:] = upright.reshape(-1, 3)
        self.image.dataset.GetPointData().GetScalars().Modified()
        self.plotter.render()

    def screenshot(self) -> np.ndarray:
        return np.ascontiguousarray(self.plotter.screenshot(asarray=True)[..., :3])

    def close(self) -> None:
        if self.plotter is not None:
            self.plotter.close()
