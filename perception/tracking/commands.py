"""Command-line entry points for the tracker: ``igtflow train tracker`` and the tracking part of
``igtflow eval perception``. Plain typed functions; the CLI wires them."""

from __future__ import annotations

import json as json_module
from pathlib import Path

from rich.console import Console
from rich.table import Table

from igtflow.perception.tracking.evaluate import DEFAULT_SEEDS, evaluate_tracking
from igtflow.perception.tracking.train import DEFAULT_WEIGHTS, train_tracker


def train(steps: int = 3000, out: Path = DEFAULT_WEIGHTS.parent, seed: int = 0) -> Path:
    """Train the tracking network on phantom pairs (seeds < 1000) for ``steps`` batches of 8,
    with a progress bar and live loss; writes ``tracker.pt`` and ``tracker.card.yaml`` in
    ``out`` and returns the weights' path. About 1 s a step on one CPU thread."""
    return train_tracker(steps, out, seed=seed, progress=True)


def eval_tracking(
    seeds: str = DEFAULT_SEEDS, json: bool = False, model: str = "tracker", quiet: bool = False
) -> dict[str, float]:
    """Score ``model`` (a shipped name or a card) and DIS fast/medium on the same held-out
    frames; prints a table, or the JSON object with ``json``, and returns the figures."""
    figures = evaluate_tracking(model, seeds)
    if json:
        print(json_module.dumps(figures, indent=2, sort_keys=True))
        return figures
    if quiet:
        return figures
    table = Table(title=f"tracking, seeds {seeds}, {int(figures['pairs'])} pairs per probe path")
    for column in ("probe", "method", "EPE px", "target median mm", "target p90 mm", "p99 ms"):
        table.add_column(column, justify="right")
    for prefix, path in (("", "static"), ("sweep_", "sweep")):
        for name, label in (("track", "tracker"), ("dis", "DIS medium"), ("dis_fast", "DIS fast")):
            table.add_row(
                path,
                label,
                f"{figures[f'{prefix}{name}_epe_px']:.2f}",
                f"{figures[f'{prefix}{name}_median_mm']:.3f}",
                f"{figures[f'{prefix}{name}_p90_mm']:.3f}",
                f"{figures[f'{prefix}{name}_p99_ms']:.1f}",
            )
    Console().print(table)
    return figures
