"""The ``register-us`` node: segmented ultrasound slices in, ``ModelToReference`` out.

Each label map (the ``segment`` node's ``labels``: label ids, placed in the Reference frame by its
``ijk_to_ras``, i.e. probe pose and calibration) goes into a
:class:`~igtflow.registration.us_registration.UsRegistrar`, which registers the last slices to
the preoperative case. Every usable slice gives one estimate: the transform (``valid`` and
``error_mm``), the model and the targets moved by it.

What must never happen is a wrong or old pose shown as good, so:
- an estimate the registrar does not trust (its ``error_mm`` above ``max_error_mm``, …), or
  that would put the model further than ``max_offset_mm`` from where the case places it, goes
  out with ``valid: false`` and a ``registration-invalid`` Status that says why;
- label frames the segmentation is not sure of (its ``low_confidence`` flag, or a meta
  ``confidence`` below ``min_confidence``) are left out, and said once;
- when no usable slice came for ``stale_after_s``, the last pose goes out again with ``valid:
  false`` (meta ``stale``) on every tick, with a ``registration-stale`` Status.
Each of these raises one Status when it starts and an ``ok`` one when it ends.

Why ``max_offset_mm``: starting from the case's placement, the registration converges only
from within its capture range (20 mm / 15 degrees on the phantom), so an estimate further than
that from the placement is a wrong fit (a global re-initialisation that fitted a patch of the
organ elsewhere), whatever its residual says; the registrar is then sent back to the last
accepted pose. On the phantom's segmented sweep (register_us.yaml, 20 s) such fits made the p95
TRE of valid estimates 29 mm; with 15 mm (breathing 10 mm and deformation 4 mm at most) it
dropped to 6 mm.

The registration is rigid: the model and targets are moved rigidly (no deformable update yet).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Literal

import numpy as np

from igtflow.registration.case import PreopCase, load_case
from igtflow.registration.icp import DEFAULT, invert
from igtflow.registration.nodes.alarms import say
from igtflow.registration.phantom_preop import phantom_preop, phantom_seed
from igtflow.registration.preop_model import PreopModelError
from igtflow.registration.us_points import SliceWindow
from igtflow.registration.us_registration import MIN_POINTS, UsEstimate, UsRegistrar
from igtflow.stream.messages import Image, Mesh, Points, Transform
from igtflow.stream.node import Count, Fraction, NonNegative, PermanentError, Positive, Ticking

FROM_FRAME, TO_FRAME = "Model", "Reference"
INVALID, STALE, SKIPPED = "registration-invalid", "registration-stale", "labels-skipped"


def load_preop(spec: str) -> PreopCase:
    """The case ``spec`` names: ``phantom:<seed>`` or the folder of a case (``load_case``)."""
    seed = phantom_seed(spec)
    return phantom_preop(seed) if seed is not None else load_case(spec)


def case_mesh(case: PreopCase) -> Mesh:
    """Every structure of ``case`` as one Mesh; scalar = the structure's label id (its index
    from 1 when the case names no labels), as the phantom's model carries it."""
    ids = {name: label for label, name in case.label_names.items()}
    vertices, faces, scalars = [], [], []
    offset = 0
    for n, (name, model) in enumerate(case.structures.items()):
        vertices.append(model.vertices)
        faces.append(model.faces + offset)
        scalars.append(np.full(len(model.vertices), ids.get(name, n + 1), np.float32))
        offset += len(model.vertices)
    return Mesh(
        vertices=np.concatenate(vertices),
        faces=np.concatenate(faces),
        scalars=np.concatenate(scalars),
        frame=FROM_FRAME,
        meta={"case": case.source, "structures": list(case.structures)},
    )


def moved(points: np.ndarray, model_to_reference: np.ndarray) -> np.ndarray:
    m = model_to_reference
    return np.asarray(points, np.float64) @ m[:3, :3].T + m[:3, 3]


class RegisterUs(Ticking):
    """Registers the preoperative case to segmented US slices; says when not to trust it."""

    inputs = {"labels": Image}
    outputs = {"transform": Transform, "model": Mesh, "targets": Points}
    rate_hz = 10.0  # how often staleness is checked (and a stale estimate re-sent)

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
        """
        if self.rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0 (the stale watchdog ticks), got {self.rate_hz}")
        try:
            self.case = load_preop(case)
            criteria = dataclasses.replace(DEFAULT, max_error_mm=max_error_mm)
            self.registrar = UsRegistrar.from_case(
                self.case,
                list(structures) or None,
                init=np.eye(4) if init == "case" else None,
                window=SliceWindow(window_slices, window_s),
                min_points=min_points,
                criteria=criteria,
            )
        except (PreopModelError, KeyError, ValueError) as exc:
            raise PermanentError(f"node {self.id!r}: case {case!r}: {exc}") from None
        self.mesh = case_mesh(self.case)
        # Where the case places what the offset is measured on: its targets and its centre.
        self.anchors = np.vstack(
            [*self.registrar.model_targets.values(), self.mesh.vertices.mean(axis=0)]
        )
        self.placement = np.eye(4) if init == "case" else None
        self.accepted = self.registrar.model_to_reference
        self.target_names = list(self.registrar.model_targets)
        self.estimate: UsEstimate | None = None
        self.state = ""  # valid, invalid or stale: what the last Status said
        self.skipping = False
        self.last_usable: float | None = None  # monotonic time of the last usable slice
        self.started: float | None = None
        self.last_stamp_ns = 0
        self.model_sent = -1e9
        self.counts = {"slices": 0, "skipped": 0, "valid": 0, "invalid": 0, "stale": 0}
        self.log.info(
            "case %s: %s, %d targets",
            self.case.source,
            ", ".join(self.case.structures),
            len(self.target_names),
        )

    def on_labels(self, labels: Image) -> None:
        if labels.modality != "LABELS":
            raise PermanentError(
                f"node {self.id!r}: input 'labels' carries {labels.modality} images; wire a "
                "label map (a segment node's labels)"
            )
        reason = self._unsure(labels)
        if reason:
            self.counts["skipped"] += 1
            if not self.skipping:
                self.skipping = True
                say(self, "warn", SKIPPED, f"label frames left out: {reason}")
            return
        if self.skipping:
            self.skipping = False
            say(self, "ok", SKIPPED, "label frames are used again")
        self.counts["slices"] += 1
        self.last_usable = time.monotonic()
        self.last_stamp_ns = labels.stamp_ns
        self.registrar.add(labels)
        estimate = self._judged(self.registrar.update())
        valid = estimate.valid
        self.estimate = estimate
        self.counts["valid" if valid else "invalid"] += 1
        self._enter("valid" if valid else "invalid", estimate.reason)
        self._send(estimate, labels.stamp_ns, stale=False)

    def tick(self) -> None:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        since = now - (self.last_usable if self.last_usable is not None else self.started)
        if since <= self.stale_after_s:
            return
        what = "no usable label frame" + (" yet" if self.last_usable is None else "")
        reason = f"{what} for {since:.1f} s (limit {self.stale_after_s:g} s)"
        self.counts["stale"] += 1
        self._enter("stale", reason)
        pose = self.registrar.model_to_reference
        estimate = self.estimate or UsEstimate(pose, False, float("inf"), reason)
        estimate = dataclasses.replace(estimate, valid=False, reason=reason)
        self._send(estimate, self.last_stamp_ns or time.time_ns(), stale=True)

    def _judged(self, estimate: UsEstimate) -> UsEstimate:
        """``estimate``, or, when it is too far from the case's placement, the last accepted
        pose marked not valid (and the registrar sent back to that pose)."""
        if not estimate.valid:
            return estimate
        unlimited = self.placement is None or self.max_offset_mm == 0
        offset = 0.0 if unlimited else self._offset(estimate.model_to_reference)
        if offset <= self.max_offset_mm or unlimited:
            self.accepted = estimate.model_to_reference
            return estimate
        tracker = self.registrar.tracker
        tracker.last, tracker.lost = invert(self.accepted), False
        reason = (
            f"the fit moves the model {offset:.1f} mm from the case's placement (limit "
            f"{self.max_offset_mm:g} mm): a wrong fit"
        )
        return dataclasses.replace(
            estimate,
            model_to_reference=self.accepted,
            valid=False,
            reason=reason,
            targets={},
        )

    def _offset(self, pose: np.ndarray) -> float:
        """How far ``pose`` moves the targets and centre from the case's placement (mm)."""
        assert self.placement is not None
        return float(
            np.linalg.norm(
                moved(self.anchors, pose) - moved(self.anchors, self.placement), axis=1
            ).max()
        )

    def _unsure(self, labels: Image) -> str:
        """Why this label frame is not to be used ('' when it is)."""
        value = labels.meta.get("confidence")
        if self.min_confidence is None:
            if labels.meta.get("low_confidence") is True:
                return f"the segmentation flagged low confidence ({value})"
            return ""
        if isinstance(value, int | float) and value < self.min_confidence:
            return f"confidence {value:.2f} below {self.min_confidence:g}"
        return ""

    def _enter(self, state: str, reason: str) -> None:
        """One Status per change of state: a warning on entering invalid or stale, ok after."""
        if state == self.state:
            return
        left, self.state = self.state, state
        if state == "valid":
            if left:
                code = STALE if left == "stale" else INVALID
                say(self, "ok", code, "registration is valid again")
            return
        code = STALE if state == "stale" else INVALID
        say(self, "warn", code, f"registration not valid: {reason}", reason=reason)

    def _send(self, estimate: UsEstimate, stamp_ns: int, stale: bool) -> None:
        pose = estimate.model_to_reference
        meta = {
            "reason": estimate.reason,
            "stale": stale,
            "points": estimate.points,
            "slices": estimate.slices,
            "update_ms": round(estimate.time_ms, 2),
            "case": self.case.source,
        }
        self.emit(
            "transform",
            Transform(
                stamp_ns=stamp_ns,
                matrix=pose,
                from_frame=FROM_FRAME,
                to_frame=TO_FRAME,
                valid=estimate.valid,
                error_mm=float(estimate.error_mm),  # inf: not known (too few points)
                frame=TO_FRAME,
                meta=meta,
            ),
        )
        if self.target_names:
            points = np.stack([self.registrar.model_targets[n] for n in self.target_names])
            self.emit(
                "targets",
                Points(
                    stamp_ns=stamp_ns,
                    points=moved(points, pose),
                    labels=list(self.target_names),
                    frame=TO_FRAME,
                    meta={"valid": estimate.valid, "stale": stale, "reason": estimate.reason},
                ),
            )
        now = time.monotonic()
        if now - self.model_sent >= 1.0 / self.model_rate_hz:
            self.model_sent = now
            self.emit(
                "model",
                Mesh(
                    stamp_ns=stamp_ns,
                    vertices=moved(self.mesh.vertices, pose),
                    faces=self.mesh.faces,
                    scalars=self.mesh.scalars,
                    frame=TO_FRAME,
                    meta={**self.mesh.meta, "valid": estimate.valid, "stale": stale},
                ),
            )

    def teardown(self) -> None:
        c = self.counts
        self.log.info(
            "%d slices used, %d left out; %d valid, %d invalid estimates, %d stale ticks",
            c["slices"],
            c["skipped"],
            c["valid"],
            c["invalid"],
            c["stale"],
        )
