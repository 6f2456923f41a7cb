"""The sample recordings in ``recordings/``: phantom cases rendered offline, bit for bit repeatable.

Each sample is what the phantom's source node emits, frame by frame, stamped at its nominal
frame time (no wall clock), so regenerating a sample gives the same messages. To keep each file
under 5 MB, the truth flow is stored in steps of 1/64 pixel: the low mantissa bits of a float
field are noise to a compressor, and 1/64 px is far below any tracking error worth measuring.

    python -m igtflow.launch.samples recordings/
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from igtflow.launch.offline import RecordingEmitter, offline_node
from igtflow.stream.atomic_file import atomic_output
from igtflow.stream.messages import Image, Message
from igtflow.stream.recording import RecordingWriter

START_NS = 1_800_000_000_000_000_000  # 2027-01-15: a fixed, obviously synthetic capture time
FLOW_STEP_PX = 1 / 64
SEED = 1001  # held out: perception trains on seeds below 1000


@dataclass(frozen=True)
class Sample:
    file: str
    uses: str
    node_id: str
    rate_hz: float
    frames: int
    params: dict[str, Any] = field(default_factory=dict)

    def graph_yaml(self) -> str:
        params = ", ".join(f"{k}: {v}" for k, v in {**self.params, "rate_hz": self.rate_hz}.items())
        return (
            f"name: {Path(self.file).stem}\nnodes:\n  - id: {self.node_id}\n"
            f"    uses: {self.uses}\n    params: {{{params}}}\n"
        )


SAMPLES = (
    Sample("phantom-us.mcap", "phantom-us", "probe", 10.0, 36, {"seed": SEED, "path": "static"}),
    Sample(
        "phantom-fluoro.mcap",
        "phantom-fluoro",
        "carm",
        10.0,
        48,
        {"seed": SEED, "width": 256, "height": 256, "pixel_spacing_mm": 1.2},
    ),
)


class _QuantisedFlow(RecordingEmitter):
    def emit(self, output: str, message: Message) -> None:
        if output == "truth_flow" and isinstance(message, Image):
            steps = np.round(message.data / FLOW_STEP_PX) * FLOW_STEP_PX
            message = message.restamped(data=steps.astype(np.float32))
        super().emit(output, message)


def write_sample(sample: Sample, directory: Path) -> Path:
    """Render ``sample`` into ``directory``; returns the file written."""
    path = directory / sample.file
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"sample": sample.file, "flow_step_px": FLOW_STEP_PX, "seed": sample.params["seed"]}
    # Regenerating replaces the sample, but a failed run must not leave it half written.
    with (
        atomic_output(path, force=True) as partial,
        RecordingWriter(partial, sample.graph_yaml(), metadata) as writer,
    ):
        emitter = _QuantisedFlow(writer, sample.node_id)
        params = {**sample.params, "rate_hz": sample.rate_hz}
        node = offline_node(sample.uses, sample.node_id, params, emitter)
        period_ns = round(1e9 / sample.rate_hz)
        for index in range(sample.frames):
            emitter.stamp_ns = START_NS + index * period_ns
            node.tick()
    return path


def main(argv: list[str]) -> int:
    directory = Path(argv[1] if len(argv) > 1 else "recordings")
    for sample in SAMPLES:
        path = write_sample(sample, directory)
        print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
