"""Replays a PLUS sequence file (.seq.mha, .igs.mha, .seq.nrrd…): images and every transform."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from igtflow.stream.messages import Image, Transform
from igtflow.stream.node import Positive
from igtflow.stream.nodes.file_replay import FileReplay
from igtflow.stream.readers.frames import FileFrame, TrackedTransform
from igtflow.stream.readers.plus_sequence import PlusSequence


def image_pose(frame: FileFrame) -> tuple[np.ndarray, str]:
    """IJK-to-RAS of a frame from the poses recorded with it, and which ones were used.

    The tracker frame is patient RAS; without a valid pose the image stays in pixel-mm space.
    """
    scale = np.diag([*frame.spacing, 1.0, 1.0])
    poses = {t.name: t.matrix for t in frame.transforms if t.valid}
    if "ImageToTracker" in poses:
        return poses["ImageToTracker"] @ scale, "ImageToTracker"
    if "ImageToProbe" in poses and "ProbeToTracker" in poses:
        chain = poses["ProbeToTracker"] @ poses["ImageToProbe"]
        return chain @ scale, "ProbeToTracker*ImageToProbe"
    return scale, ""


class PlusSequenceSource(FileReplay):
    """Replays a PLUS sequence: one Image per valid frame, one Transform per recorded pose."""

    outputs = {"image": Image, "transforms": Transform}

    def setup(
        self,
        path: str,
        loop: bool = False,
        speed: Positive = 1.0,
        modality: Literal["US", "XA", "RF"] = "US",
    ) -> None:
        """
        path: PLUS sequence file (.seq.mha, .igs.mha, .mha, .mhd, .seq.nrrd, .igs.nrrd, .nrrd)
        loop: start again from the first frame at the end
        speed: playback speed factor on the file's timestamps (rate_hz 0)
        modality: Image modality tag of the frames (US, XA, RF)
        """
        self.sequence = PlusSequence(path)
        self.log.info(
            "%s: %d frames, transforms: %s",
            Path(path).name,
            self.sequence.frame_count,
            ", ".join(self.sequence.transform_names) or "none",
        )
        self.start_replay(
            Path(path),
            self.sequence.__iter__,
            self.sequence.rate_hz,
            loop,
            speed,
            self.sequence.damage,
        )

    def emit_frame(self, frame: FileFrame, stamp_ns: int, loop_pass: int) -> None:
        meta = self.frame_meta(frame, loop_pass)
        for tracked in frame.transforms:
            self.emit("transforms", self._transform(tracked, stamp_ns, meta))
        if frame.image is None:
            return  # ImageStatus INVALID: the poses still went out
        pixels = self.new_frame("image", frame.image.shape, frame.image.dtype)
        pixels[...] = frame.image
        ijk_to_ras, pose = image_pose(frame)
        image = Image(
            data=pixels,
            spacing=frame.spacing,
            ijk_to_ras=ijk_to_ras,
            modality=self.modality,
            frame="Tracker" if pose else "Image",
            stamp_ns=stamp_ns,
            meta={**meta, "pose": pose},
        )
        self.emit("image", image)

    @staticmethod
    def _transform(tracked: TrackedTransform, stamp_ns: int, meta: dict) -> Transform:
        timing = {k: meta[k] for k in ("frame_index", "loop", "file_timestamp_s") if k in meta}
        return Transform(
            matrix=tracked.matrix,
            from_frame=tracked.from_frame,
            to_frame=tracked.to_frame,
            valid=tracked.valid,
            frame=tracked.to_frame,
            stamp_ns=stamp_ns,
            meta={"name": tracked.name, "status": tracked.status, **timing},
        )
