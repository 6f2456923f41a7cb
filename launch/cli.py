"""The ``igtflow`` command: run, validate and inspect graphs, list node types, benchmark."""

from __future__ import annotations

import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from igtflow import __version__
from igtflow.launch.console import console
from igtflow.report import check_output, deliver, print_json, read_json

app = typer.Typer(
    name="igtflow",
    help=(
        "Real-time intraoperative guidance graphs: small processes, linked by unix packet "
        "sockets and shared memory on one host and by ZeroMQ across hosts.\n\n"
        "Write a graph in YAML, check it with `igtflow validate graph.yaml`, run it with "
        "`igtflow run graph.yaml` and watch the live status table. `igtflow nodes` lists "
        "every node type with its parameters."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(
    help="Measure igtflow against its baselines; prints p50/p99/max and ratios."
)
app.add_typer(bench_app, name="bench")

err = console(stderr=True)
out = console()

GraphArg = Annotated[Path, typer.Argument(help="graph YAML file", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="override a parameter: NODE.PARAM=VALUE (repeatable)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]
ForceOpt = Annotated[bool, typer.Option("--force", help="replace the file(s) if they exist")]


def _load(path: Path, overrides: list[str] | None) -> Any:
    from igtflow.launch.graph_issues import GraphError
    from igtflow.launch.graph_reader import load_graph

    try:
        return load_graph(path, overrides or [])
    except GraphError as exc:
        for issue in exc.issues:
            err.print(str(issue), style="red", highlight=False, markup=False, soft_wrap=True)
        err.print(f"{len(exc.issues)} problem(s); nothing was started.")
        raise typer.Exit(2) from None


def _check_output(output: Path | None, force: bool) -> None:
    """Refuse an output file before a long run, not after it."""
    from igtflow.stream.atomic_file import OutputError

    try:
        check_output(output, force)
    except OutputError as exc:
        _error(exc)
        raise typer.Exit(2) from None


def _error(problem: object) -> None:
    """One problem on stderr, unwrapped, so it can be read and searched for whole."""
    text = str(problem)
    text = text if text.startswith("error: ") else f"error: {text}"
    err.print(text, style="red", markup=False, highlight=False, soft_wrap=True)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="print the version and exit")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="show the traceback of an unexpected failure")
    ] = False,
) -> None:
    if debug:
        from igtflow.launch.cli_errors import DEBUG_ENV

        os.environ[DEBUG_ENV] = "1"
    if version:
        out.print(f"igtflow {__version__}")
        raise typer.Exit()


@app.command()
def validate(
    graph: GraphArg,
    set_: SetOpt = None,
    json_: JsonOpt = False,
    import_nodes: Annotated[
        bool,
        typer.Option(
            "--import/--no-import",
            help="import the module of each 'uses: package.module:Class' node to check its "
            "parameters and wiring; --no-import checks everything else and lists those nodes "
            "as not checked",
        ),
    ] = True,
) -> None:
    """Check a graph file without starting anything; problems are printed as file:line: message.

    A node written 'uses: package.module:Class' is checked by importing its module, which runs
    that module's code: validate a graph from someone you do not trust with --no-import.
    """
    from igtflow.launch.graph_issues import GraphError
    from igtflow.launch.graph_reader import load_graph

    try:
        spec = load_graph(graph, set_ or [], import_nodes)
    except GraphError as exc:
        if json_:
            print_json({"ok": False, "issues": [vars(i) for i in exc.issues]})
        else:
            for issue in exc.issues:
                err.print(str(issue), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    queues = [
        {
            "node": n.id,
            "input": i.name,
            "from": i.source,
            "depth": i.depth,
            "budget_mib": i.budget_mib,
        }
        for n in spec.nodes
        for i in n.inputs
        if i.policy == "queue"
    ]
    if json_:
        nodes = [n.id for n in spec.nodes]
        print_json(
            {
                "ok": True,
                "name": spec.name,
                "nodes": nodes,
                "queues": queues,
                "unchecked": spec.unchecked,
            }
        )
        return
    for note in spec.unchecked:
        err.print(note, style="yellow", highlight=False, markup=False, soft_wrap=True)
    partly = f", {len(spec.unchecked)} not checked" if spec.unchecked else ""
    out.print(f"{graph}: ok — graph '{spec.name}', {len(spec.nodes)} nodes{partly}")
    for q in queues:
        # What a queue may keep back: depth messages, and shared memory at its producer.
        out.print(
            f"  queue {q['node']}.{q['input']} ← {q['from']}: depth {q['depth']}, "
            f"budget {q['budget_mib']} MiB",
            highlight=False,
            markup=False,
        )


@app.command()
def run(
    graph: GraphArg,
    set_: SetOpt = None,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: until Ctrl-C)")
    ] = None,
    log_dir: LogDirOpt = None,
    record: RecordOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run a graph: one process per node, live status table, Ctrl-C stops everything.

    In the status table, space pauses and resumes the sources.
    """
    from igtflow.launch.graph_edit import with_recorder
    from igtflow.launch.launcher import run_graph

    spec = _load(graph, set_)
    if record is not None:
        spec = _parse(with_recorder(spec.text, str(record)), str(graph), set_)
    result = run_graph(spec, log_dir=log_dir, duration_s=duration, console=err)
    _report_run(spec.name, result, duration or 0, json_)


LogDirOpt = Annotated[
    Path | None, typer.Option(help="folder for per-node logs (default: runs/NAME-TIME)")
]
RecordOpt = Annotated[
    Path | None,
    typer.Option(help="also record every output of every node to this MCAP file"),
]


def _parse(text: str, path: str, overrides: list[str] | None) -> Any:
    from igtflow.launch.graph_issues import GraphError
    from igtflow.launch.graph_reader import parse_graph

    try:
        return parse_graph(text, path, overrides or [])
    except GraphError as exc:
        for issue in exc.issues:
            err.print(str(issue), style="red", highlight=False, markup=False, soft_wrap=True)
        err.print(f"{len(exc.issues)} problem(s); nothing was started.")
        raise typer.Exit(2) from None


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


DAMAGED = 3  # exit code of inspect and recover: the recording is damaged, and the report says how
RecordingArg = Annotated[Path, typer.Argument(help="MCAP recording", show_default=False)]


@app.command()
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
        _error(exc)
        raise typer.Exit(2) from None
    try:
        if alone:
            downstream = None
        elif graph is not None:
            downstream = read_text(graph)
        else:
            downstream = info.graph_yaml
    except OSError as exc:
        _error(error_line(exc))
        raise typer.Exit(2) from None
    except YamlLimitError as exc:
        _error(f"{graph}: {exc}")
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
        _error(f"{where}: {exc}" if str(exc).startswith("graph YAML") else exc)
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


@app.command()
def inspect(recording: RecordingArg, json_: JsonOpt = False) -> None:
    """Summarise a recording: duration, topics, rates, sizes, gaps, metadata, damage.

    Exit codes: 0 the file is whole; 3 it has problems (listed: cut, not closed, CRC mismatch,
    garbage after the end, damaged summary or attachment, unreadable byte ranges); 2 it cannot
    be read at all.
    """
    from igtflow.launch.inspect_recording import inspect_recording, print_summary
    from igtflow.stream.recording_scan import RecordingError

    try:
        summary = inspect_recording(recording)
    except RecordingError as exc:
        _error(exc)
        raise typer.Exit(2) from None
    if json_:
        print_json(summary)
    else:
        print_summary(summary, out)
    if summary["problems"]:
        raise typer.Exit(DAMAGED)


@app.command()
def recover(
    broken: RecordingArg,
    fixed: Annotated[Path, typer.Argument(help="new MCAP file to write", show_default=False)],
    force: ForceOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Rescue a recording that was not closed (crash, kill -9) or is damaged.

    Every readable message is copied, byte for byte, into a closed and indexed file. Exit codes:
    0 nothing was lost; 3 the new file is written but messages were lost or copied from a chunk
    whose CRC failed (each byte range, count and topic is listed, and kept in the new file's
    metadata); 2 nothing could be recovered.
    """
    from igtflow.stream.atomic_file import OutputError
    from igtflow.stream.recording import recover as recover_file
    from igtflow.stream.recording_scan import RecordingError

    if fixed.resolve() == broken.resolve():
        _error(f"{fixed}: write the recovered file somewhere else; the original is kept")
        raise typer.Exit(2)
    try:
        report = recover_file(broken, fixed, force)
    except (RecordingError, OutputError) as exc:
        _error(exc)
        raise typer.Exit(2) from None
    result = {
        "source": str(broken),
        "target": str(fixed),
        "messages": report.messages,
        "was_closed": report.complete,
        "damaged_chunks": report.bad_chunks,
        "lost_messages": report.lost_messages,
        "unverified_messages": report.unverified,
        "losses": [loss.as_dict() for loss in report.losses],
        "problems": report.problems,
    }
    lossy = report.lost_anything
    if json_:
        print_json(result)
    else:
        for problem in report.problems:
            err.print(problem, style="yellow", markup=False, highlight=False, soft_wrap=True)
        out.print(f"recovered {report.messages} messages into {fixed}")
        if lossy:
            lost = report.lost_messages
            parts = [f"{'an unknown number of' if lost is None else lost} messages lost"]
            parts += [f"{report.unverified} unverified"] if report.unverified else []
            parts += [f"attachment {name!r} lost" for name in report.bad_attachments]
            err.print(f"[red]incomplete: {', '.join(parts)}[/]", highlight=False)
    if lossy:
        raise typer.Exit(DAMAGED)


@app.command()
def nodes(json_: JsonOpt = False) -> None:
    """List every node type with its inputs, outputs and parameters (type, default, doc)."""
    from igtflow.launch.registry import load_node_class, node_types
    from igtflow.stream.node import all_outputs, node_params, node_summary

    catalogue = []
    for name, node_type in node_types().items():
        cls = load_node_class(name)
        catalogue.append(
            {
                "name": name,
                "class": node_type.path,
                "summary": node_summary(cls),
                "inputs": {k: v.KIND for k, v in cls.inputs.items()},
                "outputs": {k: v.KIND for k, v in all_outputs(cls).items()},
                "params": [
                    {
                        "name": p.name,
                        "type": p.type_name,
                        "default": None if p.required else p.default,
                        "required": p.required,
                        "doc": p.doc,
                    }
                    for p in node_params(cls).values()
                ],
            }
        )
    if json_:
        print_json(catalogue)
        return
    for entry in catalogue:
        table = Table(
            title=f"[bold]{entry['name']}[/] — {entry['summary']}",
            title_justify="left",
            caption=(
                f"inputs: {', '.join(f'{k}:{v}' for k, v in entry['inputs'].items()) or '-'}   "
                f"outputs: {', '.join(f'{k}:{v}' for k, v in entry['outputs'].items())}"
            ),
            caption_justify="left",
        )
        for column in ("param", "type", "default", "doc"):
            table.add_column(column)
        for p in entry["params"]:
            default = "(required)" if p["required"] else repr(p["default"])
            table.add_row(p["name"], p["type"], default, p["doc"])
        out.print(table)


@app.command()
def demo(
    duration: Annotated[float, typer.Option(help="seconds to run")] = 10.0,
    port: Annotated[int, typer.Option(help="OpenIGTLink port for 3D Slicer")] = 18944,
    log_dir: LogDirOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run the synthetic case end to end (no hardware): phantom ultrasound, live overlay,
    3D scene, OpenIGTLink server for 3D Slicer, and a recording of it all.
    """
    import time

    from igtflow.launch.graph_edit import with_recorder
    from igtflow.launch.launcher import run_graph

    log_dir = log_dir or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    text = resources.files("igtflow.launch").joinpath("graphs/demo.yaml").read_text()
    recording = log_dir / "demo.mcap"
    overrides = [
        f"overlay.video={log_dir / 'overlay.mp4'}",
        f"overlay.snapshot_dir={log_dir / 'overlay'}",
        f"scene.snapshot_dir={log_dir / 'scene'}",
        f"slicer.port={port}",
    ]
    spec = _parse(with_recorder(text, str(recording)), "graphs/demo.yaml", overrides)
    err.print(
        f"demo: phantom ultrasound for {duration:.0f} s; 3D Slicer can connect to "
        f"127.0.0.1:{port} (OpenIGTLinkIF, client) while it runs"
    )
    result = run_graph(spec, log_dir=log_dir, duration_s=duration, console=err)
    written = {
        "recording": str(recording),
        "overlay_video": str(log_dir / "overlay.mp4"),
        "overlay_snapshots": sorted(str(p) for p in (log_dir / "overlay").glob("*.png")),
        "scene_snapshots": sorted(str(p) for p in (log_dir / "scene").glob("*.png")),
    }
    if json_:
        print_json({"exit_code": result.exit_code, "nodes": result.rows, "written": written})
        raise typer.Exit(result.exit_code)
    from igtflow.launch.status_table import status_table

    err.print(status_table(spec.name, result.rows, duration))
    err.print(f"logs: {result.log_dir}")
    err.print(f"recording: {recording}  (try: igtflow inspect {recording})")
    err.print(f"overlay video: {written['overlay_video']}")
    if written["overlay_snapshots"]:
        err.print(
            f"snapshots: {written['overlay_snapshots'][-1]}, {len(written['scene_snapshots'])} 3D"
        )
    raise typer.Exit(result.exit_code)


@bench_app.command("transport")
def bench_transport(
    duration: Annotated[float, typer.Option(help="seconds per paced case")] = 10.0,
    saturated_s: Annotated[float, typer.Option(help="seconds per saturated case")] = 5.0,
    quick: Annotated[
        bool, typer.Option(help="64 KiB and 2 MiB only, 1 hop, short runs (smoke test)")
    ] = False,
    rehearsal: Annotated[
        bool,
        typer.Option(
            help="let igtflow nodes rehearse their message path before a frame is due "
            "(--no-rehearsal shows what that buys)"
        ),
    ] = True,
    json_: JsonOpt = False,
    output: Annotated[Path | None, typer.Option(help="also write the JSON report here")] = None,
    force: ForceOpt = False,
    markdown: Annotated[
        Path | None, typer.Option(help="print the table of a saved JSON report as Markdown, no run")
    ] = None,
) -> None:
    """igtflow vs raw pyzmq over the same chains: per-hop p50/p99/max latency, msgs/s, ratio."""
    from igtflow.launch.bench.transport import markdown_table, print_table, run_transport_bench

    if markdown is not None:
        sys.stdout.write(markdown_table(read_json(markdown)))
        return

    _check_output(output, force)
    report = run_transport_bench(
        duration_s=duration, saturated_s=saturated_s, quick=quick, progress=err, rehearsal=rehearsal
    )
    deliver(report, json_=json_, printer=print_table, console=out, output=output, force=force)


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="file to convert", show_default=False)],
    target: Annotated[Path, typer.Argument(help="file to write", show_default=False)],
    node_id: Annotated[
        str, typer.Option(help="into MCAP: the node id the topics are named after")
    ] = "probe",
    topic: Annotated[
        str | None, typer.Option(help="out of MCAP: the image topic to export (default: first)")
    ] = None,
    force: ForceOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Convert between frame files and recordings.

    PLUS sequences (.seq.mha, .mha, .mhd, .seq.nrrd, .nrrd), DICOM cine and video → MCAP:
    `igtflow convert case.seq.mha case.mcap`. MCAP → PLUS sequence for 3D Slicer's Sequences
    module: `igtflow convert case.mcap case.seq.nrrd` (or .seq.mha), images plus every pose.
    The target appears only when the conversion succeeds; an existing one needs --force.
    """
    from rich.progress import Progress

    from igtflow.launch.convert_recording import ConvertError
    from igtflow.launch.convert_recording import convert as convert_file
    from igtflow.stream.atomic_file import OutputError
    from igtflow.stream.readers.errors import SourceFileError
    from igtflow.stream.recording_scan import RecordingError

    try:
        # Off when stderr is not a terminal: a log then holds the result and nothing else.
        with Progress(console=err, transient=True, disable=json_ or not err.is_terminal) as bar:
            task = bar.add_task(f"converting {source.name}", total=None)
            result: dict[str, Any] = convert_file(
                source, target, node_id, topic, force, lambda n: bar.update(task, completed=n)
            )
    except (ConvertError, RecordingError, SourceFileError, OutputError) as exc:
        _error(exc)
        raise typer.Exit(2) from None
    result = {"source": str(source), "target": str(target), **result}
    if "warning" in result:
        err.print(f"warning: {result['warning']}", style="yellow", markup=False, soft_wrap=True)
    if json_:
        print_json(result)
    else:
        out.print(
            f"wrote {target}: "
            + json.dumps(
                {k: v for k, v in result.items() if k not in ("source", "target", "warning")}
            )
        )


@bench_app.command("record")
def bench_record(
    duration: Annotated[float, typer.Option(help="seconds per paced case")] = 60.0,
    saturated_s: Annotated[float, typer.Option(help="seconds per saturated case")] = 10.0,
    recording: Annotated[
        Path | None, typer.Option(help="recording for the lockstep replay (default: US sample)")
    ] = None,
    json_: JsonOpt = False,
    output: Annotated[Path | None, typer.Option(help="also write the JSON report here")] = None,
    force: ForceOpt = False,
) -> None:
    """Recorder headroom and loss at 30/60 fps, bytes per frame, lockstep replay speed-up."""
    from igtflow.launch.bench.record import print_report, run_record_bench

    _check_output(output, force)
    report = run_record_bench(duration, saturated_s, recording, progress=err)
    deliver(report, json_=json_, printer=print_report, console=out, output=output, force=force)


@bench_app.command("igtl")
def bench_igtl(
    quick: Annotated[bool, typer.Option(help="0.5 s per case (smoke test)")] = False,
    json_: JsonOpt = False,
    output: Annotated[Path | None, typer.Option(help="also write the JSON report here")] = None,
    force: ForceOpt = False,
) -> None:
    """OpenIGTLink: igtl-server vs pyigtl's server, rate and send→receive p50/p99/max, stalls."""
    from igtflow.render.igtl.bench import print_table, run_igtl_bench

    _check_output(output, force)
    report = run_igtl_bench(quick=quick, progress=err)
    deliver(report, json_=json_, printer=print_table, console=out, output=output, force=force)


phantom_app = typer.Typer(help="The synthetic phantom with ground truth: export its files.")
app.add_typer(phantom_app, name="phantom")


@phantom_app.command("export")
def phantom_export(
    out_dir: Annotated[Path, typer.Argument(help="folder to write into", show_default=False)],
    seed: Annotated[int, typer.Option(help="phantom seed")] = 0,
    force: ForceOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Write the phantom model (NRRD labels, VTK/STL meshes), truth JSON and a contact sheet."""
    from rich.progress import Progress

    from igtflow.stream.atomic_file import OutputError
    from igtflow.stream.phantom.export import ExportError, export_phantom

    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("phantom", total=4)

        def step(what: str) -> None:
            progress.update(task, description=what, advance=1)

        try:
            written = export_phantom(out_dir, seed, step, force)
        except (ExportError, OutputError, OSError, ValueError) as exc:
            _error(exc)
            raise typer.Exit(1) from None
    if json_:
        print_json(written)
    else:
        for what, path in written.items():
            out.print(f"{what}: {path}", highlight=False)


@bench_app.command("phantom")
def bench_phantom(
    duration: Annotated[float, typer.Option(help="seconds per renderer")] = 3.0,
    seed: Annotated[int, typer.Option(help="phantom seed")] = 0,
    truth_seed: Annotated[
        list[int] | None, typer.Option(help="held-out seed for truth consistency (repeatable)")
    ] = None,
    truth_frames: Annotated[int, typer.Option(help="frames per seed for truth consistency")] = 12,
    json_: JsonOpt = False,
) -> None:
    """Phantom frames/s on one core (US 256x256 linear and convex, fluoro 512x512) and truth
    consistency."""
    from rich.progress import Progress

    from igtflow.stream.phantom import bench

    seeds = tuple(truth_seed or bench.TRUTH_SEEDS)
    frames = bench.truth_frames(truth_frames)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("fps, then truth consistency", total=len(seeds) * len(frames))
        report = bench.run_phantom_bench(
            duration, seed, seeds, frames, lambda n, _: bar.update(task, completed=n)
        )
    deliver(report, json_=json_, printer=bench.print_report, console=out)


def main() -> None:
    """The ``igtflow`` command: a failure nobody turned into a message still ends in one line."""
    from igtflow.launch.cli_errors import debugging, error_line

    try:
        app()
    except Exception as exc:
        if debugging():
            raise
        _error(error_line(exc))
        sys.exit(1)
