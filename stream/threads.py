"""Each node's thread budget, so a graph on 2 cores does not oversubscribe them."""

from __future__ import annotations

import os
import sys

THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def thread_budget_env(threads: int) -> dict[str, str]:
    """Environment that caps BLAS/OpenMP pools; must be set before numpy or torch load."""
    return {name: str(threads) for name in THREAD_ENV}


def apply_thread_budget(threads: int) -> None:
    """Cap the pools of libraries the node has imported by now (OpenCV, torch)."""
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(threads)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


BACKGROUND_NICE = 10  # how much lower a background node runs than the rest of its graph


def apply_priority(priority: str) -> None:
    """Lower this process's OS priority by ``BACKGROUND_NICE`` for a ``background`` node
    (relative: a graph started under ``nice`` keeps its background nodes below its live path)."""
    if priority == "background":
        os.nice(BACKGROUND_NICE)  # only ever lowers it, which needs no privilege


def thread_budget(default: int = 1) -> int:
    """This process's budget as the supervisor set it (``threads:`` of the node), for pools a
    node makes itself (ONNX Runtime sessions); ``default`` outside a graph."""
    try:
        return max(1, int(os.environ.get(THREAD_ENV[0], default)))
    except ValueError:
        return default
