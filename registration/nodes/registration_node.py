"""What every registration node does around its registrar: label maps in, a pose out, and never
a wrong or old pose shown as good.

A subclass (``register-us``, ``register-fluoro``) turns one usable label map into an
:class:`Estimate` (:meth:`RegistrationNode.register`); this base
- leaves out label frames the segmentation is not sure of (its ``low_confidence`` flag, or a
  meta ``confidence`` below ``min_confidence``), and says so once;
- sends each estimate as ``transform`` (``ModelToReference``, ``valid``, ``error_mm``, meta
  ``reason``), the named ``targets`` and (at most ``model_rate_hz``) the ``model`` moved by it
  (or, when the estimate carries ``place``, bent with the tissue and placed by that);
- when no usable label map came for ``stale_after_s``, sends the last pose again on every tick
  as not valid, meta ``stale``;
- raises one Status when the estimate turns invalid (``registration-invalid``) or stale
  (``registration-stale``), with the reason, and an ``ok`` one when it is valid again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from igtflow.registration.case import PreopCase, load_case
from igtflow.registration.nodes.alarms import say
from igtflow.registration.phantom_preop import phantom_preop, phantom_seed
from igtflow.stream.messages import Image, Mesh, Points, Transform
from igtflow.stream.node import PermanentError, Ticking

FROM_FRAME, TO_FRAME = "Model", "Reference"
INVALID, STALE, SKIPPED = "registration-invalid", "registration-stale", "labels-skipped"


@dataclass(frozen=True)
class Estimate:
    """One registration as the node sends it; ``targets_meta`` adds to the targets' meta."""

    model_to_reference: np.ndarray
    valid: bool
    error_mm: float
    reason: str
    meta: dict[str, Any] = field(default_factory=dict)
    targets_meta: dict[str, Any] = field(default_factory=dict)
    # Model points (N×3) → Reference, deformation included; None: the rigid pose alone.
    place: Callable[[np.ndarray], np.ndarray] | None = None

    def placed(self, model_points: np.ndarray) -> np.ndarray:
        """Where this estimate puts model points in the Reference frame."""
        if self.place is None:
            return moved(model_points, self.model_to_reference)
        return self.place(model_points)


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


class RegistrationNode(Ticking):
    """Base of the registration nodes: subclasses call :meth:`start` from ``setup`` and write
    :meth:`register`; their ``setup`` declares ``min_confidence``, ``stale_after_s`` and
    ``model_rate_hz``, which this base reads."""

    inputs = {"labels": Image}
    outputs = {"transform": Transform, "model": Mesh, "targets": Points}
    rate_hz = 10.0  # how often staleness is checked (and a stale estimate re-sent)

    min_confidence: float | None = None
    stale_after_s: float = 1.0
    model_rate_hz: float = 5.0

    def start(self, case: PreopCase) -> None:
        """Get ready to send estimates of ``case``."""
        if self.rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0 (the stale watchdog ticks), got {self.rate_hz}")
        self.case = case
        self.mesh = case_mesh(case)
        self.target_names = list(case.targets)
        self.target_points = np.array([case.targets[n] for n in self.target_names]).reshape(-1, 3)
        self.last: Estimate | None = None
        self.state = ""  # valid, invalid or stale: what the last Status said
        self.skipping = False
        self.last_usable: float | None = None  # monotonic time of the last usable label map
        self.started: float | None = None
        self.last_stamp_ns = 0
        self.model_sent = -1e9
        self.counts = {"frames": 0, "skipped": 0, "valid": 0, "invalid": 0, "stale": 0}
        self.log.info(
            "case %s: %s, %d targets",
            case.source,
            ", ".join(case.structures),
            len(self.target_names),
        )

    @staticmethod
    def case_from(spec: str, node_id: str) -> PreopCase:
        """The case of the ``case`` parameter; a PermanentError that names it when it fails."""
        try:
            return load_preop(spec)
        except (ValueError, KeyError) as exc:  # PreopModelError is a ValueError
            raise PermanentError(f"node {node_id!r}: case {spec!r}: {exc}") from None

    def register(self, labels: Image) -> Estimate | None:
        """The estimate of one usable label map (None: the map was taken in, no estimate is
        due yet)."""
        raise NotImplementedError

    def pose(self) -> np.ndarray:
        """The pose to send before any estimate: the case's own placement."""
        return np.eye(4)

    def on_labels(self, labels: Image) -> None:
        if labels.modality != "LABELS":
            raise PermanentError(
                f"node {self.id!r}: input 'labels' carries {labels.modality} images; wire a "
                "label map (a segment node's labels)"
            )
        reason = self.unsure(labels)
        if reason:
            self.counts["skipped"] += 1
            if not self.skipping:
                self.skipping = True
                say(self, "warn", SKIPPED, f"label frames left out: {reason}")
            return
        if self.skipping:
            self.skipping = False
            say(self, "ok", SKIPPED, "label frames are used again")
        self.counts["frames"] += 1
        self.last_usable = time.monotonic()
        self.last_stamp_ns = labels.stamp_ns
        estimate = self.register(labels)
        if estimate is None:
            return
        self.last = estimate
        self.counts["valid" if estimate.valid else "invalid"] += 1
        self.enter("valid" if estimate.valid else "invalid", estimate.reason)
        self.send(estimate, labels.stamp_ns, stale=False)

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
        self.enter("stale", reason)
        last = self.last or Estimate(self.pose(), False, float("inf"), reason)
        self.send(
            replace(last, valid=False, reason=reason), self.last_stamp_ns or time.time_ns(), True
        )

    def unsure(self, labels: Image) -> str:
        """Why this label frame is not to be used ('' when it is)."""
        value = labels.meta.get("confidence")
        if self.min_confidence is None:
            if labels.meta.get("low_confidence") is True:
                return f"the segmentation flagged low confidence ({value})"
            return ""
        if isinstance(value, int | float) and value < self.min_confidence:
            return f"confidence {value:.2f} below {self.min_confidence:g}"
        return ""

    def enter(self, state: str, reason: str) -> None:
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

    def send(self, estimate: Estimate, stamp_ns: int, stale: bool) -> None:
        pose = estimate.model_to_reference
        flags = {"valid": estimate.valid, "stale": stale, "reason": estimate.reason}
        self.emit(
            "transform",
            Transform(
                stamp_ns=stamp_ns,
                matrix=pose,
                from_frame=FROM_FRAME,
                to_frame=TO_FRAME,
                valid=estimate.valid,
                error_mm=float(estimate.error_mm),  # inf: not known (too little to fit)
                frame=TO_FRAME,
                meta={
                    **estimate.meta,
                    "reason": estimate.reason,
                    "stale": stale,
                    "case": self.case.source,
                },
            ),
        )
        if self.target_names:
            self.emit(
                "targets",
                Points(
                    stamp_ns=stamp_ns,
                    points=estimate.placed(self.target_points),
                    labels=list(self.target_names),
                    frame=TO_FRAME,
                    meta={**estimate.targets_meta, **flags},
                ),
            )
        now = time.monotonic()
        if now - self.model_sent >= 1.0 / self.model_rate_hz:
            self.model_sent = now
            self.emit(
                "model",
                Mesh(
                    stamp_ns=stamp_ns,
                    vertices=estimate.placed(self.mesh.vertices),
                    faces=self.mesh.faces,
                    scalars=self.mesh.scalars,
                    frame=TO_FRAME,
                    meta={**self.mesh.meta, "valid": estimate.valid, "stale": stale},
                ),
            )

    def teardown(self) -> None:
        c = self.counts
        self.log.info(
            "%d label frames used, %d left out; %d valid, %d invalid estimates, %d stale ticks",
            c["frames"],
            c["skipped"],
            c["valid"],
            c["invalid"],
            c["stale"],
        )
