"""``igtflow eval replay --recordings DIR``: every recording of a folder scored in parallel on Ray.

Each recording is one Ray task that runs ``replay_eval`` (the same lockstep replay and scoring
as ``igtflow eval replay REC``), so a row's scores are those of that recording played alone.
Ray does the scheduling, on this machine (a local instance with ``workers`` CPUs, started and
stopped here) or on a cluster (``address``), rather than a pool of our own: the same command
then scales from a laptop to a cluster without a change.

A recording that cannot be read, a graph that does not fit it, a node that fails or a worker
that dies makes one failed row with its reason; the other recordings go on. Each task keeps to
one thread per library (torch, OpenCV, BLAS), so ``workers`` tasks use ``workers`` cores.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from igtflow.stream.threads import apply_thread_budget, thread_budget, thread_budget_env

RECORDING_GLOB = "*.mcap"
TASK_THREADS = 1
# Task arguments and results are a few strings and numbers: the smallest store Ray allows will do.
OBJECT_STORE_BYTES = 80 * 1024 * 1024
CONNECT_TIMEOUT_S = 5.0

OnRow = Callable[[int, int, dict[str, Any]], None]  # (done, total, row just finished)


@dataclass(frozen=True)
class BulkResult:
    """Rows in the order of the recordings given, and where the time went."""

    rows: list[dict[str, Any]]
    ray_start_s: float  # starting (or joining) Ray
    eval_s: float  # first task submitted → last row in
    workers: int  # CPUs Ray offered the run
    interrupted: bool = False  # Ctrl-C: the rows of recordings not finished say "interrupted"


def find_recordings(directory: Path) -> list[Path]:
    """The ``*.mcap`` files directly in ``directory``, by name; ``NotADirectoryError`` or
    ``FileNotFoundError`` names the folder when there is none, ``ValueError`` when it is empty."""
    if not directory.exists():
        raise FileNotFoundError(f"{directory}: no such folder")
    if not directory.is_dir():
        raise NotADirectoryError(
            f"{directory}: not a folder; score one recording with `igtflow eval replay {directory}`"
        )
    found = sorted(p for p in directory.glob(RECORDING_GLOB) if p.is_file())
    if not found:
        raise ValueError(f"{directory}: no recordings ({RECORDING_GLOB}) in this folder")
    return found


def evaluate_recording(
    recording: str, work_dir: str, graph_text: str | None, where: str = "replay-eval"
) -> dict[str, Any]:
    """One row: ``replay_eval`` of ``recording`` with its logs in ``work_dir``; never raises, so
    that one damaged recording is one failed row, not a failed run (runs inside a Ray task)."""
    apply_thread_budget(TASK_THREADS)
    started = time.monotonic()
    row: dict[str, Any] = {
        "recording": recording,
        "host": socket.gethostname(),
        "threads": thread_budget(default=0),  # 0: the task ran without its budget
    }
    try:
        from igtflow.launch.replay_eval import replay_eval

        Path(work_dir).mkdir(parents=True, exist_ok=True)
        result = replay_eval(Path(recording), Path(work_dir), graph_text, where)
    except Exception as exc:  # any failure of one recording is its row's reason
        return {**row, **failed_row(recording, _reason(exc)), "seconds": _since(started)}
    row.update({k: v for k, v in result.items() if k != "summary"})
    row.update(seconds=_since(started), log_dir=work_dir, ok=result["exit_code"] == 0)
    row["reason"] = None if row["ok"] else f"a node failed (exit {result['exit_code']})"
    if not row["ok"]:
        row["reason"] += f"; node logs in {work_dir}"
    return row


def failed_row(recording: str, reason: str) -> dict[str, Any]:
    """The row of a recording that gave no scores."""
    return {"recording": recording, "ok": False, "reason": reason, "frames": None}


def run_bulk(
    recordings: Sequence[Path],
    log_dir: Path,
    workers: int,
    address: str | None = None,
    graph_text: str | None = None,
    where: str = "replay-eval",
    progress: OnRow | None = None,
) -> BulkResult:
    """Score every recording, one Ray task each, at most ``workers`` at once on a local Ray
    instance started (and shut down) here, or as many as the cluster at ``address`` fits.

    ``log_dir/<name>/`` receives each recording's logs and scored recording, on the host that
    ran it; on a cluster the recordings' paths must be readable on every node."""
    import ray

    started = time.monotonic()
    try:
        _start_ray(workers, address)  # inside: a Ctrl-C while Ray starts still shuts it down
        ray_start_s = time.monotonic() - started
        offered = int(ray.cluster_resources().get("CPU", workers))
        task = ray.remote(evaluate_recording).options(
            num_cpus=TASK_THREADS,
            max_retries=0,  # a replay that killed its worker would kill the next one too
            runtime_env={"env_vars": thread_budget_env(TASK_THREADS)},
        )
        names = _work_names(recordings)
        started = time.monotonic()
        pending = {
            task.remote(str(path.resolve()), str((log_dir / name).resolve()), graph_text, where): i
            for i, (path, name) in enumerate(zip(recordings, names, strict=True))
        }
        rows: list[dict[str, Any] | None] = [None] * len(recordings)
        interrupted = False
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    index = pending.pop(ref)
                    rows[index] = _collect(ray, ref, str(recordings[index].resolve()))
                    if progress:
                        progress(len(recordings) - len(pending), len(recordings), rows[index])
        except KeyboardInterrupt:  # Ctrl-C: keep the rows already in, say which were not
            interrupted = True
            for index in pending.values():
                rows[index] = failed_row(str(recordings[index].resolve()), "interrupted")
        eval_s = time.monotonic() - started
    finally:
        ray.shutdown()  # stops the workers, and with them the graphs they ran
    rows_in = [r for r in rows if r is not None]
    return BulkResult(rows_in, ray_start_s, eval_s, offered, interrupted)


def _start_ray(workers: int, address: str | None) -> None:
    import ray

    if address:
        _check_reachable(address)
        ray.init(address=address, logging_level="error", log_to_driver=False)
        return
    # "local": a new instance of our own, never one someone else started on this machine. Its
    # servers listen beyond loopback whatever it is told (it swaps 127.0.0.1 for the host's
    # address); Ray's token authentication, on by default in the release we pin, guards them.
    ray.init(
        address="local",
        num_cpus=workers,
        num_gpus=0,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        logging_level="error",
        log_to_driver=False,
    )


def _check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """``ConnectionError`` now for a HOST:PORT nobody answers on: Ray itself would retry for
    minutes, printing a warning every few seconds (``auto`` is Ray's to find)."""
    if address == "auto":
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConnectionError(f"{address!r} is not HOST:PORT (the head's port, 6379 unless set)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {address}: {exc.strerror or exc}") from None


def _collect(ray: Any, ref: Any, recording: str) -> dict[str, Any]:
    """The task's row, or a failed row when its worker died under it."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        return failed_row(recording, f"the worker running it failed: {_reason(exc)}")


def _work_names(recordings: Sequence[Path]) -> list[str]:
    """A folder name per recording: its stem, numbered when two share one."""
    names: list[str] = []
    for path in recordings:
        name, n = path.stem, 1
        while name in names:
            n += 1
            name = f"{path.stem}-{n}"
        names.append(name)
    return names


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _since(started: float) -> float:
    return round(time.monotonic() - started, 2)


def default_log_dir() -> Path:
    """Where the logs go unless told: a new folder under the system's temporary folder."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"igtflow-eval-{os.getpid()}-"))
