"""Keep requirements.lock in step with pyproject.toml.

The lock pins every package the project and its tests install, with hashes, so that every machine
runs the set of versions CI passed on. `make lock` writes it with pip-tools and stamps it with a
fingerprint of what pyproject.toml asks for (and of the torch pin, which the Makefile installs
first); `check` refuses a lock whose stamp no longer matches, so an edit to the dependencies
cannot land without a refreshed lock.

    python tools/lock.py stamp requirements.lock torch==2.13.0
    python tools/lock.py check requirements.lock torch==2.13.0
    python tools/lock.py extras requirements.lock torch==2.13.0   # installed, but not pinned
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: pip vendors the same parser, and pip is always there
    from pip._vendor import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
STAMP_PREFIX = "# pyproject-fingerprint: "
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def fingerprint(pyproject: Path, torch_pin: str) -> str:
    """A hash of every requirement the lock was resolved from, order-insensitive."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    asked = {
        "requires-python": project.get("requires-python", ""),
        "dependencies": sorted(project.get("dependencies", [])),
        "optional": {k: sorted(v) for k, v in project.get("optional-dependencies", {}).items()},
        "torch": torch_pin,
    }
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()[:16]


def pins(lock: Path) -> dict[str, str]:
    """Package name (normalised) to exact version, as the lock pins them."""
    found = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            found[normalise(match.group(1))] = match.group(2)
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def stamped(lock: Path) -> str | None:
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line.startswith(STAMP_PREFIX):
            return line[len(STAMP_PREFIX) :].strip()
    return None


def stamp(lock: Path, torch_pin: str) -> None:
    lines = [
        line
        for line in lock.read_text(encoding="utf-8").splitlines()
        if not line.startswith(STAMP_PREFIX)
    ]
    lines.insert(0, STAMP_PREFIX + fingerprint(REPO / "pyproject.toml", torch_pin))
    lock.write_text("\n".join(lines) + "\n", encoding="utf-8")


def check(lock: Path, torch_pin: str) -> str | None:
    """None when the lock matches pyproject.toml, else what is wrong and how to fix it."""
    if not lock.exists():
        return f"{lock.name} is missing: run `make lock` to write it"
    want = fingerprint(REPO / "pyproject.toml", torch_pin)
    have = stamped(lock)
    if have != want:
        return (
            f"{lock.name} was resolved from other requirements than pyproject.toml and the "
            f"Makefile's {torch_pin} now ask for (fingerprint {have} != {want}): run `make lock` "
            "and commit both files together"
        )
    return None


def installed() -> dict[str, str]:
    """What this interpreter has installed: normalised name to version."""
    from importlib.metadata import distributions

    return {normalise(d.metadata["Name"]): d.version for d in distributions() if d.metadata["Name"]}


def differences(lock: Path, torch_pin: str) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Installed packages the lock does not pin, and pinned ones installed at another version.

    pip itself, torch (pinned by the Makefile) and igtflow are not in the lock.
    """
    want = pins(lock)
    torch_version = torch_pin.split("==", 1)[1]
    have = installed()
    outside = {"pip", "igtflow", "torch"}
    extra = {n: v for n, v in have.items() if n not in want and n not in outside}
    wrong = {n: (v, have.get(n, "missing")) for n, v in want.items() if have.get(n) != v}
    if have.get("torch", "").split("+")[0] != torch_version:
        wrong["torch"] = (torch_version, have.get("torch", "missing"))
    return extra, wrong


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("stamp", "check", "extras"):
        print(__doc__, file=sys.stderr)
        return 2
    command, lock, torch_pin = argv[0], Path(argv[1]), argv[2]
    if command == "stamp":
        stamp(lock, torch_pin)
        return 0
    if command == "extras":
        print(" ".join(sorted(differences(lock, torch_pin)[0])))
        return 0
    problem = check(lock, torch_pin)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
