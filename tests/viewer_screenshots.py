"""Writes the viewer screenshots of docs/slicer.md with the nodes' own drawing code.

``python -m tests.viewer_screenshots docs/images`` (frames from ``tests.frames``; no display).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from igtflow.render.overlay_compose import OverlayComposer
from igtflow.render.scene import SceneRenderer, prepare_offscreen

from tests.frames import Scene, us_scene, xa_scene

MS = 1_000_000


def overlay(scene: Scene, age_ms: float, confidence: float) -> np.ndarray:
    composer = OverlayComposer()
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
    renderer.update("deformed", scene.model.replace(vertices=shifted))
    renderer.update("image", scene.image)
    if scene.probe is not None:
        renderer.update("probe", scene.probe)
    renderer.update("targets", scene.targets)
    rgb = renderer.render(scene.image.stamp_ns + 45 * MS)
    renderer.close()
    return rgb


def main(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    us, xa = us_scene(400, seed=3), xa_scene(400, seed=3)
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
