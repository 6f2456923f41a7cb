"""Finds node classes by the names graphs use: built-in short names or ``package.module:Class``.

Layers publish a ``NODES`` table of short names to import paths; nothing is imported until a graph
uses it, so a graph of light nodes never pays for torch or open3d.
"""

from __future__ import annotations

from functools import cache

from igtflow.render.nodes import NODES as RENDER_NODES
from igtflow.stream.node import Node, load_class
from igtflow.stream.nodes import NODES as STREAM_NODES

LAYER_TABLES = (STREAM_NODES, RENDER_NODES)


class UnknownNodeType(LookupError):
    """``uses:`` names no registered node type and no importable class."""


def builtin_nodes() -> dict[str, str]:
    """Short name → ``module:Class`` for every node type shipped with igtflow."""
    table: dict[str, str] = {}
    for layer in LAYER_TABLES:
        table.update(layer)
    return dict(sorted(table.items()))


def import_path(uses: str) -> str:
    """The ``module:Class`` path a ``uses:`` value refers to."""
    if ":" in uses:
        return uses
    try:
        return builtin_nodes()[uses]
    except KeyError:
        raise UnknownNodeType(uses) from None


@cache
def load_node_class(uses: str) -> type[Node]:
    """Import and return the node class named by ``uses`` (short name or ``module:Class``)."""
    path = import_path(uses)
    try:
        return load_class(path)
    except ImportError as exc:
        raise UnknownNodeType(f"{uses} (cannot import {path.partition(':')[0]}: {exc})") from exc
    except LookupError as exc:
        raise UnknownNodeType(f"{uses} ({exc})") from exc
