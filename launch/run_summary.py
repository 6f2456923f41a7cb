"""What a recorded run achieved, scored against the truth it carries: latency, drops, Dice, TRE.

A phantom source records its truth beside its frames (``<source>/truth_labels``,
``<source>/truth_targets``), so a recording can be scored after the fact without knowing the
graph: every label-map topic is matched by capture stamp to the truth labels of the same frame
(Dice per label, MONAI's ``compute_dice``), every named point set to the truth targets (target
error in mm; a set its producer marked ``valid: false`` is counted, not scored), every
``ModelToReference`` transform counted valid or not. Latency comes from the
messages themselves: capture → recorded per topic, and per hop from the trace each message
carries (time inside each node on its way, root to leaf). ``igtflow demo`` prints this summary
and writes it beside the recording.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from igtflow.stream.messages import Image, Message, Points, Transform
from igtflow.stream.phantom.anatomy import LABEL_NAMES
from igtflow.stream.recording import read_messages
from igtflow.stream.recording_scan import ScanReport

TRUTH_LABELS = "truth_labels"
TRUTH_TARGETS = "truth_targets"
MAX_PENDING = 64  # unmatched frames kept per topic while waiting for their pair


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "count": 0}
    p50, p99 = np.percentile(values, [50, 99])
    return {
        "p50": round(float(p50), 2),
        "p99": round(float(p99), 2),
        "max": round(float(np.max(values)), 2),
        "count": len(values),
    }


def dice_per_label(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice of each phantom label present in ``truth``.

    Counted with numpy rather than MONAI's ``compute_dice`` (which ``igtflow eval perception``
    uses): the same 2|A∩B| / (|A| + |B|), but MONAI's one-hot tensors cost about 50 ms per 256²
    frame here, 30 s for a 20 s demo, against about 1 ms.
    """
    scores = {}
    for value, name in LABEL_NAMES.items():
        is_truth = truth == value
        total = int(is_truth.sum())
        if total == 0:
            continue
        is_pred = pred == value
        scores[name] = 2.0 * int((is_pred & is_truth).sum()) / (total + int(is_pred.sum()))
    return scores


def target_errors(points: Points, truth: Points) -> list[float]:
    """Distance (mm) of each named point to the truth point of the same name."""
    if not points.labels or not truth.labels:
        return []
    where = {name: i for i, name in enumerate(truth.labels)}
    return [
        float(np.linalg.norm(points.points[i] - truth.points[where[name]]))
        for i, name in enumerate(points.labels)
        if name in where
    ]


class _Matcher:
    """Predictions and truth of the same frame, matched by capture stamp in either order (a
    node's output carries its frame's stamp, while its trace may start at the node itself, as a
    tracker's targets do): ``add`` returns the (topic, prediction, truth) pairs it completes."""

    def __init__(self) -> None:
        self.truth: dict[int, Message] = {}
        self.pending: dict[int, list[tuple[str, Message]]] = {}

    def add(self, message: Message, topic: str | None) -> list[tuple[str, Message, Message]]:
        """``topic`` None: ``message`` is the truth of its frame; else a prediction on ``topic``."""
        stamp = message.stamp_ns
        if topic is None:
            _bounded_put(self.truth, stamp, message)
            return [(t, pred, message) for t, pred in self.pending.pop(stamp, [])]
        truth = self.truth.get(stamp)
        if truth is not None:
            return [(topic, message, truth)]
        _bounded_put(self.pending, stamp, [*self.pending.get(stamp, []), (topic, message)])
        return []


def _bounded_put(store: dict[int, Any], key: int, value: Any) -> None:
    store[key] = value
    while len(store) > MAX_PENDING:
        store.pop(next(iter(store)))


def summarize(path: str | Path) -> dict[str, Any]:
    """The run's scores; damaged files are read as far as they go (``problems`` says what)."""
    report = ScanReport(str(path))
    latency: dict[str, list[float]] = defaultdict(list)
    hops: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    last_seq: dict[str, int] = {}
    gaps: dict[str, int] = defaultdict(int)
    dice: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    errors: dict[str, list[float]] = defaultdict(list)
    valid: dict[str, list[bool]] = defaultdict(list)
    labels, targets = _Matcher(), _Matcher()
    predicted: dict[str, set[str | None]] = defaultdict(set)  # labels a topic ever produced
    invalid_targets: dict[str, int] = defaultdict(int)
    for topic, log_time_ns, message in read_messages(path, report=report):
        output = topic.partition("/")[2]
        latency[topic].append((log_time_ns - message.stamp_ns) / 1e6)
        for node, t_in, t_out in message.trace:
            hops[topic][node].append((t_out - t_in) / 1e6)
        if topic in last_seq and message.seq > last_seq[topic] + 1:
            gaps[topic] += message.seq - last_seq[topic] - 1
        last_seq[topic] = message.seq
        if isinstance(message, Image) and message.modality == "LABELS":
            mine = None if output == TRUTH_LABELS else topic
            if mine is not None:
                predicted[topic] |= {LABEL_NAMES.get(int(v)) for v in np.unique(message.data)}
            for scored, pred, truth in labels.add(message, mine):
                for name, value in dice_per_label(pred.data, truth.data).items():
                    dice[scored][name].append(value)
        elif isinstance(message, Points) and not message.meta.get("displacement"):
            if message.meta.get("valid") is False:
                invalid_targets[topic] += 1  # an estimate said not to be trusted: not scored
                continue
            mine = None if output == TRUTH_TARGETS else topic
            for scored, pred, truth in targets.add(message, mine):
                errors[scored] += target_errors(pred, truth)
        elif isinstance(message, Transform) and message.from_frame == "Model":
            valid[topic].append(bool(message.valid))  # a registration's ModelToReference
    return {
        "recording": str(path),
        "complete": not report.problems,
        "problems": list(report.problems),
        "latency_ms": {t: _stats(v) for t, v in sorted(latency.items())},
        "hops_ms": {t: {n: _stats(v) for n, v in h.items()} for t, h in sorted(hops.items())},
        "drops": dict(sorted(gaps.items())),
        # a label a topic never produced is not its model's (a US net has no catheter class)
        "dice": {
            t: {n: round(float(np.mean(v)), 3) for n, v in d.items() if n in predicted[t]}
            for t, d in sorted(dice.items())
        },
        "target_error_mm": {
            t: {
                "median": round(float(np.median(v)), 2),
                "p95": round(float(np.percentile(v, 95)), 2),
                "count": len(v),
            }
            for t, v in sorted(errors.items())
            if v
        },
        "valid_fraction": {t: round(float(np.mean(v)), 3) for t, v in sorted(valid.items())},
        "invalid_targets_not_scored": dict(sorted(invalid_targets.items())),
    }
