"""The graph file as YAML: the document with its line numbers, syntax errors as ``file:line``
issues, and where a key or a value sits, so every later message can point at its line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from igtflow.launch import safe_yaml
from igtflow.launch.graph_issues import GraphError, GraphIssue, Report
from igtflow.launch.safe_yaml import YamlLimitError, plain, quote
from igtflow.stream.param_values import suggest


def load_document(text: str, path: str) -> Any:
    """The YAML document in ``text`` (read from ``path``); raises :class:`GraphError` with the
    line and column of a syntax error, a bad character or a size limit.
    """
    try:
        return safe_yaml.load(text)
    except YamlLimitError as exc:
        raise GraphError([GraphIssue(path, exc.line, exc.problem)]) from None
    except MarkedYAMLError as exc:
        raise _syntax_error(exc, path) from None
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        problem = f"invalid YAML: column {column}: {_bad_character(exc)}"
        raise GraphError([GraphIssue(path, line, problem)]) from None
    except YAMLError as exc:
        problem = quote(str(exc), 200)
        raise GraphError([GraphIssue(path, 0, f"invalid YAML: {problem}")]) from None


def line_of(node: Any) -> int:
    """1-based line where a YAML mapping or list starts."""
    return node.lc.line + 1 if hasattr(node, "lc") else 0


def key_line(mapping: Any, key: Any) -> int:
    """1-based line of ``key`` in ``mapping``; the mapping's own line when the key is absent."""
    try:
        return mapping.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return line_of(mapping)


def yaml_type(value: Any) -> str:
    """What was found instead of a mapping, as a message says it: 'a list', 'nothing', '7'."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return quote(plain(value))


def unknown_keys(report: Report, mapping: CommentedMap, allowed: Sequence[str], where: str) -> None:
    """Report each key of ``mapping`` not in ``allowed``, with the nearest allowed one."""
    for key in mapping:
        if key not in allowed:
            report(
                key_line(mapping, key),
                f"unknown key {quote(key)} {where}" + suggest(str(key), allowed, "allowed"),
            )


def _syntax_error(exc: MarkedYAMLError, path: str) -> GraphError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 0
    problem = (exc.problem or "").strip()
    if exc.context:
        context_mark = exc.context_mark
        where = (
            f" on line {context_mark.line + 1}"
            if context_mark is not None and context_mark.line + 1 != line
            else ""
        )
        problem = f"{problem} ({exc.context.strip()}{where})"
    return GraphError([GraphIssue(path, line, f"invalid YAML: {problem}")])


def _bad_character(exc: ReaderError) -> str:
    if isinstance(exc.character, int):
        return f"character U+{exc.character:04X} is not allowed ({exc.reason})"
    return str(exc.reason)
