"""``igtflow bench eval-scale``: the same recordings scored on Ray with 1 worker, then with 2.

Each pass is what ``igtflow eval replay --recordings DIR --workers N`` does, its own local Ray
instance included, so the figures are what a user waits for. The headline is the ratio of the
replay time (first task submitted → last row in) of 1 worker to that of 2, measured in the same
run; the Ray start-up is timed apart, since it is paid once per run whatever the folder holds.
Each replay is a whole lockstep graph (source, networks, registration, recorder), mostly one
busy process at a time, so 2 workers can approach 2× only where 2 cores are free.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from igtflow.launch.bulk_eval import BulkResult, run_bulk
from igtflow.machine import describe, machine_info

WORKERS = (1, 2)
DEFAULT_COPIES = 4


def sample_set(directory: Path, copies: int, frames: int | None = None) -> list[Path]:
    """``copies`` files of the US sample recording (rendered here, so no checkout is needed),
    ``frames`` long (default: the sample's 36)."""
    from dataclasses import replace

    from igtflow.launch.samples import SAMPLES, write_sample

    sample = SAMPLES[0] if frames is None else replace(SAMPLES[0], frames=frames)
    first = write_sample(sample, directory)
    paths = [first]
    for n in range(2, copies + 1):
        paths.append(Path(shutil.copyfile(first, directory / f"{first.stem}-{n}.mcap")))
    return paths


def scale_pass(workers: int, result: BulkResult, load_before: float | None) -> dict[str, Any]:
    """One pass's figures: its times, the seconds per recording (p50/p99/max), and the
    machine's 1-minute load average as it began (others' work on a shared machine)."""
    seconds = [row["seconds"] for row in result.rows if row.get("seconds") is not None]
    p50, p99 = np.percentile(seconds, [50, 99]) if seconds else (np.nan, np.nan)
    return {
        "workers": workers,
        "load_avg_1m": load_before,
        "ray_start_s": round(result.ray_start_s, 2),
        "eval_s": round(result.eval_s, 2),
        "wall_s": round(result.ray_start_s + result.eval_s, 2),
        "per_recording_s": {
            "p50": round(float(p50), 2),
            "p99": round(float(p99), 2),
            "max": round(max(seconds, default=np.nan), 2),
        },
        "failed": [row["recording"] for row in result.rows if not row["ok"]],
    }


def scale_report(passes: Sequence[dict[str, Any]], recordings: int) -> dict[str, Any]:
    """The report: every pass, and 1 worker's times over 2 workers' (above 1: 2 are faster)."""
    one, two = passes[0], passes[-1]
    return {
        "machine": machine_info(),
        "recordings": recordings,
        "passes": list(passes),
        "speedup": round(one["eval_s"] / two["eval_s"], 2) if two["eval_s"] else None,
        "speedup_with_start": round(one["wall_s"] / two["wall_s"], 2) if two["wall_s"] else None,
    }


def run_eval_scale_bench(
    recordings: Sequence[Path] | None = None,
    copies: int = DEFAULT_COPIES,
    frames: int | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Score ``recordings`` (default: ``copies`` of the US sample, ``frames`` long) with 1
    worker, then with 2."""
    say = progress.print if progress is not None else (lambda *_: None)
    passes = []
    with tempfile.TemporaryDirectory(prefix="igtflow-bench-eval-scale-") as tmp_name:
        tmp = Path(tmp_name)
        if recordings is None:
            recordings = sample_set(tmp / "recordings", copies, frames)
        for workers in WORKERS:
            say(f"{len(recordings)} recordings, {workers} worker(s) on Ray")
            started, load = time.monotonic(), _load()
            result = run_bulk(recordings, tmp / f"logs-{workers}", workers)
            passes.append(scale_pass(workers, result, load))
            say(f"  {time.monotonic() - started:.1f} s")
    report = scale_report(passes, len(recordings))
    report["frames"] = frames  # of each copy of the sample; None: its own 36, or --recordings
    return report


def _load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def print_report(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(
        title=f"igtflow bench eval-scale: {report['recordings']} recordings, lockstep replays",
        title_justify="left",
    )
    columns = (
        "workers",
        "Ray start s",
        "replays s",
        "per recording s p50 / p99 / max",
        "failed",
        "load at start",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for p in report["passes"]:
        s = p["per_recording_s"]
        table.add_row(
            str(p["workers"]),
            f"{p['ray_start_s']:.1f}",
            f"{p['eval_s']:.1f}",
            f"{s['p50']:.1f} / {s['p99']:.1f} / {s['max']:.1f}",
            str(len(p["failed"])),
            "?" if p["load_avg_1m"] is None else f"{p['load_avg_1m']:.1f}",
        )
    console.print(table)
    console.print(
        f"speed-up with 2 workers: {report['speedup']}× on the replays, "
        f"{report['speedup_with_start']}× counting Ray's start",
        highlight=False,
    )
    console.print(describe(report["machine"]), highlight=False)
