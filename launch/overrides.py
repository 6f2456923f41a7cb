"""``--set node.param=value``: a parameter given on the command line, typed as YAML would type it.

Kept apart from the graph file's reader because an override has no line in that file: its
mistakes are reported against ``<--set>``, and its raw text is tried when the value as YAML
types it does not fit the parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.error import YAMLError

from igtflow.launch import safe_yaml
from igtflow.launch.safe_yaml import YamlLimitError, plain, quote

OVERRIDES_PATH = "<--set>"  # where an override's mistakes are reported; it has no file or line

Overrides = dict[str, dict[str, "Override"]]  # node id → parameter → override


@dataclass
class Override:
    """One ``--set node.param=value``: the YAML-typed value and the raw text to fall back on."""

    text: str
    value: Any
    raw: str


def parse_overrides(texts: Sequence[str]) -> tuple[Overrides, list[str]]:
    """The overrides by node and parameter, and a message for each text that is not one."""
    parsed: Overrides = {}
    problems: list[str] = []
    for text in texts:
        target, eq, raw = text.partition("=")
        node_id, dot, param = target.strip().partition(".")
        if not eq or not dot or not node_id or not param:
            problems.append(f"--set {quote(text)} is not node.param=value (e.g. seg.device=cpu)")
            continue
        parsed.setdefault(node_id, {})[param.strip()] = Override(text, _scalar(raw), raw)
    return parsed, problems


def _scalar(raw: str) -> Any:
    """A ``--set`` value typed the way YAML would type it (``60`` int, ``true`` bool)."""
    if not raw.strip():
        return raw
    try:
        return plain(safe_yaml.load(raw))
    except (YAMLError, YamlLimitError):
        return raw
