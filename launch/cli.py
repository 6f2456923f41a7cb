"""The ``igtflow`` command: global options, and which subcommand lives where.

Each subcommand is a function in ``igtflow.launch.commands.<subject>``; this file only registers
them, in the order ``igtflow --help`` lists them, and turns an unexpected failure into one line.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from igtflow import __version__
from igtflow.launch.commands import graphs, models, recordings, report, runs, security
from igtflow.launch.commands.bench import bench_app
from igtflow.launch.commands.phantom import phantom_app
from igtflow.launch.commands.terminal import out, print_error

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
    # Markdown: docstring paragraphs reflow to the terminal's width (rich mode kept their
    # hard line breaks) and `code` shows as code
    rich_markup_mode="markdown",
)
for command in (
    graphs.validate,
    runs.run,
    runs.replay,
    recordings.inspect,
    recordings.recover,
    report.report,
    graphs.nodes,
    runs.demo,
    recordings.convert,
    models.train,
    security.keygen,
):
    app.command()(command)
app.add_typer(bench_app, name="bench")
app.add_typer(models.eval_app, name="eval")
app.add_typer(phantom_app, name="phantom")


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


def main() -> None:
    """The ``igtflow`` command: a failure nobody turned into a message still ends in one line."""
    from igtflow.launch.cli_errors import debugging, error_line

    try:
        app()
    except Exception as exc:
        if debugging():
            raise
        print_error(error_line(exc))
        sys.exit(1)
