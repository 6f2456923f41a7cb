"""``igtflow bench frozen``: what the frozen-source watchdog costs a source per frame.

The watchdog fingerprints every outgoing source frame (``stream/frozen_watch.py``). The
baseline, in the same run, is the obvious way to tell two frames apart: a CRC-32 of every
byte. Reported per frame size: p50/p99/max microseconds of each, the ratio, and the
fingerprint's share of a 30 fps frame period.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from igtflow.stream.frozen_watch import SAMPLES, fingerprint

CASES = (
    ("US 256×256 uint8", (256, 256), "uint8"),
    ("fluoro 512×512 uint8", (512, 512), "uint8"),
    ("fluoro 1024×1024 uint16", (1024, 1024), "uint16"),
)
PERIOD_30FPS_US = 1e6 / 30


def _times_us(work: Callable[[], object], frames: list[np.ndarray], rounds: int) -> list[float]:
    """Microseconds per call, each on the next frame (cold, as a new capture is)."""
    times = []
    for n in range(rounds):
        frame = frames[n % len(frames)]
        start = time.perf_counter_ns()
        work(frame)  # type: ignore[call-arg]
        times.append((time.perf_counter_ns() - start) / 1e3)
    return times


def _summary(times: list[float]) -> dict[str, float]:
    p50, p99 = np.percentile(times, [50, 99])
    return {"p50_us": round(float(p50), 1), "p99_us": round(float(p99), 1), "max_us": max(times)}


def run_frozen_bench(rounds: int = 2000) -> dict[str, Any]:
    """Time the fingerprint against a whole-frame CRC on fresh frames of each size."""
    rng = np.random.default_rng(0)
    cases = []
    for name, shape, dtype in CASES:
        top = np.iinfo(dtype).max
        frames = [rng.integers(0, top, shape, dtype=dtype) for _ in range(8)]
        ours = _summary(_times_us(fingerprint, frames, rounds))  # type: ignore[arg-type]
        crc = _summary(_times_us(zlib.crc32, frames, max(50, rounds // 10)))  # type: ignore[arg-type]
        cases.append(
            {
                "case": name,
                "fingerprint": ours,
                "baseline_full_crc32": crc,
                "ratio_p50": round(crc["p50_us"] / max(ours["p50_us"], 1e-3), 1),
                "share_of_30fps_period_p99": round(ours["p99_us"] / PERIOD_30FPS_US, 5),
            }
        )
    return {"bench": "frozen", "samples_per_frame": SAMPLES, "rounds": rounds, "cases": cases}


def print_report(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title="igtflow bench frozen (µs per frame)", title_justify="left")
    for column in (
        "case",
        "fingerprint p50/p99/max",
        "full CRC-32 p50/p99/max",
        "ratio p50",
        "of a 30 fps period (p99)",
    ):
        table.add_column(column, justify="left" if column == "case" else "right")
    for c in report["cases"]:
        ours, crc = c["fingerprint"], c["baseline_full_crc32"]
        table.add_row(
            c["case"],
            f"{ours['p50_us']:.0f} / {ours['p99_us']:.0f} / {ours['max_us']:.0f}",
            f"{crc['p50_us']:.0f} / {crc['p99_us']:.0f} / {crc['max_us']:.0f}",
            f"{c['ratio_p50']:.1f}×",
            f"{100 * c['share_of_30fps_period_p99']:.2f} %",
        )
    console.print(table)
