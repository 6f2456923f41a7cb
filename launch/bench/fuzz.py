"""``igtflow bench fuzz``: every reader of outside bytes fed N damaged inputs, crashes counted.

Hypothesis generates the damages (:mod:`igtflow.launch.bench.fuzz_targets`); it runs here in
generate-only mode with no example database, so a bench run counts crashes instead of stopping at
the first and shrinking it, and the same ``--seed`` gives the same cases. A case ends one of three
ways: read (the damage was harmless), refused with the reader's own error (counted as rejected),
or anything else (a crash; the first is kept, with its damages, to reproduce). The baseline is the
undamaged seed read the same number of times, so the time ratio says whether damaged input costs
more than valid input. Peak RSS growth over a target is the memory bound.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import resource
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from igtflow.launch.bench.fuzz_targets import Mutation, Target, mutate, mutations, targets
from igtflow.machine import describe, machine_info

BASELINE_READS = 50
# Address space a target may take beyond what the process holds when it starts: a reader that
# allocates what a damaged size declares meets MemoryError (a crash, counted at its line) here,
# instead of the kernel's OOM killer on a shared machine.
MEMORY_CAP = 2 << 30


@contextlib.contextmanager
def memory_cap(extra: int = MEMORY_CAP) -> Iterator[None]:
    """Cap this process's address space at its current size plus ``extra`` bytes (Linux)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except OSError:  # not Linux: no cap
        yield
        return
    cap = pages * resource.getpagesize() + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def fuzz_target(
    target: Target, cases: int, seed: int = 0, on_case: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Run ``cases`` damaged inputs through ``target``; its row of the report."""
    with tempfile.TemporaryDirectory(prefix=f"igtflow-fuzz-{target.name}-") as folder:
        work = Path(folder)
        original = target.seed(work)
        baseline = [_timed(target, original, work)[0] for _ in range(BASELINE_READS)]
        rss_before = _peak_rss_mb()
        times: list[float] = []
        counts = {"read": 0, "rejected": 0, "crashes": 0}
        first_crash: dict[str, Any] = {}
        sites: dict[str, int] = {}

        @hypothesis_seed(seed)
        @settings(
            max_examples=cases,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(mutations())
        def one(ops: list[Mutation]) -> None:
            seconds, outcome, detail, site = _timed(target, mutate(original, ops), work)
            times.append(seconds)
            counts[outcome] += 1
            if on_case is not None:
                on_case()
            if outcome == "crashes":
                sites[site] = sites.get(site, 0) + 1
                if not first_crash:
                    first_crash.update(damages=repr(ops), error=detail)

        with warnings.catch_warnings():
            # Libraries warn about what they read past (pydicom, pynrrd): the outcome is counted.
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)
            try:
                with memory_cap():
                    one()
            finally:
                logging.disable(logging.NOTSET)
    case_ms = np.asarray(times) * 1e3
    base_ms = np.asarray(baseline) * 1e3
    row: dict[str, Any] = {
        "target": target.name,
        "what": target.what,
        "fuzz_cases": len(times),
        "fuzz_crashes": counts["crashes"],
        "rejected": counts["rejected"],
        "read": counts["read"],
        "p50_ms": round(float(np.percentile(case_ms, 50)), 3),
        "p99_ms": round(float(np.percentile(case_ms, 99)), 3),
        "max_ms": round(float(case_ms.max()), 3),
        "seed_p50_ms": round(float(np.percentile(base_ms, 50)), 3),
        "p99_vs_seed": round(float(np.percentile(case_ms, 99) / max(np.median(base_ms), 1e-6)), 2),
        "peak_rss_growth_mb": round(_peak_rss_mb() - rss_before, 1),
    }
    if first_crash:
        row["first_crash"] = first_crash
        row["crash_sites"] = sites
    return row


def _timed(target: Target, data: bytes, work: Path) -> tuple[float, str, str, str]:
    """Seconds, outcome (read, rejected, crashes), and for a crash its traceback and its site:
    the exception type and the line that raised it, under which crashes are counted."""
    started = time.perf_counter()
    detail = site = ""
    try:
        target.read(data, work)
        outcome = "read"
    except target.rejects:
        outcome = "rejected"
    except Exception as exc:  # the point of the bench: anything else is a crash to report
        outcome, detail = "crashes", traceback.format_exc(limit=-3)
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        site = f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
    return time.perf_counter() - started, outcome, detail, site


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_fuzz(
    cases: int, seed: int = 0, only: list[str] | None = None, progress: Any = None
) -> dict[str, Any]:
    """Every target (or those named in ``only``) with ``cases`` damaged inputs each; with a rich
    console as ``progress``, a progress bar on it."""
    from rich.progress import Progress

    chosen = [t for t in targets() if not only or t.name in only]
    rows = []
    with Progress(console=progress, transient=True, disable=progress is None) as bar:
        for target in chosen:
            task = bar.add_task(f"fuzz {target.name}", total=cases)
            advance = functools.partial(bar.advance, task)
            rows.append(fuzz_target(target, cases, seed, advance))
    return {
        "bench": "fuzz",
        "cases_per_target": cases,
        "seed": seed,
        "fuzz_cases": sum(r["fuzz_cases"] for r in rows),
        "fuzz_crashes": sum(r["fuzz_crashes"] for r in rows),
        "targets": rows,
        "machine": machine_info(),
    }


def print_report(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"fuzz: {report['cases_per_target']} damaged inputs per reader")
    for column in ("target", "cases", "crashes", "rejected", "read", "p50 ms", "p99 ms", "max ms",
                   "seed p50 ms", "p99/seed", "RSS +MB"):  # fmt: skip
        table.add_column(column, justify="left" if column == "target" else "right")
    for row in report["targets"]:
        table.add_row(
            row["target"],
            str(row["fuzz_cases"]),
            str(row["fuzz_crashes"]),
            str(row["rejected"]),
            str(row["read"]),
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['max_ms']:.1f}",
            f"{row['seed_p50_ms']:.2f}",
            f"{row['p99_vs_seed']:.1f}",
            f"{row['peak_rss_growth_mb']:.0f}",
        )
    console.print(table)
    console.print(describe(report["machine"]), highlight=False)
    console.print(f"fuzz_cases {report['fuzz_cases']}, fuzz_crashes {report['fuzz_crashes']}")
    for row in report["targets"]:
        if "first_crash" in row:
            crash = row["first_crash"]
            console.print(
                f"{row['target']}: first crash, damages {crash['damages']}\n{crash['error']}"
            )
