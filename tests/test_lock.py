"""Every machine installs the versions CI passed on: requirements.lock agrees with pyproject.toml
and is exactly what this environment holds."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"


def _lock_tool():
    spec = importlib.util.spec_from_file_location("lock_tool", REPO / "tools" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torch_pin() -> str:
    match = re.search(r"^TORCH := (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile pins torch in a line `TORCH := torch==X.Y.Z`"
    return match.group(1)


def test_the_lock_was_resolved_from_what_pyproject_asks_for_today() -> None:
    assert _lock_tool().check(LOCK, _torch_pin()) is None


def test_an_edited_dependency_list_no_longer_matches_the_lock(tmp_path: Path) -> None:
    tool = _lock_tool()
    edited = tmp_path / "pyproject.toml"
    text = (REPO / "pyproject.toml").read_text()
    edited.write_text(text.replace('"msgpack>=1.0",', '"msgpack>=1.1",'))
    assert tool.fingerprint(edited, _torch_pin()) != tool.fingerprint(
        REPO / "pyproject.toml", _torch_pin()
    )
    assert tool.fingerprint(REPO / "pyproject.toml", "torch==9.9.9") != tool.stamped(LOCK)


def test_every_requirement_of_pyproject_is_pinned_in_the_lock_within_its_range() -> None:
    tool = _lock_tool()
    pins = tool.pins(LOCK)
    project = tool.tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    asked = project["dependencies"] + [
        r for v in project["optional-dependencies"].values() for r in v
    ]
    torch_version = _torch_pin().split("==")[1]
    for line in asked:
        requirement = Requirement(line)
        name = tool.normalise(requirement.name)
        version = torch_version if name == "torch" else pins.get(name)
        assert version, f"{name} is asked for by pyproject.toml but not pinned in the lock"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"the lock pins {name}=={version}, outside pyproject's {requirement.specifier}"
        )


def test_this_environment_holds_exactly_the_locked_versions() -> None:
    extra, wrong = _lock_tool().differences(LOCK, _torch_pin())
    assert not wrong, f"installed versions differ from the lock (locked, installed): {wrong}"
    assert not extra, f"installed but not in the lock: {extra} (run `make install`)"
