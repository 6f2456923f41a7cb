"""``igtflow phantom …``: the synthetic phantom's files, for 3D Slicer and for checking by eye."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from igtflow.launch.commands.options import ForceOpt, JsonOpt
from igtflow.launch.commands.terminal import err, out, print_error
from igtflow.report import print_json

phantom_app = typer.Typer(help="The synthetic phantom with ground truth: export its files.")


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
            print_error(exc)
            raise typer.Exit(1) from None
    if json_:
        print_json(written)
    else:
        for what, path in written.items():
            out.print(f"{what}: {path}", highlight=False)
