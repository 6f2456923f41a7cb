"""The ``segment`` node: each frame into the phantom's label ids, with a per-pixel confidence."""

from __future__ import annotations

import numpy as np

from igtflow.perception.card import PHANTOM_LABELS
from igtflow.perception.frames import OtherSize
from igtflow.perception.nodes.model_node import Device, ModelNode
from igtflow.perception.outputs import (
    ConfidenceDtype,
    confidence_on,
    confidence_pixels,
    labels_on,
    segmentation_maps,
    target_confidence,
)
from igtflow.stream.messages import Image
from igtflow.stream.node import Fraction, PermanentError


class Segment(ModelNode):
    """Segments each frame (organ, vessel, lesion, catheter) with a per-pixel confidence."""

    task = "segmentation"
    inputs = {"image": Image}
    outputs = {"labels": Image, "confidence": Image}

    def setup(
        self,
        model: str = "us-seg",
        device: Device = "auto",
        threshold: Fraction | None = None,
        other_size: OtherSize = "resize",
        target: str = "",
        confidence_dtype: ConfidenceDtype = "float32",
    ) -> None:
        """
        model: a shipped model (us-seg, fluoro-seg) or the path of a model card (.card.yaml)
        device: auto (a CUDA GPU when there is one, in fp16), cpu or cuda
        threshold: confidence in the target below which a Status is raised (none: the card's)
        other_size: a frame of another size than the model's is resized, or refused (counted)
        target: the label whose confidence is watched (default: every label but background)
        confidence_dtype: confidence map as float32 0..1 or uint8 0..255
        """
        self.predictor = self.load(model, device)
        card = self.card
        self.label_ids = card.label_ids()
        self.threshold = card.confidence.threshold if threshold is None else threshold
        names = [card.labels[index] for index in sorted(card.labels)]
        if target and target not in names:
            raise PermanentError(
                f"node {self.id!r}: target {target!r} is not a label of model {card.name!r} "
                f"({', '.join(names)})"
            )
        by_name = {name: label for label, name in PHANTOM_LABELS.items()}
        watched = [target] if target else [n for n in names if n != "background"]
        self.target_ids = [by_name[name] for name in watched]
        self.target_name = target or "segmentation"

    def on_image(self, image: Image) -> None:
        prepared = self.plane(image)
        if prepared is None:
            return
        plane, blank = prepared
        shape = image.data.shape[:2]
        logits = None if blank else self.infer(plane[None, None])
        if logits is None:  # blank, or the model failed: nothing found and nothing trusted
            labels, conf = np.zeros(shape, np.uint8), np.zeros(shape, np.float32)
            value = 0.0
        else:
            labels, conf = segmentation_maps(logits[0], self.label_ids, self.card.confidence)
            labels, conf = labels_on(labels, shape), confidence_on(conf, shape)
            value = target_confidence(conf, labels, self.target_ids)
        low = self.health.confidence(value, self.threshold, self.target_name)
        meta = {
            **image.meta,
            "confidence": round(value, 4),
            "low_confidence": low,
            "model": self.card.name,
            "model_sha256": self.card.sha256,
        }
        self.emit(
            "labels",
            image.with_data(self.out_frame("labels", labels), modality="LABELS", meta=meta),
        )
        pixels = confidence_pixels(conf, self.confidence_dtype)
        self.emit(
            "confidence",
            image.with_data(
                self.out_frame("confidence", pixels), meta={**meta, "map": "confidence"}
            ),
        )
