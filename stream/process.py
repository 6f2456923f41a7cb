"""Entry point of a node process: ``python -m igtflow.stream.process CONFIG.json``.

Ties the process's life to its
supervisor, logs with the node id to the terminal and the run's log folder, then runs the node.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the supervisor dies, even by kill -9."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # the parent was already gone before prctl took effect
        sys.exit(3)


def setup_logging(node_id: str, log_dir: str | None) -> logging.Logger:
    fmt = logging.Formatter(f"%(asctime)s {node_id} %(levelname)s %(message)s", "%H:%M:%S")
    log = logging.getLogger(f"igtflow.node.{node_id}")
    log.setLevel(logging.INFO)
    log.propagate = False
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(fmt)
    log.addHandler(stderr)
    if log_dir:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(Path(log_dir) / f"{node_id}.log")
        file_handler.setFormatter(fmt)
        log.addHandler(file_handler)
    return log


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m igtflow.stream.process CONFIG.json", file=sys.stderr)
        return 2
    data = json.loads(Path(args[0]).read_text())
    die_with_parent()
    log_dir = data.pop("log_dir", None)
    from igtflow.stream.runtime import NodeConfig, NodeRuntime

    config = NodeConfig.from_dict(data)
    log = setup_logging(config.node_id, log_dir)
    runtime = NodeRuntime(config, log)
    # The supervisor stops nodes over the control channel; a signal means the same thing.
    signal.signal(signal.SIGTERM, runtime.request_stop)
    signal.signal(signal.SIGINT, runtime.request_stop)
    code = runtime.run()
    logging.shutdown()
    flush_zmq(FLUSH_S)
    # Leave now: interpreter teardown could wait on a ZeroMQ context a dead supervisor left busy.
    os._exit(code)


FLUSH_S = 0.5


def flush_zmq(timeout_s: float) -> None:
    """Give ZeroMQ's I/O thread up to ``timeout_s`` to deliver what closed sockets still hold
    (the last FAILED or BYE to the supervisor): ``os._exit`` would drop it on the floor. The
    context is terminated in a thread of its own, so a socket left open cannot hang the exit.
    """
    import threading

    import zmq

    context = zmq.Context.instance()
    closing = threading.Thread(target=context.term, name="zmq-flush", daemon=True)
    closing.start()
    closing.join(timeout_s)


if __name__ == "__main__":
    sys.exit(main())
