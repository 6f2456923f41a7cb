"""Runs a graph to completion: supervisor, live status, signals, exit code."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from igtflow.launch.console import console as make_console
from igtflow.launch.graph import Graph
from igtflow.launch.keys import key_reader
from igtflow.launch.status_table import status_table
from igtflow.launch.supervisor import Supervisor
from igtflow.launch.wiring_plan import sequential_ports

EXIT_OK = 0
EXIT_NODE_FAILED = 3


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    rows: list[dict[str, Any]]
    events: list[str]
    log_dir: Path


def default_log_dir(graph: Graph) -> Path:
    return Path("runs") / f"{graph.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_graph(
    graph: Graph,
    log_dir: Path | None = None,
    duration_s: float | None = None,
    console: Console | None = None,
    live: bool | None = None,
    lockstep: bool = False,
    until_drained: bool | Iterable[str] = False,
    host: str | None = None,
    port_base: int | None = None,
) -> RunResult:
    """Start ``graph``, show its status until Ctrl-C/SIGTERM or ``duration_s``, stop it cleanly.

    ``until_drained``: also stop once every source (or the sources named) has sent everything
    and the graph has handled it (a replay without ``loop``). ``lockstep``, ``host``: see
    ``Supervisor``; ``port_base``: tcp edges take ports from there up, in file order.
    In the live view, space pauses and resumes the sources. Exit code is non-zero when a node
    failed for good.
    """
    console = console or make_console(stderr=True)
    log_dir = log_dir or default_log_dir(graph)
    live = console.is_terminal if live is None else live
    # A plain list, not an Event: a handler that takes a lock can deadlock on a second signal.
    signals: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _: signals.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }

    def print_log(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    ports = {} if port_base is None else {"pick_port": sequential_ports(port_base)}
    supervisor = Supervisor(
        graph,
        log_dir,
        log_sink=print_log if live else None,
        lockstep=lockstep,
        host=host,
        **ports,
    )
    try:
        supervisor.start()
        started = time.monotonic()  # the duration counts from when the graph flows
        deadline = started + duration_s if duration_s else None

        def elapsed() -> float:
            return time.monotonic() - started

        def keep_going() -> bool:
            if signals or (deadline is not None and time.monotonic() >= deadline):
                return False
            named = None if isinstance(until_drained, bool) else until_drained
            if until_drained is not False and supervisor.drained(named):
                return False
            states = [n.state for n in supervisor.nodes.values()]
            return any(s not in ("failed", "finished") for s in states)

        if live:
            with (
                key_reader() as pressed,
                Live(console=console, refresh_per_second=2, transient=False) as view,
            ):
                while keep_going():
                    supervisor.poll(0.25)
                    if " " in pressed():
                        supervisor.pause(not supervisor.paused)
                    title = f"{graph.name} · PAUSED" if supervisor.paused else graph.name
                    view.update(status_table(title, supervisor.snapshot(), elapsed()))
        else:
            while keep_going():
                supervisor.poll(0.25)
    finally:
        rows_before_stop = supervisor.snapshot()
        supervisor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    rows = supervisor.snapshot()
    for row, before in zip(rows, rows_before_stop, strict=True):
        for key in ("rate_in_hz", "rate_out_hz", "cpu_percent", "cpu_ms_per_frame"):
            row[key] = before[key]
    code = EXIT_NODE_FAILED if supervisor.failed else EXIT_OK
    return RunResult(code, rows, supervisor.events, log_dir)
