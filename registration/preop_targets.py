"""Named targets (points in RAS mm) from Slicer markups and from the phantom's truth.

Slicer's ``.mrk.json`` point lists (markups of type ``Fiducial``; curves and planes are left
out) say their ``coordinateSystem`` per markup (LPS when absent, as Slicer reads it); ``.fcsv``
says it in a ``# CoordinateSystem = LPS|RAS|0|1`` line (0 = RAS, 1 = LPS; RAS when absent, as
in files older than Slicer 4.11). The phantom's ``truth.json`` is RAS.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from igtflow.registration.preop_model import PreopModelError

TARGET_SUFFIXES = (".mrk.json", ".fcsv")
_LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


def target_suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in TARGET_SUFFIXES if name.endswith(s)), "")


def load_targets(path: str | Path) -> dict[str, np.ndarray]:
    """{name: RAS point (3,) float64} from a ``.mrk.json`` or ``.fcsv`` file."""
    path = Path(path)
    suffix = target_suffix(path)
    if not suffix:
        raise PreopModelError(
            f"{path}: unknown targets format; save the points from Slicer as "
            f"{' or '.join(TARGET_SUFFIXES)}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PreopModelError(f"{path}: cannot be read ({exc}); check the file") from exc
    points = _markups_json(path, text) if suffix == ".mrk.json" else _fcsv(path, text)
    return _named(path, points)


def phantom_targets(path: Path, truth: dict[str, Any]) -> dict[str, np.ndarray]:
    """The ``targets`` of an ``igtflow phantom export`` truth.json: [{"id", "ras"}]."""
    try:
        points = [(str(t["id"]), np.asarray(t["ras"], dtype=np.float64)) for t in truth["targets"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise PreopModelError(
            f"{path}: 'targets' must be a list of {{'id', 'ras': [x, y, z]}} ({exc}); export "
            "the phantom again"
        ) from exc
    return _named(path, points)


def _named(path: Path, points: list[tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    targets: dict[str, np.ndarray] = {}
    for name, point in points:
        if point.shape != (3,) or not np.isfinite(point).all():
            raise PreopModelError(f"{path}: target {name!r} is not a finite 3D point: {point}")
        if name in targets:
            raise PreopModelError(
                f"{path}: two targets are named {name!r}; rename one so each target is unique"
            )
        point.setflags(write=False)
        targets[name] = point
    return targets


def _markups_json(path: Path, text: str) -> list[tuple[str, np.ndarray]]:
    try:
        markups = json.loads(text)["markups"]
        points = []
        for markup in markups:
            if markup.get("type", "Fiducial") != "Fiducial":
                continue  # curves, planes, ROIs: not point targets
            units = markup.get("coordinateUnits", "mm")
            if units != "mm":
                raise PreopModelError(f"{path}: coordinateUnits {units!r}; save them in mm")
            signs = _LPS_TO_RAS if markup.get("coordinateSystem", "LPS") == "LPS" else 1.0
            for index, point in enumerate(markup.get("controlPoints", [])):
                if point.get("positionStatus", "defined") != "defined":
                    continue  # a placeholder the user has not placed yet
                name = point.get("label") or f"{path.name.split('.')[0]}-{index + 1}"
                points.append((name, np.asarray(point["position"], dtype=np.float64) * signs))
    except PreopModelError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PreopModelError(
            f"{path}: not a Slicer markups file ({type(exc).__name__}: {exc}); save the points "
            "again from Slicer's Markups module"
        ) from exc
    return points


def _fcsv(path: Path, text: str) -> list[tuple[str, np.ndarray]]:
    lines = text.splitlines()
    signs: Any = 1.0
    columns = ["id", "x", "y", "z", "ow", "ox", "oy", "oz", "vis", "sel", "lock", "label"]
    for line in lines:
        if line.startswith("#") and "CoordinateSystem" in line:
            system = line.split("=", 1)[-1].strip().upper()
            signs = _LPS_TO_RAS if system in ("LPS", "1") else 1.0
        elif line.startswith("# columns"):
            columns = [c.strip() for c in line.split("=", 1)[-1].split(",")]
    rows = [row for row in csv.reader(x for x in lines if not x.startswith("#")) if row]
    points = []
    try:
        x, label = columns.index("x"), columns.index("label")
        for index, row in enumerate(rows):
            name = (row[label] if label < len(row) else "") or f"{path.stem}-{index + 1}"
            points.append((name, np.asarray(row[x : x + 3], dtype=np.float64) * signs))
    except (ValueError, IndexError) as exc:
        raise PreopModelError(
            f"{path}: not a Slicer .fcsv fiducial list ({exc}); save the points again from "
            "Slicer's Markups module"
        ) from exc
    return points
