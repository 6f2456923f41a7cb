"""Tracked ultrasound of the synthetic phantom, with the ground truth of every frame."""

from __future__ import annotations

import time

import numpy as np
from igtflow.stream.messages import Image, Transform
from igtflow.stream.node import Source
from igtflow.stream.nodes.phantom_truth import TRUTH_OUTPUTS, emit_truth
from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim


class PhantomUS(Source):
    """B-mode frames of the breathing phantom from a tracked linear probe, plus truth outputs."""

    outputs = {
        "image": Image,
        "probe_to_tracker": Transform,
        "image_to_probe": Transform,
        **TRUTH_OUTPUTS,
    }

    def setup(
        self,
        seed: int = 0,
        width: int = 256,
        height: int = 256,
        width_mm: float = 60.0,
        depth_mm: float = 80.0,
        path: str = "sweep",
        sweep_speed_mm_s: float = 10.0,
        sweep_range_mm: float = 50.0,
        breathing_amplitude_mm: float = 10.0,
        breathing_period_s: float = 4.0,
        deformation_mm: float = 4.0,
        key_every: int = 30,
        truth: bool = True,
    ) -> None:
        """
        seed: phantom seed; same seed and parameters give bit-identical frames
        width: image width in pixels (lateral)
        height: image height in pixels (depth)
        width_mm: probe aperture (image width) in mm
        depth_mm: imaging depth in mm
        path: probe motion, sweep (left-right across the organ) or static (over the lesion)
        sweep_speed_mm_s: probe speed of the sweep in mm/s
        sweep_range_mm: extent of the sweep in mm
        breathing_amplitude_mm: peak-to-peak breathing excursion (mostly superior-inferior), 0-30
        breathing_period_s: breathing cycle in seconds
        deformation_mm: amplitude of the slow non-rigid deformation, 0-6
        key_every: a new key frame (reference of truth_flow) every this many frames
        truth: emit the truth_* outputs (labels, flow, targets)
        """
        # Frame time comes from the frame index and rate, never the wall clock: deterministic.
        config = UltrasoundConfig(
            width=width,
            height=height,
            width_mm=width_mm,
            depth_mm=depth_mm,
            path=path,
            sweep_speed_mm_s=sweep_speed_mm_s,
            sweep_range_mm=sweep_range_mm,
            rate_hz=self.rate_hz if self.rate_hz > 0 else 30.0,
            key_every=key_every,
        )
        self.sim = UltrasoundSim(
            seed, config, breathing_amplitude_mm, breathing_period_s, deformation_mm
        )
        self.index = 0

    def tick(self) -> None:
        stamp = time.time_ns()  # one capture time for the frame and all its truth
        cfg = self.sim.config
        frame = self.new_frame("image", (cfg.height, cfg.width), np.uint8)
        f = self.sim.render(self.index, out=frame, truth=self.truth)
        meta = {"index": f.index, "time_s": f.time_s, "seed": self.sim.seed}
        self.emit(
            "image",
            Image(
                stamp_ns=stamp,
                data=frame,
                spacing=f.spacing,
                ijk_to_ras=f.ijk_to_ras,
                modality="US",
                frame="Image",
                meta=meta,
            ),
        )
        self.emit(
            "probe_to_tracker",
            Transform(
                stamp_ns=stamp,
                matrix=f.probe_to_tracker,
                from_frame="Probe",
                to_frame="Tracker",
                meta=meta,
            ),
        )
        self.emit(
            "image_to_probe",
            Transform(
                stamp_ns=stamp,
                matrix=f.image_to_probe,
                from_frame="Image",
                to_frame="Probe",
                meta=meta,
            ),
        )
        if self.truth:
            target_meta = {
                "pixels": f.target_pixels.tolist(),
                "out_of_plane_mm": f.target_out_of_plane_mm.tolist(),
            }
            geometry = (f.spacing, f.ijk_to_ras, "Image")
            emit_truth(self, f, stamp, meta, geometry, target_meta)
        self.index += 1
