"""The allocator setting that keeps a node's freed frames mapped for the next one."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_keep_freed_memory_applies_once_and_the_process_still_allocates() -> None:
    code = (
        "from igtflow.stream.allocator import keep_freed_memory as k\n"
        "import numpy as np\n"
        "assert k() and k()\n"
        "for _ in range(50):\n"
        "    a = np.ones((512, 512), np.float32); assert float(a.sum()) == 512 * 512\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
