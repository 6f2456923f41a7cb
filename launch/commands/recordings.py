"""``igtflow inspect``, ``recover`` and ``convert``: look into, rescue and convert recordings.

Exit codes say what a script needs to know without reading the text: 0 the file is whole, 3 it
is damaged (and the report says how), 2 nothing could be done with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from igtflow.launch.commands.options import ForceOpt, JsonOpt, RecordingArg
from igtflow.launch.commands.terminal import err, out, print_error
from igtflow.report import print_json

DAMAGED = 3  # exit code of inspect and recover: the recording is damaged, and the report says how


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
        print_error(exc)
        raise typer.Exit(2) from None
    if json_:
        print_json(summary)
    else:
        print_summary(summary, out)
    if summary["problems"]:
        raise typer.Exit(DAMAGED)


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
        print_error(f"{fixed}: write the recovered file somewhere else; the original is kept")
        raise typer.Exit(2)
    try:
        report = recover_file(broken, fixed, force)
    except (RecordingError, OutputError) as exc:
        print_error(exc)
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


def convert(
    source: Annotated[Path, typer.Argument(help="file to convert", show_default=False)],
    target: Annotated[Path, typer.Argument(help="file to write", show_default=False)],
    node_id: Annotated[
        str, typer.Option(help="into MCAP: the node id the topics are named after")
    ] = "probe",
    topic: Annotated[
        str | None, typer.Option(help="out of MCAP: the image topic to export (default: first)")
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(help="`foxglove`: the recording in Foxglove's schemas, opens with no plug-in"),
    ] = None,
    force: ForceOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Convert between frame files and recordings.

    PLUS sequences (.seq.mha, .mha, .mhd, .seq.nrrd, .nrrd), DICOM cine and video → MCAP:
    `igtflow convert case.seq.mha case.mcap`. MCAP → PLUS sequence for 3D Slicer's Sequences
    module: `igtflow convert case.mcap case.seq.nrrd` (or .seq.mha), images plus every pose.
    MCAP → Foxglove: `igtflow convert case.mcap case-foxglove.mcap --to foxglove`; exit code 3
    when the recording is damaged (what was readable is converted).
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
                source, target, node_id, topic, force, lambda n: bar.update(task, completed=n), to
            )
    except (ConvertError, RecordingError, SourceFileError, OutputError) as exc:
        print_error(exc)
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
    if to is not None and result.get("problems"):
        raise typer.Exit(DAMAGED)
