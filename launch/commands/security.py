"""``igtflow keygen``: a CURVE key pair for one host of a graph that spans hosts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from igtflow.launch.commands.options import ForceOpt, JsonOpt
from igtflow.launch.commands.terminal import out, print_error
from igtflow.report import print_json


def keygen(
    name: Annotated[
        str,
        typer.Argument(help="name of the key pair, e.g. the host: 'theatre'", show_default=False),
    ],
    dir_: Annotated[Path, typer.Option("--dir", help="folder to write the two files in")] = Path(
        "keys"
    ),
    force: ForceOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Write a ZeroMQ CURVE key pair: NAME.key (public) and NAME.key_secret (mode 0600).

    Run it once per host. Copy every public `.key` file to every host; keep each `.key_secret`
    on its own host only. Then list the hosts in the graph file, so its tcp edges are encrypted
    and only listed clients get in:

        curve:
          hosts: {10.0.0.1: keys/theatre, 10.0.0.2: keys/gpu-box}
          allow: [keys/theatre.key, keys/gpu-box.key]
    """
    from igtflow.stream.curve import write_keypair

    try:
        pair = write_keypair(dir_, name, overwrite=force)
    except (FileExistsError, OSError) as exc:
        print_error(str(exc))
        raise typer.Exit(2) from None
    if json_:
        print_json({"public": str(pair.public), "secret": str(pair.secret)})
        return
    out.print(f"public key: {pair.public} (copy it to the other hosts)", highlight=False)
    out.print(f"secret key: {pair.secret} (mode 0600; keep it on this host)", highlight=False)
