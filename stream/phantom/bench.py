"""``igtflow bench phantom``: frames per second of the phantom renderers on one core, and how
well their truth agrees with the phantom model on held-out seeds (metrics: ``consistency``).

Each renderer runs for a fixed time with OpenCV limited to one thread (numpy's element-wise work
is single-threaded); a frame is the full output of a node tick: image, labels, flow and targets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from igtflow.machine import describe, machine_info
from igtflow.stream.phantom.consistency import (
    LESION_CENTROID_PX_MAX,
    STRUCTURE_THRESHOLD,
    THRESHOLDS,
)
from igtflow.stream.threads import apply_thread_budget

# Frames/s each renderer must reach on one core.
TARGETS_FPS = {"us": 120.0, "us_curvilinear": 120.0, "fluoro": 60.0}

# Held-out seeds: perception trains on seeds < 1000, so these are never seen in training.
TRUTH_SEEDS = (1001, 1002, 1003)
# C-arm angles (LAO, cranial) cycled over the seeds, so the projection is not only AP.
TRUTH_CARM = ((0.0, 0.0), (30.0, -15.0), (-25.0, 10.0))


def truth_frames(count: int) -> tuple[int, ...]:
    """Frames 7, 17, 27, … (``count`` of them) for truth consistency: never a key frame."""
    return tuple(range(7, 7 + 10 * count, 10))


# Frames 7, 17, …, 117: every phase of a 4 s breathing cycle at 30 Hz, none a key frame
# (key_every 30), 7 to 27 frames after their key, so the flow spans up to ~1 s of motion.
TRUTH_FRAMES = truth_frames(12)


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


def run_phantom_bench(
    duration_s: float = 3.0,
    seed: int = 0,
    truth_seeds: tuple[int, ...] = TRUTH_SEEDS,
    truth_frames: tuple[int, ...] = TRUTH_FRAMES,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Measure ultrasound 256×256 (linear and curvilinear probe) and fluoroscopy 512×512 frame
    rates on one core, then the
    truth consistency over ``truth_seeds`` × ``truth_frames`` (none when ``truth_seeds`` is empty).
    """
    import cv2

    from igtflow.stream.phantom.anatomy import build_anatomy
    from igtflow.stream.phantom.fluoro import FluoroSim
    from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim

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
        convex = UltrasoundSim(seed, UltrasoundConfig(probe="curvilinear"), anatomy=anatomy)
        convex_stats = _time_frames(lambda i: convex.render(i, out=us_out), duration_s)
        t0 = time.perf_counter()
        fluoro = FluoroSim(seed, anatomy=anatomy)
        pose_s = time.perf_counter() - t0
        g = fluoro.geometry
        fl_out = np.empty((g.height, g.width), np.uint8)
        fl_stats = _time_frames(lambda i: fluoro.render(i, out=fl_out), duration_s)
        t0 = time.perf_counter()
        consistency = (
            run_truth_consistency(truth_seeds, truth_frames, progress) if truth_seeds else None
        )
        consistency_s = time.perf_counter() - t0
    finally:
        cv2.setNumThreads(import_threads)
    return {
        "us_fps": us_stats["fps"],
        "fluoro_fps": fl_stats["fps"],
        "us_curvilinear_fps": convex_stats["fps"],
        "us": {"size": [us.config.height, us.config.width], **us_stats},
        "us_curvilinear": {"size": [us.config.height, us.config.width], **convex_stats},
        "fluoro": {"size": [g.height, g.width], **fl_stats},
        "targets_fps": TARGETS_FPS,
        "meets_targets": us_stats["fps"] >= TARGETS_FPS["us"]
        and convex_stats["fps"] >= TARGETS_FPS["us_curvilinear"]
        and fl_stats["fps"] >= TARGETS_FPS["fluoro"],
        "consistency": consistency,
        "consistency_s": consistency_s,
        "anatomy_build_s": anatomy_s,
        "fluoro_pose_setup_s": pose_s,
        "threads": 1,
        "seed": seed,
        "duration_s": duration_s,
        "machine": machine_info(),
    }


# --- truth consistency ----------------------------------------------------------------------


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"min": float("nan"), "median": float("nan"), "max": float("nan"), "n": 0}
    return {
        "min": float(a.min()),
        "median": float(np.median(a)),
        "max": float(a.max()),
        "n": int(a.size),
    }


def _passes(stats: dict[str, float], rule: tuple[str, float] | None) -> bool:
    if rule is None or stats["n"] == 0:
        return True
    op, limit = rule
    return stats["min"] >= limit if op == ">=" else stats["max"] < limit


def run_truth_consistency(
    seeds: tuple[int, ...] = TRUTH_SEEDS,
    frames: tuple[int, ...] = TRUTH_FRAMES,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Truth-consistency figures of the phantom over ``seeds`` × ``frames``: min/median/max.

    Ultrasound label agreement and target reprojection use the default sweep path (the probe
    moves; label agreement also with a curvilinear probe, inside its sector); ultrasound flow
    Dice and lesion centroid use a static probe, as the flow leaves out motion across the image
    plane. Fluoroscopy uses one C-arm pose per seed from TRUTH_CARM.
    """
    from igtflow.stream.phantom.anatomy import DEVICE, LESION, ORGAN, VESSEL, build_anatomy
    from igtflow.stream.phantom.carm import CArmGeometry
    from igtflow.stream.phantom.consistency import (
        FOREGROUND,
        flow_dice,
        fluoro_target_reprojection_px,
        lesion_centroid_px,
        us_label_agreement,
        us_target_reprojection_px,
    )
    from igtflow.stream.phantom.fluoro import FluoroSim
    from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim

    values: dict[str, list[float]] = {name: [] for name in THRESHOLDS}
    per_structure: dict[str, dict[str, list[float]]] = {"us": {}, "fluoro": {}}
    carm = []
    total, done = len(seeds) * len(frames), 0
    for n, seed in enumerate(seeds):
        anatomy = build_anatomy(seed)
        sweep = UltrasoundSim(seed, anatomy=anatomy)
        static = UltrasoundSim(seed, UltrasoundConfig(path="static"), anatomy=anatomy)
        convex = UltrasoundSim(seed, UltrasoundConfig(probe="curvilinear"), anatomy=anatomy)
        lao, cranial = TRUTH_CARM[n % len(TRUTH_CARM)]
        carm.append({"seed": seed, "lao_deg": lao, "cranial_deg": cranial})
        geometry = CArmGeometry(
            lao_deg=lao, cranial_deg=cranial, isocenter=tuple(anatomy.organ_center)
        )
        fluoro = FluoroSim(seed, geometry=geometry, anatomy=anatomy)
        for index in frames:
            frame = sweep.render(index)
            values["us_label_agreement"].append(us_label_agreement(sweep, frame))
            values["us_target_px"].append(us_target_reprojection_px(frame))
            convex_agreement = us_label_agreement(convex, convex.render(index, truth=False))
            values["us_curvilinear_label_agreement"].append(convex_agreement)
            for stream, sim, structures in (
                ("us", static, (ORGAN, VESSEL, LESION, FOREGROUND)),
                ("fluoro", fluoro, (ORGAN, VESSEL, LESION, DEVICE, FOREGROUND)),
            ):
                current = sim.render(index)
                key = sim.render(current.key_index)
                scores = flow_dice(current.labels, key.labels, current.flow, structures)
                values[f"{stream}_flow_dice"].append(scores.pop("overall"))
                for name, score in scores.items():
                    per_structure[stream].setdefault(name, []).append(score)
                values[f"{stream}_lesion_centroid_px"].append(lesion_centroid_px(current))
                if stream == "fluoro":
                    values["fluoro_target_px"].append(fluoro_target_reprojection_px(current))
            done += 1
            if progress is not None:
                progress(done, total)
    report: dict[str, Any] = {name: _stats(v) for name, v in values.items()}
    for stream in ("us", "fluoro"):
        report[f"{stream}_flow_dice"]["per_structure"] = {
            name: _stats(v) for name, v in per_structure[stream].items()
        }
    failed = [name for name, rule in THRESHOLDS.items() if not _passes(report[name], rule)]
    for stream in ("us", "fluoro"):
        for name in ("organ", "lesion", "foreground"):
            if report[f"{stream}_flow_dice"]["per_structure"][name]["min"] < STRUCTURE_THRESHOLD:
                failed.append(f"{stream}_flow_dice.{name}")
    report.update(
        seeds=list(seeds),
        frames=list(frames),
        carm=carm,
        thresholds={k: list(v) if v else None for k, v in THRESHOLDS.items()},
        failed=failed,
        passes=not failed,
    )
    return report


def consistency_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Table rows (metric, US, fluoro, target): "min median max" per cell."""

    def cell(stats: dict[str, float] | None, digits: int = 3) -> str:
        if stats is None or stats["n"] == 0:
            return "—"
        return " ".join(f"{stats[k]:.{digits}f}" for k in ("min", "median", "max"))

    def target(name: str) -> str:
        rule = THRESHOLDS.get(name)
        return f"{'≥' if rule[0] == '>=' else '<'} {rule[1]:g}" if rule else "—"

    rows = [
        (
            "label agreement",
            cell(report["us_label_agreement"], 4),
            "—",
            target("us_label_agreement"),
        ),
        (
            "label agreement, convex",
            cell(report["us_curvilinear_label_agreement"], 4),
            "—",
            target("us_curvilinear_label_agreement"),
        ),
        (
            "target reproj. px",
            cell(report["us_target_px"]),
            cell(report["fluoro_target_px"]),
            target("fluoro_target_px"),
        ),
        (
            "lesion centroid px",
            cell(report["us_lesion_centroid_px"]),
            cell(report["fluoro_lesion_centroid_px"]),
            f"XA < {LESION_CENTROID_PX_MAX:g}",
        ),
        (
            "flow Dice, all",
            cell(report["us_flow_dice"]),
            cell(report["fluoro_flow_dice"]),
            target("fluoro_flow_dice"),
        ),
    ]
    us, fl = report["us_flow_dice"]["per_structure"], report["fluoro_flow_dice"]["per_structure"]
    for name in ("organ", "vessel", "lesion", "device", "foreground"):
        guarded = name in ("organ", "lesion", "foreground")
        rows.append(
            (
                f"flow Dice, {name}",
                cell(us.get(name)),
                cell(fl.get(name)),
                f"≥ {STRUCTURE_THRESHOLD:g}" if guarded else "—",
            )
        )
    return rows


def print_report(report: dict[str, Any], console: Any) -> None:
    """The report as tables: frames/s per renderer against its target, then truth consistency
    (min median max per metric) with what fell outside its target, then the machine."""
    from rich.table import Table

    table = Table(title="phantom renderers, 1 thread")
    for column in ("stream", "size", "fps", "target", "p50 ms", "p99 ms", "max ms", "frames"):
        table.add_column(column)
    for name in ("us", "us_curvilinear", "fluoro"):
        r = report[name]
        table.add_row(
            name,
            "x".join(map(str, r["size"])),
            f"{r['fps']:.0f}",
            f"{report['targets_fps'][name]:.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['max_ms']:.2f}",
            str(r["frames"]),
        )
    console.print(table)
    if report["consistency"]:
        c = report["consistency"]
        title = f"truth consistency (min median max), seeds {c['seeds']} x {len(c['frames'])}"
        table = Table(title=f"{title} frames")
        for column in ("metric", "US", "fluoro", "target"):
            table.add_column(column)
        for row in consistency_rows(c):
            table.add_row(*row)
        console.print(table)
        if c["failed"]:
            console.print(f"outside target: {', '.join(c['failed'])}", style="red", highlight=False)
    console.print(describe(report["machine"]), highlight=False)
