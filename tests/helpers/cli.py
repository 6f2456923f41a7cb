"""``igtflow`` as a user runs it, in a child process, and where the repository is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def igtflow(
    *args: str, timeout: float = 120, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``igtflow ARGS`` as a child process, as a user runs it; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "igtflow", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )
