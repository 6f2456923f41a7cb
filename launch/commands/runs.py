"""``igtflow run``, ``replay`` and ``demo``: start a graph's processes and report how they ran.

A replay is a run whose recorded sources are swapped for one ``replay`` node, and the demo is a
run of the packaged demo graph, so all three end in the same status table or ``--json`` report.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from igtflow.launch.commands.options import (
    GraphArg,
    JsonOpt,
    LogDirOpt,
    RecordingArg,
    RecordOpt,
    SetOpt,
)
from igtflow.launch.commands.terminal import err, print_error
from igtflow.report import print_json

DEFAULT_PORT_BASE = 47100  # tcp edges between hosts under `run --host`: 47100, 47101, …

if TYPE_CHECKING:
    from igtflow.launch.graph_issues import GraphError


def run(
    graph: GraphArg,
    set_: SetOpt = None,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: until Ctrl-C)")
    ] = None,
    log_dir: LogDirOpt = None,
    record: RecordOpt = None,
    json_: JsonOpt = False,
    host: Annotated[
        str | None,
        typer.Option(
            help="run only the nodes with this 'host:' (one launcher per host, same graph file)"
        ),
    ] = None,
    port_base: Annotated[
        int,
        typer.Option(
            min=1024,
            max=65000,
            help="with --host: tcp edges take ports from here up, in file order; give every "
            "host the same base",
        ),
    ] = DEFAULT_PORT_BASE,
) -> None:
    """Run a graph: one process per node, live status table, Ctrl-C stops everything.

    In the status table, space pauses and resumes the sources.

    A graph whose nodes name hosts runs as one launcher per host: on each, `igtflow run
    graph.yaml --host ADDRESS` starts the nodes placed there, and the tcp edges between hosts
    (CURVE-encrypted when the graph has `curve:`) find each other on ports counted from
    --port-base.
    """
    from igtflow.launch.graph_edit import with_recorder
    from igtflow.launch.launcher import run_graph

    spec = _load(graph, set_)
    if record is not None:
        spec = _parse(with_recorder(spec.text, str(record)), str(graph), set_)
    if host is not None:
        hosts = sorted({n.host for n in spec.nodes if n.host is not None})
        if host not in hosts:
            named = ", ".join(hosts) or "none; every node runs on this host"
            print_error(f"{graph}: no node has 'host: {host}' (hosts in the graph: {named})")
            raise typer.Exit(2)
    result = run_graph(
        spec,
        log_dir=log_dir,
        duration_s=duration,
        console=err,
        host=host,
        port_base=port_base if host is not None else None,
    )
    _report_run(spec.name, result, duration or 0, json_)


def replay(
    recording: RecordingArg,
    graph: Annotated[
        Path | None,
        typer.Option(
            help="graph to run downstream of the replay (default: the recording's own graph)"
        ),
    ] = None,
    alone: Annotated[
        bool, typer.Option(help="play the recording with no graph downstream")
    ] = False,
    rate: Annotated[float, typer.Option(min=0.1, max=10, help="speed factor, 0.1 to 10")] = 1.0,
    loop: Annotated[bool, typer.Option(help="start again at the end")] = False,
    start: Annotated[float, typer.Option(min=0, help="skip the first seconds")] = 0.0,
    topics: Annotated[
        list[str] | None,
        typer.Option(help="recorded topics to play, globs ('probe/*'); default: the sources'"),
    ] = None,
    lockstep: Annotated[
        bool,
        typer.Option(
            help="offline and deterministic: each message is handled by every node downstream "
            "before the next leaves, as fast as the graph goes"
        ),
    ] = False,
    record: RecordOpt = None,
    set_: SetOpt = None,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: at the end)")
    ] = None,
    log_dir: LogDirOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Play a recording into a graph: the recorded sources are replaced by the recording.

    The graph downstream runs again (new models, new parameters) and sees what it saw live.
    With --lockstep two replays of one recording produce identical outputs.
    """
    from igtflow.launch.cli_errors import error_line
    from igtflow.launch.graph_edit import replay_graph, with_recorder
    from igtflow.launch.launcher import run_graph
    from igtflow.launch.safe_yaml import YamlLimitError, read_text
    from igtflow.stream.recording import read_info
    from igtflow.stream.recording_scan import RecordingError

    try:
        info = read_info(recording)
    except RecordingError as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    try:
        if alone:
            downstream = None
        elif graph is not None:
            downstream = read_text(graph)
        else:
            downstream = info.graph_yaml
    except OSError as exc:
        print_error(error_line(exc))
        raise typer.Exit(2) from None
    except YamlLimitError as exc:
        print_error(f"{graph}: {exc}")
        raise typer.Exit(2) from None
    if not alone and graph is None and info.graph_problem:
        err.print(
            f"[yellow]{recording}: {info.graph_problem}; playing the recording alone "
            "(give --graph to run a graph downstream)[/]",
            highlight=False,
        )
    params: dict[str, Any] = {"rate": rate, "loop": loop, "start_s": start}
    where = str(graph) if graph is not None else f"{recording}: the graph stored in it"
    try:
        text, replay_id = replay_graph(
            str(recording), downstream, sorted(info.topics), topics or [], params, where
        )
    except ValueError as exc:
        print_error(f"{where}: {exc}" if str(exc).startswith("graph YAML") else exc)
        raise typer.Exit(2) from None
    if record is not None:
        text = with_recorder(text, str(record))
    spec = _parse(text, f"{graph or recording} (replay)", set_)
    result = run_graph(
        spec,
        log_dir=log_dir,
        duration_s=duration,
        console=err,
        lockstep=lockstep,
        until_drained=False if loop else [replay_id],
    )
    _report_run(spec.name, result, duration or 0, json_)


def demo(
    duration: Annotated[float, typer.Option(help="seconds to run")] = 20.0,
    fluoro: Annotated[
        bool, typer.Option(help="the fluoroscopy graph (fluoro-guidance) instead of ultrasound")
    ] = False,
    record: Annotated[
        bool, typer.Option(help="record every message (--no-record: nothing written but pictures)")
    ] = True,
    port: Annotated[int, typer.Option(help="OpenIGTLink port for 3D Slicer")] = 18944,
    log_dir: LogDirOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run a guidance graph on the phantom end to end, no hardware: us-guidance (tracked
    ultrasound → segmentation → tracking → overlay, 3D scene, OpenIGTLink server for 3D Slicer,
    recorder) or, with --fluoro, fluoro-guidance. The run folder gets the overlay video,
    snapshots, the recording and summary.json: latency, drops, Dice and target error against the
    phantom's truth.
    """
    import json
    import time

    from igtflow.launch.graph_edit import without_nodes
    from igtflow.launch.launcher import run_graph
    from igtflow.launch.run_summary import summarize

    name = "fluoro-guidance" if fluoro else "us-guidance"
    log_dir = log_dir or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    text = resources.files("igtflow.launch").joinpath(f"graphs/{name}.yaml").read_text()
    recording = log_dir / f"{name}.mcap"
    overrides = [
        f"overlay.video={log_dir / 'overlay.mp4'}",
        f"overlay.snapshot_dir={log_dir / 'overlay'}",
        "overlay.snapshot_every_s=2",
        f"slicer.port={port}",
    ]
    if not fluoro:
        overrides += [f"scene.snapshot_dir={log_dir / 'scene'}", "scene.snapshot_every_s=2"]
    if record:
        overrides.append(f"rec.path={recording}")
    else:
        text = without_nodes(text, ["record"])
    spec = _parse(text, f"graphs/{name}.yaml", overrides)
    err.print(
        f"demo: {name} on the phantom for {duration:.0f} s; 3D Slicer can connect to "
        f"127.0.0.1:{port} (OpenIGTLinkIF, client) while it runs"
    )
    result = run_graph(spec, log_dir=log_dir, duration_s=duration, console=err)
    written = {
        "recording": str(recording) if record else None,
        "overlay_video": str(log_dir / "overlay.mp4"),
        "overlay_snapshots": sorted(str(p) for p in (log_dir / "overlay").glob("*.png")),
        "scene_snapshots": sorted(str(p) for p in (log_dir / "scene").glob("*.png")),
    }
    summary = summarize(recording) if record and recording.is_file() else None
    if summary is not None:
        written["summary"] = str(log_dir / "summary.json")
        (log_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if json_:
        print_json(
            {
                "exit_code": result.exit_code,
                "nodes": result.rows,
                "written": written,
                "summary": summary,
            }
        )
        raise typer.Exit(result.exit_code)
    from igtflow.launch.status_table import status_table

    err.print(status_table(spec.name, result.rows, duration))
    if summary is not None:
        _print_summary(summary)
    err.print(f"logs: {result.log_dir}")
    if record:
        err.print(f"recording: {recording}  (try: igtflow inspect {recording})")
    err.print(f"overlay video: {written['overlay_video']}")
    if written["overlay_snapshots"]:
        err.print(
            f"snapshots: {written['overlay_snapshots'][-1]}, {len(written['scene_snapshots'])} 3D"
        )
    raise typer.Exit(result.exit_code)


def _print_summary(summary: dict[str, Any]) -> None:
    """The demo's scores in a few lines: what a person checks before trusting the run."""
    for topic, scores in summary["dice"].items():
        text = ", ".join(f"{name} {value:.2f}" for name, value in scores.items())
        err.print(f"Dice {topic}: {text}", highlight=False)
    for topic, error in summary["target_error_mm"].items():
        err.print(
            f"target error {topic}: median {error['median']:.1f} mm, p95 {error['p95']:.1f} mm",
            highlight=False,
        )
    for topic, fraction in summary["valid_fraction"].items():
        err.print(f"valid {topic}: {100 * fraction:.0f} %", highlight=False)
    worst = max(
        (t for t, v in summary["latency_ms"].items() if v["p99"] is not None),
        key=lambda t: summary["latency_ms"][t]["p99"],
        default=None,
    )
    if worst is not None:
        lat = summary["latency_ms"][worst]
        err.print(
            f"capture → recorded, slowest topic {worst}: p50 {lat['p50']:.0f} ms, "
            f"p99 {lat['p99']:.0f} ms; drops: {sum(summary['drops'].values())}",
            highlight=False,
        )


def _load(path: Path, overrides: list[str] | None) -> Any:
    from igtflow.launch.graph_issues import GraphError
    from igtflow.launch.graph_reader import load_graph

    try:
        return load_graph(path, overrides or [])
    except GraphError as exc:
        _print_issues(exc)
        raise typer.Exit(2) from None


def _parse(text: str, path: str, overrides: list[str] | None) -> Any:
    from igtflow.launch.graph_issues import GraphError
    from igtflow.launch.graph_reader import parse_graph

    try:
        return parse_graph(text, path, overrides or [])
    except GraphError as exc:
        _print_issues(exc)
        raise typer.Exit(2) from None


def _print_issues(exc: GraphError) -> None:
    for issue in exc.issues:
        err.print(str(issue), style="red", highlight=False, markup=False, soft_wrap=True)
    err.print(f"{len(exc.issues)} problem(s); nothing was started.")


def _report_run(name: str, result: Any, elapsed_s: float, json_: bool) -> None:
    from igtflow.launch.status_table import run_files, status_table, summary_lines

    if json_:
        print_json(
            {
                "exit_code": result.exit_code,
                "nodes": result.rows,
                "files": run_files(result.rows),
                "events": result.events,
            }
        )
    else:
        err.print(status_table(name, result.rows, elapsed_s))
        for line in summary_lines(result.rows):
            err.print(line, highlight=False, markup=False, soft_wrap=True)
        err.print(f"logs: {result.log_dir}")
    raise typer.Exit(result.exit_code)
