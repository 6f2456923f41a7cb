"""The machine a benchmark ran on, and how fast it was while it ran.

Our machines are shared, and the same one copies memory and runs Python several times slower on
one day than on another. A figure without the machine's speed at that moment cannot be compared
with anything, so every ``igtflow bench`` report carries a calibration: three fixed workloads,
each on one thread, timed in the same run as the benchmark. Ratios to a baseline measured in the
same run stay the headline figures; the calibration says how to read an absolute one.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

COPY_BYTES = 64 * 1024 * 1024
PYTHON_LOOP = 1_000_000
SORT_VALUES = 1_000_000
REPEATS = 5


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _timed_ms(work: Callable[[], object]) -> tuple[float, float]:
    """Best and median of ``REPEATS`` runs, in ms, after one warm-up run."""
    work()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1e3)
    return min(times), statistics.median(times)


def _python_loop() -> int:
    total = 0
    for i in range(PYTHON_LOOP):
        total += i * i
    return total


def calibrate() -> dict[str, float]:
    """Memory copy bandwidth, a pure-Python loop and a NumPy sort, each on one thread."""
    source = np.ones(COPY_BYTES, dtype=np.uint8)
    target = np.empty_like(source)
    copy_best, copy_median = _timed_ms(lambda: np.copyto(target, source))
    values = np.random.default_rng(0).random(SORT_VALUES, dtype=np.float32)
    sort_best, sort_median = _timed_ms(lambda: np.sort(values))
    loop_best, loop_median = _timed_ms(_python_loop)
    return {
        "memcpy_gb_s": round(COPY_BYTES / (copy_best / 1e3) / 1e9, 2),
        "memcpy_gb_s_median": round(COPY_BYTES / (copy_median / 1e3) / 1e9, 2),
        "python_loop_ms": round(loop_best, 2),
        "python_loop_ms_median": round(loop_median, 2),
        "numpy_sort_ms": round(sort_best, 2),
        "numpy_sort_ms_median": round(sort_median, 2),
    }


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, load, versions, and the calibration run now."""
    from igtflow import __version__

    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "igtflow": __version__,
        "calibration": calibrate(),
    }


def describe(machine: dict[str, Any]) -> str:
    """One line for a report's footer: the CPU and its speed during this run."""
    c = machine.get("calibration")
    speed = (
        f"memcpy {c['memcpy_gb_s']:.1f} GB/s, {PYTHON_LOOP // 1000}k-step Python loop "
        f"{c['python_loop_ms']:.0f} ms, sort of {SORT_VALUES // 1000}k float32 "
        f"{c['numpy_sort_ms']:.1f} ms (best of {REPEATS}, one thread)"
        if c
        else "no calibration (an older report)"
    )
    return f"machine: {machine.get('cpu_model', '?')}, {machine.get('cores', '?')} cores; {speed}"
