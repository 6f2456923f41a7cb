"""Node types are registered through the ``igtflow.nodes`` entry-point group: igtflow's own and a
third-party package's the same way, so a new node type is one file and one entry-point line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent
from types import SimpleNamespace

import pytest

from igtflow.launch import registry
from igtflow.launch.graph_issues import GraphError
from igtflow.launch.graph_reader import parse_graph

IGTFLOW = Path(sys.executable).parent / "igtflow"

PLUGIN_PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "igtflow-mask-example"
version = "1.0"

[tool.setuptools]
py-modules = ["mask_node"]

[project.entry-points."igtflow.nodes"]
mask = "mask_node:Mask"
"""

PLUGIN_MODULE = '''\
"""A node type from outside igtflow: thresholds each image into a mask."""

from igtflow.stream.messages import Image
from igtflow.stream.node import Node


class Mask(Node):
    """Marks the pixels above a level."""

    inputs = {"image": Image}
    outputs = {"mask": Image}

    def setup(self, level: int = 128) -> None:
        """
        level: pixels above it are 1, the others 0
        """

    def on_image(self, image: Image) -> None:
        self.emit("mask", image.with_data((image.data > self.level).astype("uint8")))
'''

PLUGIN_GRAPH = """\
name: plugin
nodes:
  - id: probe
    uses: synthetic-image
    params: {rate_hz: 30, width: 64, height: 64}
  - id: mask
    uses: mask
    inputs: {image: probe/image}
    params: {level: 100}
  - id: stats
    uses: stats
    inputs: {mask: mask/mask}
"""


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a process that sees a third-party package installed from source."""
    source = tmp_path_factory.mktemp("plugin-source")
    (source / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (source / "mask_node.py").write_text(PLUGIN_MODULE)
    site = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps"),
            *("--no-build-isolation", "--target", str(site), str(source)),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        timeout=120,
    )
    assert not (site / "igtflow").exists(), "the plugin must install beside igtflow, not over it"
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ["PYTHONPATH"]])}


def test_a_node_type_of_an_installed_package_is_listed_by_igtflow_nodes(
    plugin_env: dict[str, str], tmp_path: Path
) -> None:
    listed = subprocess.run(
        [str(IGTFLOW), "nodes", "--json"],
        cwd=tmp_path,
        env=plugin_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    catalogue = {entry["name"]: entry for entry in json.loads(listed.stdout)}
    assert {"synthetic-image", "stats", "igtl-server"} <= catalogue.keys()
    mask = catalogue["mask"]
    assert (mask["class"], mask["summary"]) == ("mask_node:Mask", "Marks the pixels above a level.")
    assert mask["inputs"] == {"image": "Image"} and mask["outputs"]["mask"] == "Image"
    assert [(p["name"], p["type"], p["default"]) for p in mask["params"]] == [("level", "int", 128)]


def test_a_node_type_of_an_installed_package_runs_in_a_graph(
    plugin_env: dict[str, str], tmp_path: Path
) -> None:
    graph = tmp_path / "plugin.yaml"
    graph.write_text(PLUGIN_GRAPH)
    done = subprocess.run(
        [str(IGTFLOW), "run", str(graph), "--duration", "2", "--json"],
        cwd=tmp_path,
        env=plugin_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert (report["exit_code"], done.returncode) == (0, 0), done.stderr[-3000:]
    rows = {row["node"]: row for row in report["nodes"]}
    assert (rows["mask"]["state"], rows["mask"]["restarts"]) == ("stopped", 0)
    assert rows["mask"]["received"] > 10 and rows["mask"]["sent"] > 10
    assert rows["stats"]["received"] > 10, "what the plugin node emits reaches the next node"


def test_without_the_package_its_node_type_is_unknown(tmp_path: Path) -> None:
    graph = tmp_path / "plugin.yaml"
    graph.write_text(PLUGIN_GRAPH)
    with pytest.raises(GraphError) as caught:
        parse_graph(graph.read_text(), str(graph))
    assert "uses unknown node type 'mask'" in str(caught.value)


# -- conflicts and broken entry points, with the installed metadata replaced ------------------


def entry_point(name: str, value: str, distribution: str) -> SimpleNamespace:
    return SimpleNamespace(
        name=name, value=value, extras=[], dist=SimpleNamespace(name=distribution)
    )


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[SimpleNamespace]]:
    """The entry points the registry reads instead of the installed ones: append to it."""
    points: list[SimpleNamespace] = []
    monkeypatch.setattr(registry, "entry_points", lambda group: list(points))
    registry.node_types.cache_clear()
    registry.load_node_class.cache_clear()
    yield points
    registry.node_types.cache_clear()
    registry.load_node_class.cache_clear()


def test_two_distributions_claiming_one_name_is_an_error_naming_both(
    installed: list[SimpleNamespace],
) -> None:
    installed.append(
        entry_point("passthrough", "igtflow.stream.nodes.passthrough:PassThrough", "igtflow")
    )
    installed.append(entry_point("passthrough", "their_nodes:Relay", "their-nodes"))
    with pytest.raises(registry.NodeRegistryError) as caught:
        registry.node_types()
    message = str(caught.value)
    assert "'passthrough' is registered by both igtflow" in message
    assert "their-nodes (their_nodes:Relay)" in message and "uninstall one" in message


def test_a_conflict_stops_validation_instead_of_blaming_the_graph(
    installed: list[SimpleNamespace],
) -> None:
    installed.append(entry_point("relay", "a_nodes:Relay", "a-nodes"))
    installed.append(entry_point("relay", "b_nodes:Relay", "b-nodes"))
    text = "name: g\nnodes:\n  - id: r\n    uses: relay\n"
    with pytest.raises(registry.NodeRegistryError, match=r"a-nodes .* b-nodes"):
        parse_graph(text, "graph.yaml")


def test_an_entry_point_that_is_not_module_colon_class_names_its_distribution(
    installed: list[SimpleNamespace],
) -> None:
    installed.append(entry_point("relay", "their_nodes.Relay", "their-nodes"))
    with pytest.raises(registry.NodeRegistryError) as caught:
        registry.node_types()
    assert "entry point 'relay' of their-nodes" in str(caught.value)
    assert "not 'module:Class'" in str(caught.value)


def test_a_registered_node_type_that_fails_to_import_says_who_registered_it(
    installed: list[SimpleNamespace],
) -> None:
    installed.append(entry_point("relay", "their_nodes_gone:Relay", "their-nodes"))
    text = "name: g\nnodes:\n  - id: r\n    uses: relay\n"
    with pytest.raises(GraphError) as caught:
        parse_graph(dedent(text), "graph.yaml")
    (issue,) = caught.value.issues
    assert issue.line == 4
    assert "uses 'relay', which fails (registered by their-nodes as their_nodes_gone:Relay" in (
        issue.message
    )
    assert "cannot import their_nodes_gone" in issue.message
