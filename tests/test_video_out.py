"""The live 2D window for OpenCV builds without a GUI: VTK draws it, the picture stays upright.

No display here, so the window renders offscreen; the code that uploads and draws each frame is
the one a window on a display runs.
"""

from __future__ import annotations

import numpy as np

from igtflow.render.video_out import VtkWindow


def test_vtk_window_shows_each_frame_upright() -> None:
    window = VtkWindow("test", offscreen=True)
    try:
        frame = np.zeros((120, 200, 3), np.uint8)
        frame[:20, :50] = (255, 0, 0)  # red, top left
        window.show(frame)
        frame[:] = 0
        frame[-20:, -50:] = (0, 255, 0)  # the next frame: green, bottom right
        window.show(frame)
        shot = window.screenshot()
        h, w = shot.shape[:2]
        assert shot[h - 5, w - 5, 1] > 200 and shot[h - 5, w - 5, 0] < 50, "bottom right green"
        assert shot[5, 5].max() < 50, "the previous frame must be gone"
    finally:
        window.close()
