"""What one ``register-us`` frame costs, with the global search spread over frames or whole.

Segments ``--frames`` frames of the phantom's probe sweep (held-out seed 1001, the shipped
``us-seg`` network, as us-guidance.yaml does), then feeds the label maps to ``register-us`` in
process, once per ``--search-fits`` value given, and prints the handler's CPU time per frame
(p50/p99/max: CPU, not wall time, so a busy machine does not blur it) and how many estimates were
valid, as JSON. A search of about 60 fits in one frame is what ``--search-fits 1000`` runs:

    OMP_NUM_THREADS=1 python tools/measure_register_us_cost.py --search-fits 4 --search-fits 1000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from igtflow.perception.nodes.segment import Segment
from igtflow.registration.nodes.register_us import RegisterUs
from igtflow.stream.messages import Image, Transform
from igtflow.stream.nodes.phantom_us import PhantomUS
from igtflow.stream.testing import NodeHarness

# us-guidance.yaml's register-us params (the fit limits loosened for a network's contours)
GRAPH_PARAMS = {
    "case": "phantom:1001",
    "max_offset_mm": 15.0,
    "min_inlier_fraction": 0.75,
    "max_median_mm": 1.0,
    "max_p90_mm": 2.0,
}


def segmented_sweep(frames: int) -> list[Image]:
    """The network's label maps of the first ``frames`` frames of the us-guidance probe."""
    probe_params = {"rate_hz": 30, "seed": 1001, "path": "sweep"}
    seg_params = {"model": "us-seg", "confidence_dtype": "uint8"}
    with (
        NodeHarness(PhantomUS, probe_params, node_id="probe") as probe,
        NodeHarness(Segment, seg_params, node_id="seg") as seg,
    ):
        for _ in range(frames):
            probe.tick()
        for image in probe.emitted["image"][:frames]:
            seg.feed("image", image)
        return list(seg.emitted["labels"])


def cost(labels: list[Image], search_fits: int) -> dict[str, float]:
    """The handler's CPU ms per frame and the valid estimates with ``search_fits``."""
    params = {**GRAPH_PARAMS, "search_fits": search_fits}
    with NodeHarness(RegisterUs, params, node_id="reg") as node:
        spent = []
        for image in labels:
            start = time.thread_time()
            node.feed("labels", image)
            spent.append((time.thread_time() - start) * 1e3)
        sent = [t for t in node.emitted["transform"] if isinstance(t, Transform)]
    p50, p99, top = np.percentile(spent, [50, 99, 100])
    return {
        "search_fits": search_fits,
        "cpu_ms_p50": round(float(p50), 1),
        "cpu_ms_p99": round(float(p99), 1),
        "cpu_ms_max": round(float(top), 1),
        "valid": sum(t.valid for t in sent),
        "estimates": len(sent),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames of the sweep")
    parser.add_argument(
        "--search-fits", type=int, action="append", help="fits per frame (repeatable; 4, 1000)"
    )
    args = parser.parse_args()
    labels = segmented_sweep(args.frames)
    rows = [cost(labels, fits) for fits in args.search_fits or [4, 1000]]
    print(json.dumps({"frames": len(labels), "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
