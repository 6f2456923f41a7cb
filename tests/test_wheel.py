"""The real wheel installs and works on its own, not only the editable checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import Distribution
from pathlib import Path

from igtflow.launch.registry import ENTRY_POINT_GROUP, node_types

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("igtflow", "stream", "perception", "registration", "render", "launch")


def test_wheel_installs_and_its_igtflow_help_runs(tmp_path: Path) -> None:
    # Built from a copy: an in-tree build leaves build/ and igtflow.egg-info in the checkout, and
    # an egg-info in the working folder would shadow the installed metadata (its entry points).
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for layer in LAYERS:
        shutil.copytree(REPO / layer, source / layer, ignore=shutil.ignore_patterns("__pycache__"))
    # Shipped model weights and cards travel in the wheel; a stand-in set proves the rule.
    shipped = source / "perception" / "weights"
    shipped.mkdir(exist_ok=True)
    stand_ins = ("wheel-probe.pt", "wheel-probe.card.yaml")
    for name in stand_ins:
        (shipped / name).write_bytes(b"stand-in")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("igtflow-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        cwd=tmp_path,
    )
    # Run outside the checkout so only the wheel's files can be imported.
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import igtflow.stream, igtflow.launch.cli, igtflow.render, igtflow.perception, "
            "igtflow.registration; print(igtflow.stream.__file__)",
        ],
        check=True,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip().startswith(str(site)), probe.stdout
    assert (site / "igtflow" / "launch" / "graphs" / "us-guidance.yaml").is_file()
    page = site / "igtflow" / "render" / "web_page"  # the web view's page, served from the wheel
    assert (page / "index.html").is_file() and (page / "view.js").is_file()
    weights = site / "igtflow" / "perception" / "weights"
    assert {p.name for p in shipped.iterdir()} <= {p.name for p in weights.iterdir()}
    # Every package in a layer folder is in the wheel, found without being listed anywhere.
    missing = []
    for layer in LAYERS:
        installed = site / "igtflow" if layer == "igtflow" else site / "igtflow" / layer
        for init in (REPO / layer).rglob("__init__.py"):
            if not (installed / init.relative_to(REPO / layer)).is_file():
                missing.append(str(init.parent.relative_to(REPO)))
    assert missing == []
    # The wheel registers the node types the checkout does.
    (dist_info,) = site.glob("igtflow-*.dist-info")
    registered = Distribution.at(dist_info).entry_points.select(group=ENTRY_POINT_GROUP)
    assert {(p.name, p.value) for p in registered} == {
        (name, node_type.path) for name, node_type in node_types().items()
    }
    helped = subprocess.run(
        [sys.executable, str(site / "bin" / "igtflow"), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0, helped.stderr
    for command in ("run", "validate", "nodes", "bench"):
        assert command in helped.stdout
