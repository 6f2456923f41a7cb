"""Replays a video file (anything OpenCV reads) as Image frames at the file's frame rate."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from igtflow.stream.messages import Image
from igtflow.stream.node import Positive
from igtflow.stream.nodes.file_replay import FileReplay
from igtflow.stream.readers.frames import FileFrame
from igtflow.stream.readers.video import VideoFile


class VideoSource(FileReplay):
    """Replays a video file as uint8 RGB (or gray) Images; rate_hz 0 = the file's own rate."""

    outputs = {"image": Image}

    def setup(
        self,
        path: str,
        loop: bool = False,
        grayscale: bool = False,
        modality: Literal["US", "XA", "RF"] = "US",
        spacing: tuple[float, float] = (1.0, 1.0),
        speed: Positive = 1.0,
    ) -> None:
        """
        path: video file (AVI, MP4, MKV… whatever this OpenCV build decodes)
        loop: start again from the first frame at the end
        grayscale: emit H×W gray frames instead of H×W×3 RGB
        modality: Image modality tag (US, XA, RF)
        spacing: pixel size in mm (column, row)
        speed: playback speed factor on the file's own timing (rate_hz 0)
        """
        self.video = VideoFile(path, grayscale=grayscale, spacing=spacing)
        self.scale = np.diag([*self.video.spacing, 1.0, 1.0])
        self.start_replay(Path(path), self.video.__iter__, self.video.fps, loop, speed)

    def emit_frame(self, frame: FileFrame, stamp_ns: int, loop_pass: int) -> None:
        assert frame.image is not None
        pixels = self.new_frame("image", frame.image.shape, np.uint8)
        pixels[...] = frame.image
        image = Image(
            data=pixels,
            spacing=frame.spacing,
            ijk_to_ras=self.scale,
            modality=self.modality,
            frame="Image",
            stamp_ns=stamp_ns,
            meta=self.frame_meta(frame, loop_pass),
        )
        self.emit("image", image)
