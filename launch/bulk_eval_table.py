"""How ``igtflow eval replay --recordings DIR`` shows its work: a progress bar while the replays
run, then one table row per recording (scores, or the reason it has none) and the JSON report."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from igtflow.launch.bulk_eval import BulkResult, OnRow


@contextmanager
def progress_bar(console: Console, total: int) -> Iterator[OnRow]:
    """A bar on ``console`` (stderr) that advances as rows come in; yields the callback."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("replays", total=total, last="")

        def advance(done: int, _total: int, row: dict[str, Any]) -> None:
            state = "ok" if row["ok"] else "FAILED"
            bar.update(task, completed=done, last=f"{Path(row['recording']).name} {state}")

        yield advance


def report(result: BulkResult, address: str | None, log_dir: Path) -> dict[str, Any]:
    """The JSON report: totals, timings and every row."""
    failed = sum(not row["ok"] for row in result.rows)
    return {
        "recordings": len(result.rows),
        "ok": len(result.rows) - failed,
        "failed": failed,
        "workers": result.workers,
        "ray": address or "local",
        "ray_start_s": round(result.ray_start_s, 2),
        "eval_s": round(result.eval_s, 2),
        "log_dir": str(log_dir),
        "interrupted": result.interrupted,
        "rows": result.rows,
    }


def print_table(summary: dict[str, Any], console: Console) -> None:
    """One row per recording: Dice per label, target error, valid fraction, time, or why not."""
    rows = summary["rows"]
    dice = _columns(rows, "dice")
    errors = sorted({t for row in rows for t in row.get("target_error_mm") or {}})
    valid = sorted({t for row in rows for t in row.get("valid_fraction") or {}})
    one_dice_topic = len({topic for topic, _ in dice}) == 1
    table = Table(title=f"replay eval: {summary['ok']} of {summary['recordings']} scored")
    table.add_column("recording")
    table.add_column("frames", justify="right")
    for topic, label in dice:
        name = f"Dice {label}" if one_dice_topic else f"Dice {topic} {label}"
        table.add_column(name, justify="right")
    for topic in errors:
        table.add_column(f"{topic} error mm (median/p95)", justify="right")
    for topic in valid:
        table.add_column(f"{topic} valid", justify="right")
    table.add_column("s", justify="right")
    table.add_column("status")
    for row in rows:
        cells: list[str] = [Path(row["recording"]).name, _number(row.get("frames"))]
        cells += [_number((row.get("dice") or {}).get(t, {}).get(label)) for t, label in dice]
        for topic in errors:
            error = (row.get("target_error_mm") or {}).get(topic)
            cells.append(f"{error['median']:.2f}/{error['p95']:.2f}" if error else "–")
        cells += [_number((row.get("valid_fraction") or {}).get(t)) for t in valid]
        seconds = row.get("seconds")
        cells.append("–" if seconds is None else f"{seconds:.1f}")
        status = Text("ok") if row["ok"] else Text.assemble(("failed", "red"), f": {row['reason']}")
        table.add_row(*cells, status)
    console.print(table)
    console.print(
        f"{summary['workers']} workers on Ray ({summary['ray']}): started in "
        f"{summary['ray_start_s']:.1f} s, replays took {summary['eval_s']:.1f} s; "
        f"logs and scored recordings: {summary['log_dir']}",
        highlight=False,
    )


def _columns(rows: list[dict[str, Any]], key: str) -> list[tuple[str, str]]:
    """(topic, label) of every score any row has, in first-seen order."""
    seen: dict[tuple[str, str], None] = {}
    for row in rows:
        for topic, scores in (row.get(key) or {}).items():
            for label in scores:
                seen[(topic, label)] = None
    return list(seen)


def _number(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
