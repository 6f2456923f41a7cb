"""``igtflow report``: a recording as one HTML page to read after the procedure.

Exit codes as ``igtflow inspect``'s: 0 the file is whole, 3 it is damaged (the page shows what
could be read, and says so), 2 nothing could be done with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from igtflow.launch.commands.options import ForceOpt, JsonOpt, RecordingArg
from igtflow.launch.commands.recordings import DAMAGED
from igtflow.launch.commands.terminal import err, out, print_error
from igtflow.report import print_json


def report(
    recording: RecordingArg,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="HTML file to write (default: RECORDING.html)"),
    ] = None,
    force: ForceOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Write a procedure report: one HTML page that opens offline, with plots of latency,
    registration error, confidence and target shift, the alarms, key frames, and the graph and
    model versions. A stream the recording lacks is marked "not recorded".

    Exit codes: 0 written; 3 written, but the recording is damaged (the page shows what could
    be read); 2 no report (not a recording, or the output cannot be written).
    """
    from igtflow.launch.procedure_report import build_report
    from igtflow.stream.atomic_file import OutputError, atomic_output, check_target
    from igtflow.stream.recording_scan import RecordingError

    target = output if output is not None else recording.with_suffix(".html")
    if target.resolve() == recording.resolve():
        print_error(f"{target}: that is the recording; write the report somewhere else")
        raise typer.Exit(2)
    try:
        check_target(target, force)  # before reading what may be a long recording
        result = build_report(recording)
        with atomic_output(target, force) as partial:
            partial.write_text(result.html, encoding="utf-8")
    except (RecordingError, OutputError) as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    if json_:
        print_json({"output": str(target), **result.summary})
    else:
        out.print(f"wrote {target}")
    if result.damaged:
        err.print(
            f"{recording} is damaged; the report shows what could be read",
            style="yellow",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(DAMAGED)
