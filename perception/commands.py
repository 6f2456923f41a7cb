"""Command-line entry points for the segmentation networks (plain functions, typer-compatible).

``train`` backs ``igtflow train us-seg|fluoro-seg`` and ``eval_segmentation`` the segmentation
half of ``igtflow eval perception``. Both print JSON and return the same dict.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SEGMENTATION_TASKS = ("us-seg", "fluoro-seg")


def train(
    task: str,
    arch: str = "fast",
    steps: int = 6000,
    out: Path = Path("models"),
    data: Path | None = None,
    init: Path | None = None,
    seed: int = 0,
    progress: bool = True,
    image_topic: str | None = None,
    label_topic: str | None = None,
) -> dict:
    """Train a segmentation network on the phantom (seeds below 1000), or fine-tune one.

    task: us-seg or fluoro-seg. arch: fast (ours) or monai-unet (the baseline, same recipe).
    data: a folder of NAME_image.png + NAME_label.png pairs (or .nrrd; labels are the phantom's
    ids: 0 background, 1 organ, 2 vessel, 3 lesion, 4 device), or a recording (.mcap) with an
    image topic and a LABELS topic (found by modality, or named by image_topic/label_topic).
    With it the shipped weights are fine-tuned (unless init names others), phantom frames are
    mixed in, and the metrics are those of the user's held-out fifth. Writes OUT/<name>.pt and
    OUT/<name>.card.yaml.
    """
    from igtflow.perception.segmentation.train import default_name, train_segmentation

    if task not in SEGMENTATION_TASKS:
        raise ValueError(f"task must be one of {SEGMENTATION_TASKS}, got {task!r}")
    name = None
    if data is not None:
        name = f"{default_name(task, arch)}-finetuned"
        if init is None and (WEIGHTS_DIR / f"{default_name(task, arch)}.pt").is_file():
            init = WEIGHTS_DIR / f"{default_name(task, arch)}.card.yaml"
    card, metrics = train_segmentation(
        task,
        arch,
        steps,
        Path(out),
        seed,
        progress=progress,
        init=init,
        user_data=data,
        name=name,
        image_topic=image_topic,
        label_topic=label_topic,
    )
    result = {"card": str(card), **{k: _round(v) for k, v in metrics.items()}}
    print(json.dumps(result, indent=2))
    return result


def eval_segmentation(
    seeds: str = "1001-1010",
    frames_per_seed: int = 6,
    weights: Path = WEIGHTS_DIR,
    json_output: bool = False,
    quiet: bool = False,
) -> dict:
    """Score the shipped segmentation networks (and the MONAI baseline) on held-out seeds.

    Keys: us_dice (mean of organ and vessel Dice), lesion_dice, monai_unet_dice (the baseline's
    us_dice), catheter_dice, catheter_tip_mm (median, at the detector), calibration_error (the
    larger of the two networks' ECE); per-network details under ``networks``.
    """
    from igtflow.perception.segmentation.evaluate import evaluate_segmentation

    weights = Path(weights)
    networks: dict[str, dict] = {}
    for name, task in (
        ("us-seg", "us-seg"),
        ("us-seg-monai", "us-seg"),
        ("fluoro-seg", "fluoro-seg"),
    ):
        card = weights / f"{name}.card.yaml"
        if card.is_file():
            networks[name] = evaluate_segmentation(task, card, seeds, frames_per_seed)
    us = networks.get("us-seg", {})
    monai = networks.get("us-seg-monai", {})
    fluoro = networks.get("fluoro-seg", {})
    eces = [n["calibration_error"] for n in (us, fluoro) if "calibration_error" in n]
    result = {
        "us_dice": _mean(us, ("dice_organ", "dice_vessel")),
        "lesion_dice": _round(us.get("dice_lesion", math.nan)),
        "monai_unet_dice": _mean(monai, ("dice_organ", "dice_vessel")),
        "catheter_dice": _round(fluoro.get("dice_device", math.nan)),
        "catheter_tip_mm": _round(fluoro.get("catheter_tip_mm", math.nan)),
        "calibration_error": _round(max(eces) if eces else math.nan),
        "seeds": seeds,
        "networks": {k: {m: _round(v) for m, v in n.items()} for k, n in networks.items()},
    }
    if json_output:
        print(json.dumps(result, indent=2))
    elif not quiet:
        _print_table(result)
    return result


def _mean(metrics: dict, keys: tuple[str, ...]) -> float:
    values = [metrics[k] for k in keys if k in metrics]
    return _round(sum(values) / len(values)) if len(values) == len(keys) else math.nan


def _round(value: float) -> float:
    return round(float(value), 4) if math.isfinite(value) else value


def _print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"segmentation, held-out seeds {result['seeds']}")
    table.add_column("metric")
    names = list(result["networks"])
    for name in names:
        table.add_column(name, justify="right")
    metrics = sorted({m for n in result["networks"].values() for m in n})
    for m in metrics:
        values = (result["networks"][name].get(m, float("nan")) for name in names)
        table.add_row(m, *(f"{v:.3f}" for v in values))
    Console().print(table)
