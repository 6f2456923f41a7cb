"""The 3D scene renders offscreen in a real node process, with the US slice textured in place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from tests.helpers.graph_runs import GraphRun


def grey_speckle(rgb: np.ndarray) -> np.ndarray:
    """Pixels of the textured US slice: grey (R≈G≈B) and neither black nor blown out."""
    r, g, b = (rgb[..., k].astype(int) for k in range(3))
    grey = (np.abs(r - g) < 12) & (np.abs(g - b) < 12)
    return grey & (g > 30) & (g < 230)


def test_scene_renders_offscreen_with_the_us_slice_visible(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    snaps = tmp_path / "scene"
    video = tmp_path / "scene.mp4"
    run = start_graph(
        f"""
name: scene
nodes:
  - id: src
    uses: tests.nodes.cases:CaseFrames
    params: {{rate_hz: 10, size: 256}}
  - id: scene
    uses: scene3d
    inputs:
      image: src/image
      deformed: src/model
      probe: src/probe
      targets: src/targets
    params:
      width: 320
      height: 240
      show: false
      snapshot_dir: "{snaps}"
      snapshot_every_s: 0.2
      video: "{video}"
"""
    )
    latest = snaps / "scene3d-latest.png"

    def rendered_with_slice() -> list[np.ndarray]:
        bgr = cv2.imread(str(latest)) if latest.exists() else None
        return [bgr] if bgr is not None and grey_speckle(bgr[..., ::-1]).mean() > 0.03 else []

    (bgr,) = run.wait(rendered_with_slice, 30, "a scene3d snapshot showing the US slice")
    cv2.imwrite(str(tmp_path / "seen.png"), bgr)
    rgb = bgr[..., ::-1]
    assert rgb.shape == (240, 320, 3)
    background = rgb[5, -5].astype(int)
    differs = np.any(np.abs(rgb.astype(int) - background) > 25, axis=-1)
    assert differs.mean() > 0.1, "the scene is mostly empty"
    slice_pixels = rgb[grey_speckle(rgb)][:, 1].astype(float)
    assert slice_pixels.std() > 15, "the slice is flat, not textured with the speckle frame"
    run.wait(lambda: len(list(snaps.glob("scene3d-1*.png"))) >= 4, 20, "four timed snapshots")
    run.stop()
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) >= 3
    capture.release()
