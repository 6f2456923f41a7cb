"""Finds node classes by the names graphs use: registered short names or ``package.module:Class``.

A node type is registered by an entry point in the ``igtflow.nodes`` group, its name the short
``uses:`` name and its value the class::

    [project.entry-points."igtflow.nodes"]
    segment = "mypackage.segment:Segment"

igtflow's own layers declare theirs the same way in its ``pyproject.toml``, so a third-party
package adds node types with no edit to igtflow. The entry points are read once from installed
metadata (reinstall a package after editing its entry points: ``make install``); no node module is
imported until a graph uses it, so a graph of light nodes never pays for torch or open3d.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from igtflow.stream.node import Node, load_class

ENTRY_POINT_GROUP = "igtflow.nodes"


class UnknownNodeType(LookupError):
    """``uses:`` names no registered node type and no importable class."""


class NodeRegistryError(RuntimeError):
    """The installed packages register node types that cannot all be used: a short name claimed
    by two distributions, or an entry point that is not ``module:Class``."""


@dataclass(frozen=True)
class NodeType:
    """A registered node type: its short name, ``module:Class`` path and the distribution that
    registers it."""

    name: str
    path: str
    distribution: str


@cache
def node_types() -> dict[str, NodeType]:
    """Every registered node type by short name, sorted by name, from all installed packages."""
    found: dict[str, NodeType] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        distribution = point.dist.name if point.dist is not None else "an unnamed distribution"
        module, colon, attribute = point.value.partition(":")
        if not (module.strip() and colon and attribute.strip()) or point.extras:
            raise NodeRegistryError(
                f"entry point {point.name!r} of {distribution} in group {ENTRY_POINT_GROUP!r} is "
                f"{point.value!r}, not 'module:Class'; fix it in {distribution}'s package "
                "metadata and reinstall it"
            )
        node_type = NodeType(point.name, point.value.strip(), distribution)
        earlier = found.get(point.name)
        if earlier is not None and earlier != node_type:
            raise NodeRegistryError(
                f"node type {point.name!r} is registered by both {earlier.distribution} "
                f"({earlier.path}) and {distribution} ({node_type.path}); uninstall one of "
                "them, or rename the entry point in the one you maintain"
            )
        found[point.name] = node_type
    return dict(sorted(found.items()))


def import_path(uses: str) -> str:
    """The ``module:Class`` path a ``uses:`` value refers to."""
    if ":" in uses:
        return uses
    try:
        return node_types()[uses].path
    except KeyError:
        raise UnknownNodeType(uses) from None


@cache
def load_node_class(uses: str) -> type[Node]:
    """Import and return the node class named by ``uses`` (short name or ``module:Class``)."""
    path = import_path(uses)
    registered = node_types().get(uses)
    origin = f"registered by {registered.distribution} as {path}; " if registered else ""
    try:
        return load_class(path)
    except ImportError as exc:
        module = path.partition(":")[0]
        raise UnknownNodeType(f"{uses} ({origin}cannot import {module}: {exc})") from exc
    except LookupError as exc:
        raise UnknownNodeType(f"{uses} ({origin}{exc})") from exc
