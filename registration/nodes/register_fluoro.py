"""The ``register-fluoro`` node: segmented fluoroscopy in, ``ModelToReference`` out.

Each label map (the ``segment`` node's ``labels`` of a fluoroscopy frame, whose meta carries the
C-arm geometry) goes into a
:class:`~igtflow.registration.fluoro_registration.FluoroRegistrar`, which fits the model's
projected outlines to the silhouette and tracks the pose frame to frame. The outputs are those of
every registration node (:mod:`~igtflow.registration.nodes.registration_node`): the transform,
the model and the targets moved by it, with validity, staleness and their Status messages. The
targets' meta adds where they project (``pixels``) and how uncertain their depth along the beam
is (``out_of_plane_sd_mm``): one view sees depth only through magnification.

A label map without C-arm geometry gives an estimate that is not valid (and says why); it does
not stop the node, since the next frame may carry it.
"""

from __future__ import annotations

import numpy as np

from igtflow.registration.fluoro_geometry import FluoroGeometryError
from igtflow.registration.fluoro_model import FluoroModel
from igtflow.registration.fluoro_registration import FluoroRegistrar
from igtflow.registration.nodes.registration_node import Estimate, RegistrationNode
from igtflow.stream.messages import Image
from igtflow.stream.node import Count, Fraction, NonNegative, Positive


class RegisterFluoro(RegistrationNode):
    """Registers the preoperative case to segmented fluoroscopy; says when not to trust it."""

    def setup(
        self,
        case: str = "phantom:0",
        max_error_mm: Positive = 1.5,
        min_coverage: Fraction = 0.7,
        min_points: Count = 100,
        depth_prior_sd_mm: NonNegative = 10.0,
        min_confidence: Fraction | None = None,
        stale_after_s: Positive = 1.0,
        model_rate_hz: Positive = 5.0,
        silhouette: bool = True,
    ) -> None:
        """
        case: phantom:<seed> (that seed's phantom) or the folder of a case (igtflow phantom
            export, or Slicer exports); its placement in the Reference frame is the first guess
        max_error_mm: an estimate whose robust contour error exceeds this is not valid
        min_coverage: share of the silhouette's edge the projected model must explain
        min_points: fewer model outline points in the field never give a valid estimate
        depth_prior_sd_mm: how far (SD) the pose may move along the beam from the last one
            (0 = no prior)
        min_confidence: label frames whose meta confidence is below this are left out (none:
            those the segmentation flagged low_confidence)
        stale_after_s: no usable frame for this long: the estimate is sent as not valid (stale)
        model_rate_hz: the moved model (a large mesh) goes out at most this often
        silhouette: fit the organ's silhouette as well as the vessels (false: the contrast-filled
            vessels alone, for label maps that see the organ's faint shadow poorly, as the
            fluoro-seg network's do)
        """
        preop = self.case_from(case, self.id)
        # Without the silhouette the lesion is left out of the vessel outlines: a network's
        # label map draws it as organ, which is then not fitted.
        model = preop if silhouette else FluoroModel.from_case(preop, vessel_structures=("vessel",))
        self.registrar = FluoroRegistrar(
            model,
            max_error_mm=max_error_mm,
            min_coverage=min_coverage,
            min_points=min_points,
            depth_prior_sd_mm=depth_prior_sd_mm,
            silhouette=silhouette,
        )
        self.start(preop)

    def pose(self) -> np.ndarray:
        return self.registrar.model_to_reference

    def register(self, labels: Image) -> Estimate:
        try:
            estimate = self.registrar.update(labels)
        except FluoroGeometryError as exc:
            return Estimate(self.registrar.model_to_reference, False, float("inf"), str(exc))
        pixels = [
            np.asarray(estimate.projected_targets[n], np.float64).tolist()
            for n in self.target_names
            if n in estimate.projected_targets
        ]
        targets_meta = {"out_of_plane_sd_mm": round(float(estimate.out_of_plane_sd_mm), 3)}
        if len(pixels) == len(self.target_names):
            targets_meta["pixels"] = pixels
        meta = {
            "out_of_plane_sd_mm": round(float(estimate.out_of_plane_sd_mm), 3),
            "in_plane_sd_mm": round(float(estimate.in_plane_sd_mm), 3),
            "inlier_fraction": round(float(estimate.inlier_fraction), 3),
            "coverage": round(float(estimate.coverage), 3),
            "points": estimate.points,
            "restarted": estimate.restarted,
            "update_ms": round(estimate.time_ms, 2),
        }
        return Estimate(
            estimate.model_to_reference,
            estimate.valid,
            estimate.error_mm,
            estimate.reason,
            meta,
            targets_meta,
        )
