"""Replays a DICOM cine (multi-frame US, XA or RF) as Image frames at the file's own timing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from igtflow.stream.messages import Image
from igtflow.stream.node import Positive
from igtflow.stream.nodes.file_replay import FileReplay
from igtflow.stream.readers.dicom import DicomCine
from igtflow.stream.readers.frames import FileFrame


class DicomSource(FileReplay):
    """Replays a multi-frame DICOM; only technical tags travel (never who the patient is)."""

    outputs = {"image": Image}

    def setup(self, path: str, loop: bool = False, speed: Positive = 1.0) -> None:
        """
        path: DICOM file (multi-frame ultrasound, XA or RF cine)
        loop: start again from the first frame at the end
        speed: playback speed factor on the file's own timing (rate_hz 0)
        """
        self.cine = DicomCine(path)
        self.scale = np.diag([*self.cine.spacing, 1.0, 1.0])
        if self.cine.timing_source:
            self.log.info("%s: frame timing from %s", Path(path).name, self.cine.timing_source)
        if not self.cine.spacing_source:
            self.log.warning("%s: no pixel spacing tag; using 1 mm", Path(path).name)
        self.start_replay(
            Path(path), self.cine.__iter__, self.cine.rate_hz, loop, speed, self.cine.damage
        )

    def emit_frame(self, frame: FileFrame, stamp_ns: int, loop_pass: int) -> None:
        assert frame.image is not None
        pixels = self.new_frame("image", frame.image.shape, frame.image.dtype)
        pixels[...] = frame.image
        meta = self.frame_meta(frame, loop_pass)
        meta["timing_source"] = self.cine.timing_source
        meta["spacing_source"] = self.cine.spacing_source
        image = Image(
            data=pixels,
            spacing=frame.spacing,
            ijk_to_ras=self.scale,
            modality=self.cine.modality,
            frame="Image",
            stamp_ns=stamp_ns,
            meta=meta,
        )
        self.emit("image", image)
