"""What every bench report's ``machine`` must carry, checked the same way for every bench."""

from __future__ import annotations

import math
from typing import Any

CALIBRATION_KEYS = {"memcpy_gb_s", "python_loop_ms", "numpy_sort_ms"}


def assert_calibrated(machine: dict[str, Any]) -> None:
    """What every bench report's ``machine`` must carry: a finite, positive calibration."""
    calibration = machine["calibration"]
    assert calibration.keys() >= CALIBRATION_KEYS
    for key, value in calibration.items():
        assert math.isfinite(value) and value > 0, (key, value)
    assert calibration["memcpy_gb_s"] >= calibration["memcpy_gb_s_median"]
    assert calibration["python_loop_ms"] <= calibration["python_loop_ms_median"]
