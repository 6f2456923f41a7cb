"""Fixtures shared by the test files; the helpers they use live in ``tests/helpers/``.

Node processes are spawned with ``python -m igtflow.stream.process`` and import test node types
as ``tests.nodes.<module>:<Class>``, so the repository root goes on their PYTHONPATH.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.cli import REPO
from tests.helpers.graph_runs import GraphRun

os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
)


@pytest.fixture
def start_graph(tmp_path: Path) -> Iterator[Callable[..., GraphRun]]:
    """``start_graph(yaml_text)``: start every node and wait until all run; stopped at teardown."""
    runs: list[GraphRun] = []

    def start(text: str, lockstep: bool = False) -> GraphRun:
        run = GraphRun(text, tmp_path, lockstep)
        runs.append(run)
        run.supervisor.start()
        not_running = [n for n, s in run.nodes.items() if s.state != "running"]
        assert not not_running, f"nodes not running after start: {not_running}\n" + "\n".join(
            run.log_lines[-30:]
        )
        return run

    yield start
    for run in runs:
        run.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """Debian's headless Chromium through Playwright (``launch_chromium``), one per test module
    (starting one costs seconds); the test is skipped, saying why, where it is not installed."""
    from igtflow.launch.bench.browser import find_chromium, launch_chromium

    path = find_chromium()
    if path is None:
        pytest.skip("Debian's chromium is not installed (make system-deps installs it)")
    with launch_chromium(path) as browser:
        yield browser


@pytest.fixture
def keep_signal_handlers() -> Iterator[None]:
    """pyigtl's server installs SIGINT/SIGTERM handlers; put ours back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
