"""How good a live registration run on the phantom was, from its recording.

A run of a registration graph (``launch/graphs/register_us.yaml``) recorded with the
registration's ``transform`` and ``targets`` and the phantom's ``truth_targets`` holds all it
takes: each estimate's targets carry the capture stamp of the slice they were computed from,
and the phantom's truth of that frame has the same stamp. Target registration error (TRE) of an
estimate is its worst target's distance from the truth, as in ``evaluate`` (the rigid estimate
against the breathing, deforming phantom: deformation stays in it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from igtflow.stream.messages import Points, Transform
from igtflow.stream.recording import read_messages


def score_recording(
    path: str | Path,
    transform: str = "reg/transform",
    targets: str = "reg/targets",
    truth: str = "probe/truth_targets",
) -> dict[str, Any]:
    """Valid share of the transforms on ``transform`` and the TRE (median, p95, max, mm) of the
    valid estimates' ``targets`` against ``truth`` at the same capture stamp."""
    transforms: list[Transform] = []
    estimates: list[Points] = []
    truths: dict[int, Points] = {}
    for topic, _, message in read_messages(path, [transform, targets, truth]):
        if topic == transform and isinstance(message, Transform):
            transforms.append(message)
        elif topic == targets and isinstance(message, Points):
            estimates.append(message)
        elif topic == truth and isinstance(message, Points):
            truths[message.stamp_ns] = message
    if not transforms:
        raise ValueError(f"{path}: no message on {transform!r}; was the registration recorded?")
    tre = []
    unmatched = 0
    for estimate in estimates:
        if estimate.meta.get("valid") is not True:
            continue
        true = truths.get(estimate.stamp_ns)
        if true is None or not true.labels or not estimate.labels:
            unmatched += 1
            continue
        where = dict(zip(true.labels, true.points.astype(np.float64), strict=True))
        tre.append(
            max(
                float(np.linalg.norm(p - where[name]))
                for name, p in zip(estimate.labels, estimate.points, strict=True)
                if name in where
            )
        )
    valid = sum(t.valid for t in transforms)
    stale = sum(bool(t.meta.get("stale")) for t in transforms)
    values = np.asarray(tre) if tre else np.asarray([np.nan])
    return {
        "transforms": len(transforms),
        "valid": valid,
        "valid_fraction": valid / len(transforms),
        "stale": stale,
        "scored": len(tre),
        "unmatched": unmatched,
        "tre_median_mm": float(np.median(values)),
        "tre_p95_mm": float(np.percentile(values, 95)),
        "tre_max_mm": float(np.max(values)),
    }
