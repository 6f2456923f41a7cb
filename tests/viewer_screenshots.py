"""Writes the viewer screenshots of README.md and docs/slicer.md with the nodes' own drawing code.

``python -m tests.viewer_screenshots docs/images``: frames, truth and the preoperative model come
from the phantom's own nodes (seed 0), run offline; no display needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from igtflow.launch.offline import offline_node
from igtflow.render.overlay_compose import OverlayComposer
from igtflow.render.scene import SceneRenderer, prepare_offscreen
from igtflow.stream.messages import Message
from igtflow.stream.testing import CollectingEmitter
from tests.helpers.frames import Scene

MS = 1_000_000


def overlay(scene: Scene, age_ms: float, confidence: float) -> np.ndarray:
    composer = OverlayComposer(static=["model"])
    composer.set_labels(scene.labels)
    composer.set_targets(scene.targets)
    composer.set_model(scene.model)
    composer.set_confidence(scene.image.with_data(np.full((4, 4), confidence, np.float32)))
    out = np.empty((*scene.image.data.shape[:2], 3), np.uint8)
    composer.compose(scene.image, out, scene.image.stamp_ns + int(age_ms * MS))
    return out


def scene3d(scene: Scene, view: str) -> np.ndarray:
    renderer = SceneRenderer((720, 540), view=view, offscreen=prepare_offscreen(False))
    renderer.update("model", scene.model)
    shifted = scene.model.vertices + np.array([2.0, 0.0, 1.5], np.float32)
    deformed = scene.model.replace(vertices=shifted).restamped(stamp_ns=scene.image.stamp_ns)
    renderer.update("deformed", deformed)
    renderer.update("image", scene.image)
    if scene.probe is not None:
        renderer.update("probe", scene.probe)
    renderer.update("targets", scene.targets)
    rgb = renderer.render(scene.image.stamp_ns + 45 * MS)
    renderer.close()
    return rgb


def phantom_scene(uses: str, params: dict, frame: int, model: Message) -> Scene:
    """The phantom's own frame ``frame`` with its truth, as the overlay receives it."""
    sink = CollectingEmitter("probe")
    node = offline_node(uses, "probe", params, sink)
    for _ in range(frame + 1):
        node.tick()
    got = {k: sent[-1] for k, sent in sink.emitted.items()}
    probe = got.get("probe_to_tracker")
    none = (0, 0)
    return Scene(
        got["image"], got["truth_labels"], got["truth_targets"], model, probe,
        none, none, (0.0, 0.0), (0.0, 0.0), 0.0,
    )  # fmt: skip


def main(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    sink = CollectingEmitter("model")
    offline_node("phantom-model", "model", {"seed": 0}, sink).tick()
    (model,) = sink.emitted["model"]
    us_params = {"seed": 0, "path": "static", "width": 400, "height": 400}
    us = phantom_scene("phantom-us", us_params, 40, model)
    xa = phantom_scene("phantom-fluoro", {"seed": 0, "lao_deg": 20.0}, 40, model)
    shots = {
        "overlay-us.png": overlay(us, 38, 0.86),
        "overlay-us-stale.png": overlay(us, 412, 0.86),
        "overlay-xa.png": overlay(xa, 52, 0.41),
        "scene3d-us.png": scene3d(us, "oblique"),
        "scene3d-xa.png": scene3d(xa, "oblique"),
    }
    for name, rgb in shots.items():
        cv2.imwrite(str(out / name), rgb[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"{out / name}: {(out / name).stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
