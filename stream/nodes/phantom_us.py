"""Tracked ultrasound of the synthetic phantom, with the ground truth of every frame."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from igtflow.stream.messages import Image, Transform
from igtflow.stream.node import Count, ImageSpec, NonNegative, Pixels, Positive, Seed, Source
from igtflow.stream.nodes.phantom_truth import TRUTH_OUTPUTS, emit_truth
from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim


class PhantomUS(Source):
    """B-mode frames of the breathing phantom from a tracked linear or curvilinear probe, plus
    truth outputs.

    A curvilinear frame is black outside its sector; image and truth meta then carry ``probe``
    and ``fov`` (the sector: apex pixel, radius, depth, angle), truth_labels are 0 outside it,
    truth_flow stays defined everywhere and truth_targets meta ``in_fov`` says which targets lie
    inside the sector (in-plane; ``out_of_plane_mm`` says how far off the plane).
    """

    outputs = {
        "image": Image,
        "probe_to_tracker": Transform,
        "image_to_probe": Transform,
        **TRUTH_OUTPUTS,
    }

    @classmethod
    def image_spec(cls, output: str, params: dict[str, Any]) -> ImageSpec | None:
        if output != "image":
            return None
        return ImageSpec(int(params["height"]), int(params["width"]), "US")

    def setup(
        self,
        seed: Seed = 0,
        width: Pixels = 256,
        height: Pixels = 256,
        width_mm: Positive = 60.0,
        depth_mm: Positive = 80.0,
        path: Literal["sweep", "static"] = "sweep",
        sweep_speed_mm_s: NonNegative = 10.0,
        sweep_range_mm: NonNegative = 50.0,
        breathing_amplitude_mm: Annotated[float, Field(ge=0, le=30)] = 10.0,
        breathing_period_s: Positive = 4.0,
        deformation_mm: Annotated[float, Field(ge=0, le=6)] = 4.0,
        key_every: Count = 30,
        truth: bool = True,
        probe: Literal["linear", "curvilinear"] = "linear",
        radius_mm: Positive = 50.0,
        sector_deg: Annotated[float, Field(gt=0, lt=180)] = 70.0,
    ) -> None:
        """
        seed: phantom seed; same seed and parameters give bit-identical frames
        width: image width in pixels (lateral)
        height: image height in pixels (depth)
        width_mm: linear probe aperture (image width) in mm; a curvilinear image spans its sector
        depth_mm: imaging depth in mm (curvilinear: along the beams; 100-120 for an abdominal view)
        path: probe motion, sweep (left-right across the organ) or static (over the lesion)
        sweep_speed_mm_s: probe speed of the sweep in mm/s
        sweep_range_mm: extent of the sweep in mm
        breathing_amplitude_mm: peak-to-peak breathing excursion (mostly superior-inferior), 0-30
        breathing_period_s: breathing cycle in seconds
        deformation_mm: amplitude of the slow non-rigid deformation, 0-6
        key_every: a new key frame (reference of truth_flow) every this many frames
        truth: emit the truth_* outputs (labels, flow, targets)
        probe: linear, or curvilinear (convex array: a sector fanning out from a virtual apex)
        radius_mm: curvilinear: radius of the convex array in mm (about 40-60)
        sector_deg: curvilinear: angle between the outermost beams in degrees (about 60-75)
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
            probe=probe,
            radius_mm=radius_mm,
            sector_deg=sector_deg,
        )
        self.sim = UltrasoundSim(
            seed, config, breathing_amplitude_mm, breathing_period_s, deformation_mm
        )
        self.index = 0
        sector = self.sim.sector
        # Linear frames keep their meta as it was: recordings of them stay bit for bit the same.
        self.fov_meta = {} if sector is None else {"probe": probe, "fov": sector.meta()}

    def tick(self) -> None:
        stamp = time.time_ns()  # one capture time for the frame and all its truth
        cfg = self.sim.config
        frame = self.new_frame("image", (cfg.height, cfg.width), np.uint8)
        f = self.sim.render(self.index, out=frame, truth=self.truth)
        meta = {"index": f.index, "time_s": f.time_s, "seed": self.sim.seed, **self.fov_meta}
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
            if self.fov_meta:
                target_meta["in_fov"] = f.target_in_fov.tolist()
            geometry = (f.spacing, f.ijk_to_ras, "Image")
            emit_truth(self, f, stamp, meta, geometry, target_meta)
        self.index += 1
