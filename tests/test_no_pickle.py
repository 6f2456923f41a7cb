"""Nothing a peer or a file sends can run code: no pickle anywhere in the product, and every
listening node binds to this machine only unless the graph says otherwise."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from igtflow.launch import registry
from igtflow.launch.graph_security import is_loopback
from igtflow.stream.param_values import declared_params

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("igtflow", "stream", "perception", "registration", "render", "launch", "tools")
# Modules that turn bytes into objects by running code (or that exist to do so).
UNPICKLERS = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "shelve", "marshal", "joblib"}
PYOBJ_CALLS = {"recv_pyobj", "send_pyobj", "recv_serialized", "send_serialized"}
ADDRESS_PARAMS = {"host", "bind", "address", "listen"}


def product_sources() -> list[Path]:
    return sorted(p for folder in PRODUCT for p in (ROOT / folder).rglob("*.py"))


def pickle_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    for node in ast.walk(tree):
        where = f"{shown}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if a.name in UNPICKLERS]
        elif isinstance(node, ast.ImportFrom) and (node.module or "") in UNPICKLERS:
            found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            keywords = {k.arg: k.value for k in node.keywords}
            if name in PYOBJ_CALLS:
                found.append(f"{where}: {name} (pickles by default)")
            allow = keywords.get("allow_pickle")
            if isinstance(allow, ast.Constant) and allow.value is True:
                found.append(f"{where}: allow_pickle=True")
            owner = node.func.value if isinstance(node.func, ast.Attribute) else None
            if name == "load" and isinstance(owner, ast.Name) and owner.id == "torch":
                only = keywords.get("weights_only")
                if not (isinstance(only, ast.Constant) and only.value is True):
                    found.append(f"{where}: torch.load without weights_only=True")
    return found


def test_no_module_of_the_product_unpickles() -> None:
    sources = product_sources()
    assert len(sources) > 100, "the scan found the product's sources"
    found = [use for path in sources for use in pickle_uses(path)]
    assert found == [], "pickle runs code from bytes; use the wire format:\n" + "\n".join(found)


def test_the_scan_sees_each_way_of_unpickling(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import pickle\nfrom dill import loads\nimport numpy as np, torch\n"
        "np.load('x', allow_pickle=True)\ntorch.load('w')\nsock.recv_pyobj()\n"
    )
    assert len(pickle_uses(sample)) == 5


@pytest.mark.parametrize("uses", sorted(registry.node_types()))
def test_every_node_address_defaults_to_loopback(uses: str) -> None:
    params = declared_params(registry.load_node_class(uses))
    for name, param in params.items():
        if name in ADDRESS_PARAMS and isinstance(param.default, str):
            host = (
                param.default.rsplit(":", 1)[0] if param.default.count(":") == 1 else param.default
            )
            assert is_loopback(host), f"{uses}.{name} defaults to {param.default}"
