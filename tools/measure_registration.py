"""Run a registration graph on the phantom and score it against the truth.

Runs ``launch/graphs/register_us.yaml`` (segmentation network → register-us; or ``--graph``) for
``--duration`` seconds with a recorder on the registration's (node ``reg``) transform and targets
and the phantom's truth targets (``--truth``), then prints the share of valid transforms and the
TRE of the valid ones as JSON (``igtflow.registration.recorded_tre``):

    OMP_NUM_THREADS=1 python tools/measure_registration.py --duration 20
    OMP_NUM_THREADS=1 python tools/measure_registration.py --duration 20 \
        --graph launch/graphs/register_fluoro.yaml --truth carm/truth_targets
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from igtflow.ports import free_port
from igtflow.registration.recorded_tre import score_recording

GRAPH = Path(__file__).resolve().parents[1] / "launch" / "graphs" / "register_us.yaml"
RECORDER = """
  - id: tre_record
    uses: record
    inputs: {{transform: reg/transform, targets: reg/targets, truth: {truth}}}
    params: {{path: "{path}"}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds to run")
    parser.add_argument("--graph", type=Path, default=GRAPH, help="registration graph YAML")
    parser.add_argument("--truth", default="probe/truth_targets", help="the truth targets topic")
    parser.add_argument("--keep", type=Path, help="folder to keep the recording and logs in")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        recording = folder / "registration.mcap"
        graph = folder / "registration_scored.yaml"
        graph.write_text(args.graph.read_text() + RECORDER.format(truth=args.truth, path=recording))
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "igtflow",
                "run",
                str(graph),
                "--duration",
                str(args.duration),
                "--log-dir",
                str(folder / "logs"),
                "--set",
                f"slicer.port={free_port()}",
                "--set",
                "overlay.show=false",
                "--json",
            ],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            print(run.stderr[-3000:], file=sys.stderr)
            return run.returncode
        score = score_recording(recording, truth=args.truth)
    print(json.dumps({"graph": str(args.graph), "duration_s": args.duration, **score}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
