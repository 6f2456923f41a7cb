"""The ``track`` node: the tissue followed from a key frame, and the targets moved with it.

Each frame the tracker predicts the dense displacement from the key frame to it (an ``Image`` of
modality ``FIELD``, float32 H×W×2, the phantom's convention: the value at key pixel p is where
p's tissue is now, minus p) and moves the targets with it. Targets that arrive (from a
registration, or the phantom's truth) are anchored on the key grid; the node re-keys when the
motion is large or the confidence low, carrying the targets over to the new key.

The rules that decide when to re-key and where moved targets are (:class:`RekeyRule`,
:func:`rekey_reason`, :func:`targets_ras`) are small and kept apart, so a better rule can replace
them without touching the node.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from igtflow.perception.frames import OtherSize
from igtflow.perception.nodes.model_node import Device, ModelNode
from igtflow.perception.outputs import confidence_on, field_maps, field_on, sample_field, sample_map
from igtflow.perception.tracking.targets import RekeyRule, rekey_reason
from igtflow.stream.messages import Image, Points
from igtflow.stream.node import Fraction, Positive

IMAGING_PLANE = ("US",)  # modalities whose targets lie in the image plane (not a projection)


def target_pixels(targets: Points, image: Image) -> tuple[np.ndarray, np.ndarray]:
    """Each target's (x, y) on ``image`` and its ijk there: the ``pixels`` its meta gives (a
    projection), else RAS taken back through the image's ``ijk_to_ras`` (in-plane images)."""
    ras = np.c_[targets.points.astype(np.float64), np.ones(len(targets.points))]
    ijk = (ras @ np.linalg.inv(image.ijk_to_ras).T)[:, :3]
    pixels = np.asarray(targets.meta.get("pixels", []), dtype=np.float64).reshape(-1, 2)
    if len(pixels) != len(ijk):
        pixels = ijk[:, :2]
    return pixels.astype(np.float32), ijk


def targets_ras(
    image: Image, moved: np.ndarray, start_px: np.ndarray, start_ras: np.ndarray, k: np.ndarray
) -> np.ndarray:
    """Where the moved targets are in RAS.

    In-plane images (ultrasound): the moved pixel at its out-of-plane offset ``k``, through the
    current frame's ``ijk_to_ras`` (the probe may have moved too). Projections (fluoroscopy): the
    start position shifted by the in-plane displacement, demagnified to the isocentre
    (``sod_mm / sid_mm`` when the frame's meta gives them): depth is not seen in a projection.
    """
    if image.modality in IMAGING_PLANE:
        ijk = np.c_[moved.astype(np.float64), k, np.ones(len(moved))]
        return (ijk @ image.ijk_to_ras.T)[:, :3]
    sid, sod = image.meta.get("sid_mm"), image.meta.get("sod_mm")
    scale = float(sod) / float(sid) if sid and sod else 1.0
    shift = (moved - start_px).astype(np.float64) @ image.ijk_to_ras[:3, :2].T
    return start_ras + shift * scale


class Track(ModelNode):
    """Dense deformation from a key frame to each frame; moves targets; re-keys when needed."""

    task = "tracking"
    inputs = {"image": Image, "targets": Points}
    outputs = {"field": Image, "targets": Points}

    def setup(
        self,
        model: str = "tracker",
        device: Device = "auto",
        threshold: Fraction | None = None,
        other_size: OtherSize = "resize",
        rekey_motion_px: Positive = 20.0,
        rekey_confidence: Fraction | None = None,
        rekey_every: Annotated[int, Field(ge=0)] = 30,
        anchor: Literal["arrival", "key"] = "arrival",
    ) -> None:
        """
        model: a shipped model (tracker) or the path of a model card (.card.yaml)
        device: auto (a CUDA GPU when there is one, in fp16), cpu or cuda
        threshold: confidence at the targets below which a Status is raised (none: the card's)
        other_size: a frame of another size than the model's is resized, or refused (counted)
        rekey_motion_px: re-key when the median displacement exceeds this (pixels)
        rekey_confidence: re-key when the mean confidence falls below this (none: the card's)
        rekey_every: re-key at the latest this many frames after the key (0 = never for age)
        anchor: arriving targets are anchored at once (arrival), or only when the node re-keys
            (key: between key frames the targets move by the network alone, as they would
            between full registrations)
        """
        self.predictor = self.load(model, device)
        self.threshold = self.card.confidence.threshold if threshold is None else threshold
        min_confidence = (
            self.card.confidence.threshold if rekey_confidence is None else rekey_confidence
        )
        self.rule = RekeyRule(rekey_motion_px, min_confidence, rekey_every)
        self.anchor_at_key = anchor == "key"
        self.key: np.ndarray | None = None
        self.key_meta: dict[str, Any] = {}
        self.keys = 0
        self.since_key = 0
        self.field: np.ndarray | None = None  # the last field, on the input grid
        self.image: Image | None = None
        self.targets_in: Points | None = None
        self.anchors: np.ndarray | None = None  # targets on the key grid (x, y)
        self.start_px = np.zeros((0, 2), np.float32)
        self.start_ras = np.zeros((0, 3))
        self.start_k = np.zeros(0)
        self.anchor_valid: bool | None = None  # the anchored targets' own `valid`, if they said

    def on_targets(self, targets: Points) -> None:
        self.targets_in = targets
        # Targets a registration marked not valid are followed but stay marked; the first valid
        # ones replace them at once rather than at the next key frame.
        replaces_invalid = self.anchor_valid is False and targets.meta.get("valid") is not False
        if self.image is not None and (
            not self.anchor_at_key or self.anchors is None or replaces_invalid
        ):
            self._anchor(targets, self.image)

    def on_image(self, image: Image) -> None:
        prepared = self.plane(image)
        if prepared is None:
            return
        plane, blank = prepared
        shape = image.data.shape[:2]
        if self.image is not None and self.image.data.shape[:2] != shape:
            self.key = None  # another grid: what was anchored on the old one is void
        self.image = image
        if self.key is None:
            if blank:  # nothing to follow from: no key yet, no motion, no confidence
                self._emit(image, np.zeros((*shape, 2), np.float32), np.zeros(shape, np.float32))
                return
            self._rekey(plane, image, np.zeros((*shape, 2), np.float32))
            if self.targets_in is not None:
                self._anchor(self.targets_in, image)
            self._emit(image, np.zeros((*shape, 2), np.float32), np.ones(shape, np.float32))
            return
        output = None if blank else self.guarded(lambda: self.predictor.track(plane))
        if output is None:  # blank, or the model failed: no motion known, nothing trusted
            field, conf = np.zeros((*shape, 2), np.float32), np.zeros(shape, np.float32)
        else:
            field, conf = field_maps(output[0], self.card.confidence)
            field, conf = field_on(field, shape), confidence_on(conf, shape)
        self.since_key += 1
        self._emit(image, field, conf)
        mask = image.data > 0 if "fov" in image.meta and image.data.ndim == 2 else None
        reason = None if blank else rekey_reason(self.rule, field, conf, self.since_key, mask)
        if reason is not None:
            self.log.debug("re-key after %d frames: %s", self.since_key, reason)
            self._rekey(plane, image, field)
            if self.anchor_at_key and self.targets_in is not None:
                self._anchor(self.targets_in, image)
        else:
            self.field = field

    def _emit(self, image: Image, field: np.ndarray, conf: np.ndarray) -> float:
        """Send the field and the moved targets; the confidence that counts for this frame."""
        moved = per_target = None
        if self.anchors is not None and len(self.anchors):
            moved = self.anchors + sample_field(field, self.anchors)
            per_target = sample_map(conf, self.anchors)
            value = float(per_target.min())  # the least sure target is the one to warn about
        else:
            value = float(conf.mean(dtype=np.float64)) if conf.size else 0.0
        low = self.health.confidence(value, self.threshold, "tracking")
        meta = {
            **image.meta,
            **self.key_meta,
            "confidence": round(value, 4),
            "low_confidence": low,
            "model": self.card.name,
            "model_sha256": self.card.sha256,
        }
        self.emit(
            "field",
            image.with_data(self.out_frame("field", field), modality="FIELD", meta=meta),
        )
        if moved is not None and per_target is not None and self.targets_in is not None:
            ras = targets_ras(image, moved, self.start_px, self.start_ras, self.start_k)
            self.emit(
                "targets",
                Points(
                    stamp_ns=image.stamp_ns,
                    points=ras.astype(np.float32),
                    labels=self.targets_in.labels,
                    frame=self.targets_in.frame,
                    meta={
                        **meta,
                        "pixels": moved.tolist(),
                        "target_confidence": per_target.round(4).tolist(),
                        **({} if self.anchor_valid is None else {"valid": self.anchor_valid}),
                    },
                ),
            )
        return value

    def _anchor(self, targets: Points, image: Image) -> None:
        """Targets seen on ``image`` placed on the key grid: the key pixel whose tissue is now
        at each target (the last field inverted by a few fixed-point steps)."""
        pixels, ijk = target_pixels(targets, image)
        key_px = pixels.copy()
        if self.field is not None and self.field.shape[:2] == image.data.shape[:2]:
            for _ in range(5):
                key_px = pixels - sample_field(self.field, key_px)
        self.anchors = key_px.astype(np.float32)
        valid = targets.meta.get("valid")
        self.anchor_valid = valid if isinstance(valid, bool) else None
        self.start_px, self.start_ras, self.start_k = (
            pixels,
            targets.points.astype(np.float64),
            ijk[:, 2],
        )

    def _rekey(self, plane: np.ndarray, image: Image, field: np.ndarray) -> None:
        """The current frame becomes the key; anchored targets move to where they are now."""
        if self.anchors is not None and len(self.anchors):
            self.anchors = (self.anchors + sample_field(field, self.anchors)).astype(np.float32)
        self.key = plane
        self.guarded(lambda: self.predictor.set_key(plane))  # a failure shows on the next track
        self.keys += 1
        self.since_key = 0
        self.field = np.zeros_like(field)
        self.key_meta = {"key_stamp_ns": image.stamp_ns, "keys": self.keys}
        if "index" in image.meta:
            self.key_meta["key_index"] = image.meta["index"]
