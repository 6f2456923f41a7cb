"""Video files through OpenCV: any container and codec its build reads, as RGB or gray frames."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from igtflow.stream.readers.errors import SourceFileError, check_input
from igtflow.stream.readers.frames import FileFrame


class VideoFile:
    """An opened, checked video file; iterate it for frames (``uint8`` H×W×3 RGB or H×W gray).

    Opening decodes the first frame, so a file OpenCV cannot read fails here, not mid-replay.
    """

    def __init__(
        self, path: str | Path, grayscale: bool = False, spacing: tuple[float, float] = (1.0, 1.0)
    ) -> None:
        self.path = Path(path)
        self.grayscale = grayscale
        self.spacing = (float(spacing[0]), float(spacing[1]))
        check_input(self.path)
        capture = self._open()
        try:
            ok, first = capture.read()
            if not ok or first is None:
                raise SourceFileError(
                    self.path,
                    "OpenCV opened the file but could not decode its first frame; the file is "
                    "empty, truncated or uses a codec this OpenCV build lacks "
                    "(re-encode it, e.g. `ffmpeg -i in -c:v libx264 out.mp4`)",
                )
            fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            self.fps: float | None = fps if math.isfinite(fps) and 0 < fps < 10_000 else None
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            # Containers without an index report 0 or garbage: then the count is unknown.
            self.frame_count: int | None = count if count > 0 else None
            self.shape = self._convert(first).shape
        finally:
            capture.release()

    def _open(self) -> cv2.VideoCapture:
        try:
            capture = cv2.VideoCapture(str(self.path))
        except cv2.error as exc:
            raise SourceFileError(self.path, f"OpenCV cannot open it: {exc}") from None
        if not capture.isOpened():
            capture.release()
            raise SourceFileError(
                self.path,
                "OpenCV cannot open it as a video (not a video file, or a container/codec this "
                "OpenCV build lacks); re-encode it, e.g. `ffmpeg -i in -c:v libx264 out.mp4`",
            )
        return capture

    def _convert(self, bgr: np.ndarray) -> np.ndarray:
        """OpenCV decodes to BGR; the stream speaks RGB (or gray)."""
        if bgr.ndim == 2:
            gray = bgr
            return gray if self.grayscale else cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
        code = cv2.COLOR_BGR2GRAY if self.grayscale else cv2.COLOR_BGR2RGB
        if bgr.shape[2] == 4:
            code = cv2.COLOR_BGRA2GRAY if self.grayscale else cv2.COLOR_BGRA2RGB
        out = cv2.cvtColor(bgr, code)
        return out if out.dtype == np.uint8 else cv2.convertScaleAbs(out)

    def __iter__(self) -> Iterator[FileFrame]:
        capture = self._open()
        try:
            index = 0
            while True:
                ok, bgr = capture.read()
                if not ok or bgr is None:
                    return
                pos_ms = capture.get(cv2.CAP_PROP_POS_MSEC)
                if self.fps is not None:
                    time_s: float | None = index / self.fps
                elif math.isfinite(pos_ms) and pos_ms > 0:
                    time_s = pos_ms / 1000.0
                else:
                    time_s = None
                yield FileFrame(index, self._convert(bgr), time_s, self.spacing)
                index += 1
        finally:
            capture.release()
