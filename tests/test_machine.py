"""Every benchmark report says how fast the machine was while it ran."""

from __future__ import annotations

import math
from typing import Any

from igtflow.machine import calibrate, describe, machine_info

CALIBRATION_KEYS = {"memcpy_gb_s", "python_loop_ms", "numpy_sort_ms"}


def assert_calibrated(machine: dict[str, Any]) -> None:
    """What a bench report's ``machine`` must carry, shared by the bench tests."""
    calibration = machine["calibration"]
    assert calibration.keys() >= CALIBRATION_KEYS
    for key, value in calibration.items():
        assert math.isfinite(value) and value > 0, (key, value)
    assert calibration["memcpy_gb_s"] >= calibration["memcpy_gb_s_median"]
    assert calibration["python_loop_ms"] <= calibration["python_loop_ms_median"]


def test_calibration_times_fixed_workloads_and_reads_as_one_line() -> None:
    machine = machine_info()
    assert_calibrated(machine)
    assert machine["cores"] >= 1 and machine["cpu_model"]
    line = describe(machine)
    assert "GB/s" in line and "Python loop" in line and machine["cpu_model"] in line
    assert "no calibration" in describe({"cpu_model": "x"}), "older reports still print"


def test_calibration_is_quick() -> None:
    import time

    start = time.perf_counter()
    calibrate()
    assert time.perf_counter() - start < 10, "a calibration must not lengthen a bench noticeably"
