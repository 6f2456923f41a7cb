"""Every benchmark report says how fast the machine was while it ran."""

from __future__ import annotations

from igtflow.machine import calibrate, describe, machine_info
from tests.helpers.calibration import assert_calibrated


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
