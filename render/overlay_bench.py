"""Overlay compose time per frame, on the sample recordings: what the overlay node spends drawing.

Each frame gets new labels (as when the segmentation runs on every frame: its contours are found
again), new targets and, for ultrasound, the preoperative model cut by the frame's plane; the
fluoroscopy frames get the model's projected silhouette. The floor beside it is the bare
grey-to-RGB copy of the same frame, the least any overlay does. ``igtflow bench e2e`` reports
both, since the issue budget (≤ 3 ms p99 at 256²) is per node, not per graph.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from igtflow.render import overlay_draw as draw
from igtflow.render.overlay_compose import OverlayComposer
from igtflow.stream.messages import Image, Mesh, Message, Points
from igtflow.stream.recording import read_messages

SAMPLES = Path(__file__).resolve().parents[1] / "recordings"


class _Keep:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def emit(self, output: str, message: Message) -> None:
        self.messages.append(message)


def phantom_model(seed: int) -> Mesh:
    """The phantom's preoperative mesh, as the ``phantom-model`` node sends it."""
    from igtflow.launch.offline import offline_node

    keep = _Keep()
    node = offline_node("phantom-model", "model", {"seed": seed}, keep)
    node.tick()  # type: ignore[attr-defined]
    message = keep.messages[-1]
    assert isinstance(message, Mesh)
    return message


def _frames(sample: Path) -> list[dict[str, Message]]:
    by_stamp: dict[int, dict[str, Message]] = defaultdict(dict)
    for topic, _, message in read_messages(sample):
        by_stamp[message.stamp_ns][topic.partition("/")[2]] = message
    return [f for _, f in sorted(by_stamp.items()) if "image" in f and "truth_labels" in f]


def compose_ms(sample: Path, model: Mesh | None, repeats: int = 5) -> dict[str, list[float]]:
    """Per frame: ``compose`` (labels and targets set anew each frame) and the bare copy, ms."""
    frames = _frames(sample)
    composer = OverlayComposer(250.0, ("model",), 2.0, 0.5, 0.25)
    if model is not None:
        composer.set_model(model)
    times: dict[str, list[float]] = {"compose": [], "copy": []}
    for _ in range(repeats):
        for frame in frames:
            image = frame["image"]
            assert isinstance(image, Image)
            out = np.empty((*image.data.shape[:2], 3), np.uint8)
            t0 = time.perf_counter()
            draw.to_rgb(image.data, out)
            t1 = time.perf_counter()
            composer.set_labels(frame["truth_labels"])  # type: ignore[arg-type]
            targets = frame.get("truth_targets")
            if isinstance(targets, Points):
                composer.set_targets(targets)
            composer.compose(image, out, image.stamp_ns)
            t2 = time.perf_counter()
            times["copy"].append((t1 - t0) * 1e3)
            times["compose"].append((t2 - t1) * 1e3)
    return times


def overlay_bench(repeats: int = 5) -> dict[str, Any]:
    """p50/p99/max of compose and copy at US 256² and fluoro 512², one thread."""
    import cv2

    cv2.setNumThreads(1)
    model = phantom_model(1001)
    report: dict[str, Any] = {}
    for name, file in (("us", "phantom-us.mcap"), ("fluoro", "phantom-fluoro.mcap")):
        times = compose_ms(SAMPLES / file, model, repeats)
        for kind, values in times.items():
            p50, p99 = np.percentile(values, [50, 99])
            report[f"{name}_{kind}"] = {
                "p50_ms": round(float(p50), 3),
                "p99_ms": round(float(p99), 3),
                "max_ms": round(float(max(values)), 3),
                "frames": len(values),
            }
    return report
