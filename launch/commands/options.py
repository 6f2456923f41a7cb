"""Options more than one ``igtflow`` command takes, so each reads and helps the same."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

GraphArg = Annotated[Path, typer.Argument(help="graph YAML file", show_default=False)]
RecordingArg = Annotated[Path, typer.Argument(help="MCAP recording", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="override a parameter: NODE.PARAM=VALUE (repeatable)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]
ForceOpt = Annotated[bool, typer.Option("--force", help="replace the file(s) if they exist")]
LogDirOpt = Annotated[
    Path | None, typer.Option(help="folder for per-node logs (default: runs/NAME-TIME)")
]
RecordOpt = Annotated[
    Path | None,
    typer.Option(help="also record every output of every node to this MCAP file"),
]
OutputOpt = Annotated[Path | None, typer.Option(help="also write the JSON report here")]
MarkdownOpt = Annotated[
    Path | None, typer.Option(help="print the table of a saved JSON report as Markdown, no run")
]
