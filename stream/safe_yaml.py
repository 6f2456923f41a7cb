"""YAML someone else wrote (graphs, model cards), read within bounds: size, nesting, aliases.

A graph file is small, but a hostile or broken one must not hang or exhaust the validator: 424
bytes of nested aliases ("billion laughs") expand to billions of values once copied or quoted, and
deep nesting overflows the parser's recursion. Each limit fails as a :class:`YamlLimitError` that
names the line where it was crossed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from igtflow.stream.param_values import quote

MAX_BYTES = 1 << 20  # 1 MiB: a thousand-node graph is about 100 KiB
MAX_NESTING = 64  # a graph nests four levels deep; the parser recurses per level
MAX_EXPANDED = 200_000  # values once every alias is expanded: a 1 MiB file holds fewer
MAX_NUMBER_CHARS = 1000  # Python refuses to parse an int of more than 4300 digits


class YamlLimitError(ValueError):
    """Input this reader refuses; ``line`` (1-based, 0 when unknown) says where."""

    def __init__(self, line: int, problem: str) -> None:
        self.line = line
        self.problem = problem
        super().__init__(f"line {line}: {problem}")


def read_text(path: str | Path, limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of ``path``, read no further than ``limit`` bytes (``/dev/zero`` ends)."""
    fd = os.open(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise YamlLimitError(
            0, f"the file is larger than {limit // 1024} KiB; a graph file is a few KiB of text"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlLimitError(
            line,
            f"column {column}: byte 0x{data[exc.start]:02x} is not UTF-8 text; "
            "save the file as UTF-8",
        ) from None


class _BoundedComposer(Composer):
    """Refuses nesting past ``MAX_NESTING`` and alias expansions past ``MAX_EXPANDED`` values."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.nesting = 0
        self.expanded = 0
        self.sizes: dict[int, int] = {}
        self.finished: set[int] = set()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self.finished:
                raise YamlLimitError(line, "an alias refers to a value that contains it")
            self.expanded += _expanded_size(node, self.sizes)
            if self.expanded > MAX_EXPANDED:
                raise YamlLimitError(
                    line,
                    f"aliases expand to more than {MAX_EXPANDED} values; "
                    "write the values out instead of nesting aliases",
                )
            return node
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise YamlLimitError(
                line, f"values nest more than {MAX_NESTING} levels deep; a graph needs four"
            )
        node = super().compose_node(parent, index)
        self.nesting -= 1
        too_long = isinstance(node, ScalarNode) and len(node.value) > MAX_NUMBER_CHARS
        if too_long and str(node.tag).endswith((":int", ":float")):
            raise YamlLimitError(
                line, f"a number written with {len(node.value)} characters; quote it as text"
            )
        self.finished.add(id(node))
        return node


def _expanded_size(root: Node, sizes: dict[int, int]) -> int:
    """Values under ``root`` with every alias expanded; memoised, so shared nodes cost once."""
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if children_done or not children:
            sizes[id(node)] = 1 + sum(sizes.get(id(c), 1) for c in children)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def load(text: str) -> Any:
    """Round-trip load ``text`` (line numbers kept) within the limits above.

    Raises :class:`YamlLimitError` past a limit and ruamel's ``YAMLError`` for bad syntax.
    """
    if len(text) > MAX_BYTES:
        raise YamlLimitError(0, f"the text is larger than {MAX_BYTES // 1024} KiB")
    yaml = YAML(typ="rt")
    yaml.Composer = _BoundedComposer
    try:
        return yaml.load(text)
    except RecursionError:
        raise YamlLimitError(0, "values nest too deep to read") from None


def plain(value: Any) -> Any:
    """Round-trip YAML values as plain Python, so params pickle/serialise without ruamel."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


__all__ = ["MAX_BYTES", "YAMLError", "YamlLimitError", "load", "plain", "quote", "read_text"]
