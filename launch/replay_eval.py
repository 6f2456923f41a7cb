"""``igtflow eval replay``: a recording through a graph's networks in lockstep, scored on its truth.

The recording's sources are replaced by one ``replay`` node (``graph_edit.replay_graph``), a
recorder keeps every output, the graph runs in lockstep (each frame handled by every node before
the next leaves), and the new recording is scored by ``run_summary``. Lockstep makes the scores a
function of the recording, the graph and the models alone: two runs print the same numbers.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console

from igtflow.launch.graph_edit import replay_graph, with_recorder
from igtflow.launch.graph_reader import parse_graph
from igtflow.launch.launcher import run_graph
from igtflow.launch.run_summary import summarize
from igtflow.stream.recording import read_info
from igtflow.stream.recording_scan import RecordingError

SCORES = ("dice", "target_error_mm", "valid_fraction")


def default_graph() -> str:
    return resources.files("igtflow.launch").joinpath("graphs/replay-eval.yaml").read_text()


def replay_eval(
    recording: Path, work_dir: Path, graph_text: str | None = None, where: str = "replay-eval"
) -> dict[str, Any]:
    """Run the replay and score it; ``work_dir`` receives the logs and the scored recording.

    Raises ``RecordingError`` for a recording that cannot be read and ``ValueError`` for a graph
    that does not fit it (``replay_graph`` says why)."""
    info = read_info(recording)
    if not info.topics:
        raise RecordingError(
            recording,
            f"no readable message in it (damaged or empty); `igtflow inspect {recording}` "
            "lists what it holds",
        )
    text, replay_id = replay_graph(
        str(recording), graph_text or default_graph(), sorted(info.topics), (), None, where
    )
    scored = work_dir / "replay-eval.mcap"
    graph = parse_graph(with_recorder(text, str(scored)), f"{where} (replay)")
    result = run_graph(
        graph,
        log_dir=work_dir,
        console=Console(stderr=True, quiet=True),
        live=False,
        lockstep=True,
        until_drained=[replay_id],
    )
    summary = summarize(scored)
    return {
        "recording": str(recording),
        "exit_code": result.exit_code,
        "frames": max(info.message_counts.values(), default=0),
        **{key: summary[key] for key in SCORES},
        "summary": summary,
    }
