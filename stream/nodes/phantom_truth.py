"""The truth outputs both phantom sources share: labels, flow and targets of one frame."""

from __future__ import annotations

from typing import Any

import numpy as np

from igtflow.stream.messages import Image, Points
from igtflow.stream.node import Node

TRUTH_OUTPUTS = {"truth_labels": Image, "truth_flow": Image, "truth_targets": Points}


def emit_truth(
    node: Node,
    rendered: Any,
    stamp_ns: int,
    meta: dict[str, Any],
    geometry: tuple[tuple[float, ...], np.ndarray, str],
    target_meta: dict[str, Any],
) -> None:
    """Emit ``rendered``'s truth with the frame's capture stamp.

    ``geometry`` is the image's (spacing, ijk_to_ras, frame name), so that labels and flow lie
    exactly on the image they describe. ``target_meta`` adds to the targets' meta (pixels, …).
    """
    spacing, ijk_to_ras, frame = geometry
    truth_meta = {**meta, "key_seq": rendered.key_index}
    for output, data, modality in (
        ("truth_labels", rendered.labels, "LABELS"),
        ("truth_flow", rendered.flow, "FIELD"),
    ):
        node.emit(
            output,
            Image(
                stamp_ns=stamp_ns,
                data=data,
                spacing=spacing,
                ijk_to_ras=ijk_to_ras,
                modality=modality,
                frame=frame,
                meta=truth_meta,
            ),
        )
    node.emit(
        "truth_targets",
        Points(
            stamp_ns=stamp_ns,
            points=rendered.targets_ras,
            labels=list(rendered.target_ids),
            frame="Tracker",
            meta={**meta, **target_meta},
        ),
    )
