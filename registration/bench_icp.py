"""``igtflow bench registration``: our rigid ICP beside Open3D's point-to-plane ICP, same points.

The model is the phantom's organ surface (``build_anatomy(seed)``, marching cubes at 1 mm as a
CT-like preoperative model, cached per process); both methods get the same surface samples as
their target (about one per mm², Open3D with normals from its default ``estimate_normals()``,
ours with the mesh's face normals). Each repeat draws ``points`` new surface points, adds
Gaussian noise (``noise_mm``) and misaligns them by a known rigid transform (5° about a random
axis, 5–10 mm in a random direction); both methods start from the identity with the same
correspondence distance (our grid's band) and are timed back to back, alternating which goes
first, so the drifting load of a shared machine falls on each alike. Open3D runs its defaults:
``registration_icp(source, target, band, identity, TransformationEstimationPointToPlane())`` and
``ICPConvergenceCriteria()``; its k-d tree is built inside that call, while our per-model grid is
built once before timing and reported apart (``model.build_s``): that is the design, the model
is fixed for a case. Converting the points to an Open3D cloud is left out of Open3D's time.

Threads: the measurement runs in a child process started with ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` set to 1 before NumPy or Open3D load, so
Open3D's OpenMP loops and NumPy's BLAS both get one thread: the same budget for both.
Accuracy: rotation error (deg), translation error (mm) and target registration error at the
phantom's targets (lesion, bifurcation) and the organ's centre, per repeat, p50 and max.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from functools import lru_cache
from typing import Any

import numpy as np

TARGET_RATIO = 0.25
# "Equal" accuracy: p50 TRE within 10 % of Open3D's. Under pure Gaussian noise least squares
# (Open3D) is optimal and a robust kernel pays a few per cent; the report shows the ratio itself.
ACCURACY_TOLERANCE = 1.10
OUTLIER_FRACTION = 0.2  # the second, robustness round: a fifth of the points anywhere near
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def bench_icp(
    points: int = 10000,
    repeats: int = 60,
    seed: int = 1001,
    noise_mm: float = 0.3,
    isolate: bool = True,
) -> dict[str, Any]:
    """Time and score our ICP and Open3D's on the same points; the report's headline is
    ``icp_vs_open3d`` (p50 ratio). ``isolate`` runs the measurement in a one-thread child."""
    from igtflow.machine import machine_info

    args = {"points": points, "repeats": repeats, "seed": seed, "noise_mm": noise_mm}
    if isolate:
        env = {**os.environ, **ONE_THREAD}
        code = "import json,sys; from igtflow.registration.bench_icp import measure; "
        code += "print(json.dumps(measure(**json.loads(sys.argv[1]))))"
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(args)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the ICP bench's child process failed:\n{done.stderr[-2000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
    else:
        report = measure(**args)
    report["machine"] = machine_info()
    return report


@lru_cache(maxsize=2)
def phantom_organ(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Organ mesh (vertices, faces), the phantom's targets and organ centre (K×3), build s."""
    from igtflow.stream.phantom.anatomy import ORGAN, build_anatomy
    from igtflow.stream.phantom.export import structure_mesh

    start = time.perf_counter()
    anatomy = build_anatomy(seed)
    mesh = structure_mesh(anatomy, ORGAN, stride=2)
    targets = np.vstack([anatomy.targets, anatomy.organ_center[None]])
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.cells, dtype=np.int64)
    return vertices, faces, targets, time.perf_counter() - start


def measure(points: int, repeats: int, seed: int, noise_mm: float) -> dict[str, Any]:
    """The measurement itself, in this process with its current thread settings."""
    import open3d as o3d

    from igtflow.registration.closest_points import ModelTarget

    vertices, faces, targets, mesh_s = phantom_organ(seed)
    model = ModelTarget.from_mesh(vertices, faces, seed=seed)
    o3d_target = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(model.points))
    o3d_target.estimate_normals()
    rng = np.random.default_rng(seed)
    case = (vertices, faces, targets, model, o3d_target)
    ours, theirs = _round_robin(case, rng, points, repeats, noise_mm, 0.0)
    icp_ms, open3d_ms = _percentiles(ours["ms"]), _percentiles(theirs["ms"])
    ratio = icp_ms["p50_ms"] / open3d_ms["p50_ms"]
    accuracy = {"ours": _accuracy(ours), "open3d": _accuracy(theirs)}
    tre_ratio = accuracy["ours"]["tre_mm"]["p50"] / accuracy["open3d"]["tre_mm"]["p50"]
    ours_out, theirs_out = _round_robin(
        case, rng, points, max(3, repeats // 4), noise_mm, OUTLIER_FRACTION
    )
    return {
        "points": points,
        "repeats": repeats,
        "seed": seed,
        "noise_mm": noise_mm,
        "misalignment": "5° about a random axis, 5-10 mm in a random direction",
        "threads": {key: os.environ.get(key, "unset") for key in ONE_THREAD},
        "model": {
            "source": f"phantom organ surface, seed {seed}",
            "points": len(model.points),
            "cells": int(np.prod(model.shape)),
            "cell_mm": model.cell_mm,
            "band_mm": model.band_mm,
            "mesh_s": round(mesh_s, 3),
            "build_s": round(model.build_s, 3),
        },
        "icp_ms": icp_ms,
        "icp_open3d_ms": open3d_ms,
        "icp_vs_open3d": ratio,
        "icp_vs_open3d_p99": icp_ms["p99_ms"] / open3d_ms["p99_ms"],
        "accuracy": accuracy,
        "with_outliers": {
            "outlier_fraction": OUTLIER_FRACTION,
            "repeats": len(ours_out["ms"]),
            "icp_ms": _percentiles(ours_out["ms"]),
            "icp_open3d_ms": _percentiles(theirs_out["ms"]),
            "accuracy": {"ours": _accuracy(ours_out), "open3d": _accuracy(theirs_out)},
        },
        "tre_vs_open3d": tre_ratio,
        "targets_met": {
            "icp_vs_open3d": bool(ratio <= TARGET_RATIO),
            "tre_vs_open3d": bool(tre_ratio <= ACCURACY_TOLERANCE),
        },
    }


def _round_robin(
    case: tuple[Any, ...],
    rng: np.random.Generator,
    points: int,
    repeats: int,
    noise_mm: float,
    outlier_fraction: float,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Both methods on the same misaligned points, back to back, alternating who goes first;
    ``outlier_fraction`` of the points replaced by uniform ones in the model's box ± 20 mm."""
    import open3d as o3d

    from igtflow.registration.closest_points import sample_surface
    from igtflow.registration.icp import register_rigid

    vertices, faces, targets, model, o3d_target = case
    estimation = o3d.pipelines.registration.TransformationEstimationPointToPlane()
    low, high = model.points.min(axis=0) - 20.0, model.points.max(axis=0) + 20.0
    ours: dict[str, list[float]] = {"ms": [], "rot": [], "trans": [], "tre": [], "it": [], "ok": []}
    theirs: dict[str, list[float]] = {"ms": [], "rot": [], "trans": [], "tre": []}
    for repeat in range(repeats + 1):  # the first round warms both up and is not kept
        truth = misalignment(rng)
        surface, _ = sample_surface(vertices, faces, points, rng)
        surface += rng.normal(0.0, noise_mm, surface.shape)
        outliers = round(outlier_fraction * points)
        surface[:outliers] = rng.uniform(low, high, (outliers, 3))
        moving = (surface - truth[:3, 3]) @ truth[:3, :3]  # truth maps moving onto the model
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(moving))

        def run_ours(moving: np.ndarray = moving) -> Any:
            return register_rigid(moving, model)

        def run_open3d(cloud: Any = cloud) -> Any:
            return o3d.pipelines.registration.registration_icp(
                cloud, o3d_target, model.band_mm, np.eye(4), estimation
            )

        order = (run_ours, run_open3d) if repeat % 2 == 0 else (run_open3d, run_ours)
        timed = {}
        for run in order:
            start = time.perf_counter()
            out = run()
            timed[run] = (out, (time.perf_counter() - start) * 1e3)
        if repeat == 0:
            continue
        result, ms = timed[run_ours]
        _score(ours, result.reference_to_model, truth, targets, ms)
        ours["it"].append(result.iterations)
        ours["ok"].append(float(result.valid))
        registration, ms = timed[run_open3d]
        _score(theirs, np.asarray(registration.transformation), truth, targets, ms)
    return ours, theirs


def misalignment(rng: np.random.Generator, degrees: float = 5.0) -> np.ndarray:
    """A ``ReferenceToModel`` truth: ``degrees`` about a random axis, 5-10 mm in a random way."""
    from igtflow.registration.icp import rotation_from_vector

    axis = rng.normal(size=3)
    shift = rng.normal(size=3)
    truth = np.eye(4)
    truth[:3, :3] = rotation_from_vector(axis / np.linalg.norm(axis) * np.radians(degrees))
    truth[:3, 3] = shift / np.linalg.norm(shift) * rng.uniform(5.0, 10.0)
    return truth


def pose_errors(
    estimate: np.ndarray, truth: np.ndarray, targets: np.ndarray
) -> tuple[float, float, float]:
    """Rotation error (deg), translation error (mm) and worst target error (mm, model frame)."""
    error = estimate @ np.linalg.inv(truth)
    cosine = np.clip((np.trace(error[:3, :3]) - 1.0) / 2.0, -1.0, 1.0)
    moved = targets @ error[:3, :3].T + error[:3, 3]
    tre = float(np.linalg.norm(moved - targets, axis=1).max())
    return float(np.degrees(np.arccos(cosine))), float(np.linalg.norm(error[:3, 3])), tre


def _score(
    into: dict[str, list[float]],
    estimate: np.ndarray,
    truth: np.ndarray,
    targets: np.ndarray,
    ms: float,
) -> None:
    rotation, translation, tre = pose_errors(estimate, truth, targets)
    into["ms"].append(ms)
    into["rot"].append(rotation)
    into["trans"].append(translation)
    into["tre"].append(tre)


def _percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(np.max(values)),
    }


def _accuracy(scores: dict[str, list[float]]) -> dict[str, Any]:
    def spread(values: list[float]) -> dict[str, float]:
        return {"p50": float(np.median(values)), "max": float(np.max(values))}

    accuracy: dict[str, Any] = {
        "rotation_deg": spread(scores["rot"]),
        "translation_mm": spread(scores["trans"]),
        "tre_mm": spread(scores["tre"]),
    }
    if "ok" in scores:
        accuracy["valid_fraction"] = float(np.mean(scores["ok"]))
        accuracy["iterations_p50"] = float(np.median(scores["it"]))
    return accuracy


# -- output ---------------------------------------------------------------------------------------

HEADER = (
    "method",
    "p50 / p99 / max ms",
    "rotation error p50 / max °",
    "translation error p50 / max mm",
    "TRE p50 / max mm",
)


def _rows(report: dict[str, Any]) -> list[list[str]]:
    def row(name: str, timing: dict[str, float], accuracy: dict[str, Any]) -> list[str]:
        def pair(key: str, digits: int) -> str:
            return f"{accuracy[key]['p50']:.{digits}f} / {accuracy[key]['max']:.{digits}f}"

        times = f"{timing['p50_ms']:.2f} / {timing['p99_ms']:.2f} / {timing['max_ms']:.2f}"
        return [name, times, pair("rotation_deg", 4), pair("translation_mm", 3), pair("tre_mm", 3)]

    accuracy = report["accuracy"]
    rows = [
        row("ours: grid point-to-plane ICP", report["icp_ms"], accuracy["ours"]),
        row("Open3D point-to-plane (defaults)", report["icp_open3d_ms"], accuracy["open3d"]),
    ]
    if "with_outliers" in report:
        extra = report["with_outliers"]
        share = f"{extra['outlier_fraction']:.0%} outliers"
        rows.append(row(f"ours, {share}", extra["icp_ms"], extra["accuracy"]["ours"]))
        rows.append(row(f"Open3D, {share}", extra["icp_open3d_ms"], extra["accuracy"]["open3d"]))
    return rows


def _lines(report: dict[str, Any]) -> list[str]:
    met = {key: "met" if ok else "NOT met" for key, ok in report["targets_met"].items()}
    model, ours = report["model"], report["accuracy"]["ours"]
    return [
        f"ICP p50 vs Open3D p50: {report['icp_vs_open3d']:.2f}× (p99 "
        f"{report['icp_vs_open3d_p99']:.2f}×; target ≤ {TARGET_RATIO}×, {met['icp_vs_open3d']}); "
        f"TRE p50 vs Open3D's: {report['tre_vs_open3d']:.2f}× (equal within "
        f"{ACCURACY_TOLERANCE - 1:.0%}: {met['tre_vs_open3d']})",
        f"{report['points']} points, {report['noise_mm']} mm noise, {report['misalignment']}, "
        f"{report['repeats']} repeats, one thread each; ours valid in "
        f"{ours['valid_fraction']:.0%}, {ours['iterations_p50']:.0f} iterations p50",
        f"model: {model['source']}, {model['points']} points; our grid {model['cells']} cells "
        f"of {model['cell_mm']} mm, band {model['band_mm']} mm, built once in "
        f"{model['build_s']:.2f} s",
    ]


def markdown_table(report: dict[str, Any]) -> str:
    """The README's table: both methods' times and errors on the same points, then the ratio."""
    from igtflow.machine import describe

    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(report)]
    lines.append("")
    lines += [f"- {text}" for text in _lines(report)]
    lines.append(f"- {describe(report['machine'])}")
    return "\n".join(lines)


def print_report(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    from igtflow.machine import describe

    table = Table(title="igtflow bench registration", title_justify="left")
    for column in HEADER:
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in _rows(report):
        table.add_row(*row)
    console.print(table)
    for text in _lines(report):
        console.print(text, highlight=False)
    console.print(describe(report["machine"]), highlight=False)
