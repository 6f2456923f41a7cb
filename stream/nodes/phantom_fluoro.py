"""Fluoroscopy of the synthetic phantom from a C-arm, with the ground truth of every frame."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from igtflow.stream.messages import Image, Transform
from igtflow.stream.node import Count, ImageSpec, Pixels, Positive, Seed, Source
from igtflow.stream.nodes.phantom_truth import TRUTH_OUTPUTS, emit_truth
from igtflow.stream.phantom.carm import CArmGeometry
from igtflow.stream.phantom.fluoro import FluoroConfig, FluoroSim


class PhantomFluoro(Source):
    """Fluoroscopy frames of the breathing phantom with a catheter, plus truth outputs."""

    outputs = {
        "image": Image,
        "carm_pose": Transform,
        **TRUTH_OUTPUTS,
    }

    @classmethod
    def image_spec(cls, output: str, params: dict[str, Any]) -> ImageSpec | None:
        if output != "image":
            return None
        return ImageSpec(int(params["height"]), int(params["width"]), "XA")

    def setup(
        self,
        seed: Seed = 0,
        width: Pixels = 512,
        height: Pixels = 512,
        pixel_spacing_mm: Positive = 0.6,
        sid_mm: Positive = 1000.0,
        sod_mm: Positive = 750.0,
        lao_deg: float = 0.0,
        cranial_deg: float = 0.0,
        dose: Positive = 3000.0,
        polarity: Literal["fluoro", "radiograph"] = "fluoro",
        contrast: bool = False,
        collimate: bool = True,
        breathing_amplitude_mm: Annotated[float, Field(ge=0, le=30)] = 10.0,
        breathing_period_s: Positive = 4.0,
        deformation_mm: Annotated[float, Field(ge=0, le=6)] = 4.0,
        key_every: Count = 30,
        truth: bool = True,
    ) -> None:
        """
        seed: phantom seed; same seed and parameters give bit-identical frames
        width: detector columns
        height: detector rows
        pixel_spacing_mm: detector pixel size in mm
        sid_mm: source-to-detector distance in mm
        sod_mm: source-to-isocentre distance in mm
        lao_deg: C-arm angle, +LAO / -RAO, degrees
        cranial_deg: C-arm angle, +cranial / -caudal, degrees
        dose: photons per pixel through air (lower = noisier)
        polarity: fluoro (dense = dark, as clinical fluoroscopy) or radiograph (dense = bright)
        contrast: vessels filled with iodinated contrast
        collimate: round field of view (black outside), as an image intensifier
        breathing_amplitude_mm: peak-to-peak breathing excursion (mostly superior-inferior), 0-30
        breathing_period_s: breathing cycle in seconds
        deformation_mm: amplitude of the slow non-rigid deformation, 0-6
        key_every: a new key frame (reference of truth_flow) every this many frames
        truth: emit the truth_* outputs (labels, flow, targets)
        """
        geometry = CArmGeometry(
            width=width,
            height=height,
            pixel_spacing_mm=pixel_spacing_mm,
            sid_mm=sid_mm,
            sod_mm=sod_mm,
            lao_deg=lao_deg,
            cranial_deg=cranial_deg,
        )
        config = FluoroConfig(
            dose=dose,
            polarity=polarity,
            contrast=contrast,
            collimate=collimate,
            rate_hz=self.rate_hz if self.rate_hz > 0 else 30.0,
            key_every=key_every,
        )
        self.sim = FluoroSim(
            seed, geometry, config, breathing_amplitude_mm, breathing_period_s, deformation_mm
        )
        g = self.sim.geometry
        self.geometry_meta = g.meta()
        self.spacing = (g.pixel_spacing_mm, g.pixel_spacing_mm)
        self.index = 0

    def tick(self) -> None:
        stamp = time.time_ns()  # one capture time for the frame and all its truth
        g = self.sim.geometry
        frame = self.new_frame("image", (g.height, g.width), np.uint8)
        f = self.sim.render(self.index, out=frame, truth=self.truth)
        meta = {"index": f.index, "time_s": f.time_s, "seed": self.sim.seed}
        ijk_to_ras = g.ijk_to_ras
        self.emit(
            "image",
            Image(
                stamp_ns=stamp,
                data=frame,
                spacing=self.spacing,
                ijk_to_ras=ijk_to_ras,
                modality="XA",
                frame="Detector",
                meta={**meta, **self.geometry_meta},
            ),
        )
        self.emit(
            "carm_pose",
            Transform(
                stamp_ns=stamp,
                matrix=g.carm_to_ras,
                from_frame="CArm",
                to_frame="Tracker",
                meta=meta,
            ),
        )
        if self.truth:
            target_meta = {"pixels": f.target_pixels.tolist()}
            geometry = (self.spacing, ijk_to_ras, "Detector")
            # The C-arm geometry rides with the truth too: a registration can take truth_labels.
            emit_truth(self, f, stamp, {**meta, **self.geometry_meta}, geometry, target_meta)
        self.index += 1
