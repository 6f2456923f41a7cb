"""``igtflow bench phantom``: frames per second of the phantom renderers on one core.

Each renderer runs for a fixed time with OpenCV limited to one thread (numpy's element-wise work
is single-threaded); a frame is the full output of a node tick: image, labels, flow and targets.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from igtflow.stream.threads import apply_thread_budget

TARGETS_FPS = {"us": 120.0, "fluoro": 60.0}


def _time_frames(render: Callable[[int], Any], duration_s: float) -> dict[str, float]:
    """Render frames 0, 1, 2, … for ``duration_s``; per-frame p50/p99/max ms and frames/s."""
    times = []
    start = time.perf_counter()
    index = 0
    while True:
        t0 = time.perf_counter()
        render(index)
        t1 = time.perf_counter()
        times.append(t1 - t0)
        index += 1
        if t1 - start >= duration_s:
            break
    ms = np.array(times) * 1e3
    return {
        "frames": index,
        "fps": index / (time.perf_counter() - start),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }


def run_phantom_bench(duration_s: float = 3.0, seed: int = 0) -> dict[str, Any]:
    """Measure ultrasound 256×256 and fluoroscopy 512×512 frame rates on one core."""
    import cv2
    from igtflow.stream.phantom.anatomy import build_anatomy
    from igtflow.stream.phantom.fluoro import FluoroSim
    from igtflow.stream.phantom.ultrasound import UltrasoundSim

    import_threads = cv2.getNumThreads()
    apply_thread_budget(1)
    cv2.setNumThreads(1)
    try:
        t0 = time.perf_counter()
        anatomy = build_anatomy(seed)
        anatomy_s = time.perf_counter() - t0
        us = UltrasoundSim(seed, anatomy=anatomy)
        us_out = np.empty((us.config.height, us.config.width), np.uint8)
        us_stats = _time_frames(lambda i: us.render(i, out=us_out), duration_s)
        t0 = time.perf_counter()
        fluoro = FluoroSim(seed, anatomy=anatomy)
        pose_s = time.perf_counter() - t0
        g = fluoro.geometry
        fl_out = np.empty((g.height, g.width), np.uint8)
        fl_stats = _time_frames(lambda i: fluoro.render(i, out=fl_out), duration_s)
    finally:
        cv2.setNumThreads(import_threads)
    return {
        "us_fps": us_stats["fps"],
        "fluoro_fps": fl_stats["fps"],
        "us": {"size": [us.config.height, us.config.width], **us_stats},
        "fluoro": {"size": [g.height, g.width], **fl_stats},
        "targets_fps": TARGETS_FPS,
        "meets_targets": us_stats["fps"] >= TARGETS_FPS["us"]
        and fl_stats["fps"] >= TARGETS_FPS["fluoro"],
        "anatomy_build_s": anatomy_s,
        "fluoro_pose_setup_s": pose_s,
        "threads": 1,
        "seed": seed,
        "duration_s": duration_s,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
