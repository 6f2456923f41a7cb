"""The ``register-us`` node: segmented ultrasound slices in, ``ModelToReference`` out.

Each label map (the ``segment`` node's ``labels``: label ids, placed in the Reference frame by its
``ijk_to_ras``, i.e. probe pose and calibration) goes into a
:class:`~igtflow.registration.us_registration.UsRegistrar`, which registers the last slices to
the preoperative case. Every usable slice gives one estimate: the transform (``valid`` and
``error_mm``), the model and the targets moved by it.

An estimate the registrar does not trust (its ``error_mm`` above ``max_error_mm``, …), or that
would put the model further than ``max_offset_mm`` from where the case places it, goes out with
``valid: false``; unsure label frames, staleness and the Status messages are the base's
(:mod:`~igtflow.registration.nodes.registration_node`).

Why ``max_offset_mm``: starting from the case's placement, the registration converges only
from within its capture range (20 mm / 15 degrees on the phantom), so an estimate further than
that from the placement is a wrong fit (a global re-initialisation that fitted a patch of the
organ elsewhere), whatever its residual says; the registrar is then sent back to the last
accepted pose. On the phantom's segmented sweep (register_us.yaml, 20 s) such fits made the p95
TRE of valid estimates 29 mm; with 15 mm (breathing 10 mm and deformation 4 mm at most) it
dropped to 6-11 mm (three runs; slides along the surface within the limit remain).

With ``deformable: true``, a deformable update after the rigid fit (see
:mod:`~igtflow.registration.deformable`) bends the model with the tissue: the ``model`` output is
the bent mesh and ``targets`` the bent targets, while ``transform`` stays the rigid
``ModelToReference``. A deformation over ``max_deformation_mm`` is refused: the estimate goes
out not valid, with the reason. Off by default: on the phantom's held-out seeds it does not yet
beat the rigid pose (``igtflow eval registration`` scores both).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from igtflow.registration.deformable import FieldSettings
from igtflow.registration.icp import DEFAULT, invert
from igtflow.registration.nodes.registration_node import Estimate, RegistrationNode, moved
from igtflow.registration.plausibility import Limits
from igtflow.registration.us_points import SliceWindow
from igtflow.registration.us_registration import MIN_POINTS, UsEstimate, UsRegistrar
from igtflow.stream.messages import Image
from igtflow.stream.node import Count, Fraction, NonNegative, PermanentError, Positive


class RegisterUs(RegistrationNode):
    """Registers the preoperative case to segmented US slices; says when not to trust it."""

    def setup(
        self,
        case: str = "phantom:0",
        structures: tuple[str, ...] = (),
        init: Literal["case", "search"] = "case",
        max_error_mm: Positive = DEFAULT.max_error_mm,
        max_offset_mm: NonNegative = 20.0,
        min_points: Count = MIN_POINTS,
        min_confidence: Fraction | None = None,
        window_slices: Count = 10,
        window_s: Positive = 1.0,
        stale_after_s: Positive = 1.0,
        model_rate_hz: Positive = 5.0,
        min_inlier_fraction: Fraction = Limits.min_inlier_fraction,
        max_median_mm: Positive = Limits.max_median_mm,
        max_p90_mm: Positive = Limits.max_p90_mm,
        search_fits: Count = 4,
        register_hz: Positive | None = None,
        deformable: bool = False,
        max_deformation_mm: Positive = FieldSettings.max_mm,
    ) -> None:
        """
        case: phantom:<seed> (that seed's phantom) or the folder of a case (igtflow phantom
            export, or Slicer exports)
        structures: the case's structures to register to (default: organ and vessel)
        init: start from the case's own placement in the Reference frame (case), or search
            the pose globally (search: needs slices over much of the organ)
        max_error_mm: an estimate whose error exceeds this is sent as not valid
        max_offset_mm: with init case, an estimate moving the model's targets (or centre)
            further than this from the case's placement is sent as not valid (0 = no limit)
        min_points: fewer boundary points in the window never give a valid estimate
        min_confidence: label frames whose meta confidence is below this are left out (none:
            those the segmentation flagged low_confidence)
        window_slices: registered together: the last this many slices...
        window_s: ...no older than this (s) against the newest
        stale_after_s: no usable slice for this long: the estimate is sent as not valid (stale)
        model_rate_hz: the moved model (a large mesh) goes out at most this often
        min_inlier_fraction: each structure's points within 2 mm of its own surface, at least
            (the defaults are set on exact label maps; a network's contours wander more)
        max_median_mm: point-to-surface distance, median, at most...
        max_p90_mm: ...and 90th percentile, at most
        search_fits: when the registration is lost, its global search (about 60 ICP fits,
            0.2-0.5 s) runs at most this many fits per frame and goes on over the next frames,
            its estimates not valid meanwhile: a lost registration never stalls the frame path
        register_hz: register at most this often (by the label maps' capture stamps); the maps in
            between only join the window. None: every map. At a probe's 30 fps a registration
            costs most of a frame period on two cores, so every map queues behind the last one
        deformable: bend the model and targets with the tissue after the rigid fit (false:
            rigid only)
        max_deformation_mm: a deformation larger than this (on the model or a target) is
            implausible: the estimate is sent as not valid
        """
        preop = self.case_from(case, self.id)
        try:
            self.registrar = UsRegistrar.from_case(
                preop,
                list(structures) or None,
                init=np.eye(4) if init == "case" else None,
                window=SliceWindow(window_slices, window_s),
                min_points=min_points,
                search_fits=search_fits,
                criteria=dataclasses.replace(DEFAULT, max_error_mm=max_error_mm),
                limits=Limits(
                    min_inlier_fraction=min_inlier_fraction,
                    max_median_mm=max_median_mm,
                    max_p90_mm=max_p90_mm,
                ),
                deformable=deformable,
                field_settings=FieldSettings(max_mm=max_deformation_mm),
            )
        except (KeyError, ValueError) as exc:
            raise PermanentError(f"node {self.id!r}: case {case!r}: {exc}") from None
        self.start(preop)
        # Where the case places what the offset is measured on: its targets and its centre.
        self.anchors = np.vstack([self.target_points, self.mesh.vertices.mean(axis=0)])
        self.placement = np.eye(4) if init == "case" else None
        self.accepted = self.registrar.model_to_reference
        self.last_update_ns: int | None = None  # capture stamp of the last registered map

    def pose(self) -> np.ndarray:
        return self.registrar.model_to_reference

    def register(self, labels: Image) -> Estimate | None:
        self.registrar.add(labels)
        if self.register_hz is not None:
            period_ns = round(1e9 / self.register_hz)
            last = self.last_update_ns
            if last is not None and labels.stamp_ns - last < period_ns:
                return None
            self.last_update_ns = labels.stamp_ns
        estimate = self.registrar.update()
        reason = self.implausible(estimate)
        if reason:
            # Back to the last accepted pose: tracking on from a wrong fit would stay wrong.
            self.registrar.tracker.last = invert(self.accepted)
            if self.registrar.deform is not None:
                self.registrar.deform.reset()  # fitted around the wrong pose: drop it
            estimate = dataclasses.replace(
                estimate, model_to_reference=self.accepted, valid=False, reason=reason
            )
        elif estimate.valid:
            self.accepted = estimate.model_to_reference
        meta = {
            "points": estimate.points,
            "slices": estimate.slices,
            "update_ms": round(estimate.time_ms, 2),
        }
        place = None
        if estimate.displacement is not None and not reason:
            fit = estimate.deformation
            meta["deformation_mm"] = round(fit.largest_mm, 2) if fit is not None else None
            place = estimate.to_reference
        return Estimate(
            estimate.model_to_reference,
            estimate.valid,
            estimate.error_mm,
            estimate.reason,
            meta,
            place=place,
        )

    def implausible(self, estimate: UsEstimate) -> str:
        """Why a valid ``estimate`` is still a wrong fit: too far from the case's placement."""
        if not estimate.valid or self.placement is None or self.max_offset_mm == 0:
            return ""
        shift = moved(self.anchors, estimate.model_to_reference) - moved(
            self.anchors, self.placement
        )
        offset = float(np.linalg.norm(shift, axis=1).max())
        if offset <= self.max_offset_mm:
            return ""
        return (
            f"the fit moves the model {offset:.1f} mm from the case's placement (limit "
            f"{self.max_offset_mm:g} mm): a wrong fit"
        )
