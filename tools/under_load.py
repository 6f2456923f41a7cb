"""Run a command while other processes keep every core busy, as a shared CI machine will.

A suite that passes only on an idle machine hides fixed sleeps and tight deadlines; this is how
we look for them. Each busy process is a plain Python loop at normal priority, one per core.

    python tools/under_load.py [--runs N] -- make test
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="run the command this many times")
    parser.add_argument("command", nargs="+", help="the command to run under load")
    args = parser.parse_args()
    cores = os.cpu_count() or 2
    for run in range(1, args.runs + 1):
        burners = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)
        ]
        started = time.monotonic()
        print(f"under load ({cores} busy processes), run {run} of {args.runs}: {args.command}")
        try:
            code = subprocess.call(args.command)
        finally:
            for burner in burners:
                burner.kill()
                burner.wait()
        took = time.monotonic() - started
        print(f"run {run} of {args.runs}: exit {code} after {took:.0f} s under load")
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
