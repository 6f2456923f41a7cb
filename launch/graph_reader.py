"""Graph files: read a YAML graph, check everything that can be checked before a process starts.

Every mistake is reported at once as ``file:line: message`` with the fix where one can be guessed,
so an integrator fixes a graph in one pass instead of one launch per typo. This module reads the
file node by node (keys, types, parameters, inputs as written); :mod:`igtflow.launch.graph_checks`
then checks what spans nodes. The result is a frozen :class:`~igtflow.launch.graph.Graph`.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from igtflow.launch import registry, safe_yaml
from igtflow.launch.graph import (
    DEFAULT_BUDGET_MIB,
    DEFAULT_MAX_RESTARTS,
    DEFAULT_THREADS,
    Graph,
    Policy,
    Restart,
)
from igtflow.launch.graph_checks import (
    check_cycles,
    check_node_wiring,
    check_ports,
    check_sources,
    wire_inputs,
)
from igtflow.launch.graph_draft import NodeDraft, WireDraft, unique
from igtflow.launch.graph_issues import GraphError, GraphIssue
from igtflow.launch.overrides import OVERRIDES_PATH, Override, parse_overrides
from igtflow.launch.safe_yaml import YamlLimitError, plain, quote
from igtflow.stream.messages import Message
from igtflow.stream.node import WILDCARD
from igtflow.stream.param_values import coerce, declared_params, is_int, suggest, type_name

TOP_KEYS = ("name", "nodes")
NODE_KEYS = ("id", "uses", "params", "inputs", "host", "restart", "max_restarts", "threads")
INPUT_KEYS = ("from", "policy", "depth", "budget_mib")
POLICIES: tuple[Policy, ...] = ("latest", "queue")
RESTARTS: tuple[Restart, ...] = ("on-failure", "never")
DEFAULT_DEPTH: dict[str, int] = {"latest": 1, "queue": 16}
MAX_DEPTH = 100_000
MAX_BUDGET_MIB = 1 << 20
MAX_NODES = 1000  # one process per node: far past what a host runs, well short of a hang
# Ids become socket file names and topic prefixes: short, no separators, no dots.
NODE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")


def load_graph(path: str | Path, overrides: Sequence[str] = (), import_nodes: bool = True) -> Graph:
    """Read and validate the graph file at ``path``; ``overrides`` are ``node.param=value``.

    ``import_nodes=False`` checks third-party ``uses: package.module:Class`` nodes without
    importing (running) their module: their parameters and wiring are listed as unchecked.
    """
    try:
        text = safe_yaml.read_text(path)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise GraphError([GraphIssue(str(path), 0, f"cannot read graph file: {why}")]) from None
    except YamlLimitError as exc:
        raise GraphError([GraphIssue(str(path), exc.line, exc.problem)]) from None
    return parse_graph(text, str(path), overrides, import_nodes)


def parse_graph(
    text: str, path: str = "<string>", overrides: Sequence[str] = (), import_nodes: bool = True
) -> Graph:
    """Validate graph YAML ``text``; raises :class:`GraphError` listing every problem."""
    return _Reader(text, path, overrides, import_nodes).read()


class _Reader:
    """Walks the YAML once, collecting issues instead of stopping at the first."""

    def __init__(
        self, text: str, path: str, overrides: Sequence[str], import_nodes: bool = True
    ) -> None:
        self.text = text
        self.path = path
        self.import_nodes = import_nodes
        self.unchecked: list[str] = []
        self.issues: list[GraphIssue] = []
        self.overrides, problems = parse_overrides(overrides)
        for problem in problems:
            self.issue(0, problem, OVERRIDES_PATH)
        self.used_overrides: set[str] = set()

    def issue(self, line: int, message: str, path: str | None = None) -> None:
        self.issues.append(GraphIssue(path or self.path, line, message))

    def fail(self) -> GraphError:
        # File issues by line, then the command line's: the order an editor walks them.
        ordered = sorted(self.issues, key=lambda i: (i.path != self.path, i.line))
        return GraphError(ordered)

    def read(self) -> Graph:
        try:
            doc = safe_yaml.load(self.text)
        except YamlLimitError as exc:
            raise GraphError([GraphIssue(self.path, exc.line, exc.problem)]) from None
        except MarkedYAMLError as exc:
            raise self._syntax_error(exc) from None
        except ReaderError as exc:
            line = self.text.count("\n", 0, exc.position) + 1
            column = exc.position - (self.text.rfind("\n", 0, exc.position) + 1) + 1
            problem = f"invalid YAML: column {column}: {_bad_character(exc)}"
            raise GraphError([GraphIssue(self.path, line, problem)]) from None
        except YAMLError as exc:
            problem = quote(str(exc), 200)
            raise GraphError([GraphIssue(self.path, 0, f"invalid YAML: {problem}")]) from None
        if not isinstance(doc, CommentedMap):
            got = "an empty file" if doc is None else _yaml_type(doc)
            self.issue(1, f"a graph file is a mapping with 'name' and 'nodes', got {got}")
            raise self.fail()
        name = self._read_top(doc)
        drafts = self._read_nodes(doc)
        for node_id in self.overrides:
            if node_id not in self.used_overrides:
                ids = [d.id for d in drafts if d.id]
                for item in self.overrides[node_id].values():
                    self.issue(
                        0,
                        f"--set {item.text}: the graph has no node {quote(node_id)}"
                        + suggest(node_id, ids, "nodes"),
                        OVERRIDES_PATH,
                    )
        nodes = unique(drafts)
        wire_inputs(self.issue, drafts, nodes)
        check_sources(self.issue, nodes)
        check_node_wiring(self.issue, nodes)
        check_cycles(self.issue, nodes)
        check_ports(self.issue, nodes)
        if self.issues:
            raise self.fail()
        specs = tuple(d.spec() for d in drafts)
        return Graph(name, self.path, self.text, specs, tuple(self.unchecked))

    def _syntax_error(self, exc: MarkedYAMLError) -> GraphError:
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
        return GraphError([GraphIssue(self.path, line, f"invalid YAML: {problem}")])

    # -- top level and nodes ---------------------------------------------------------------

    def _read_top(self, doc: CommentedMap) -> str:
        self._unknown_keys(doc, TOP_KEYS, "at the top level of the graph")
        name = doc.get("name")
        if name is None:
            return Path(self.path).stem if self.path != "<string>" else "graph"
        if not isinstance(name, str) or not name:
            self.issue(_key_line(doc, "name"), f"graph 'name' must be a text, got {quote(name)}")
            return "graph"
        return str(name)

    def _read_nodes(self, doc: CommentedMap) -> list[NodeDraft]:
        if "nodes" not in doc:
            self.issue(_line(doc), "the graph has no 'nodes' list")
            return []
        entries = doc["nodes"]
        line = _key_line(doc, "nodes")
        if not isinstance(entries, list) or not entries:
            self.issue(line, "'nodes' must be a non-empty list of nodes, each with 'id' and 'uses'")
            return []
        if len(entries) > MAX_NODES:
            self.issue(
                line,
                f"the graph has {len(entries)} nodes, more than the {MAX_NODES} one launcher "
                "runs (one process each); split it across hosts or graphs",
            )
            return []
        drafts: list[NodeDraft] = []
        first_line: dict[str, int] = {}
        for index, entry in enumerate(entries):
            item_line = entries.lc.item(index)[0] + 1 if hasattr(entries, "lc") else line
            draft = self._read_node(entry, index, item_line)
            if draft is None:
                continue
            if draft.id is not None:
                if draft.id in first_line:
                    self.issue(
                        draft.line,
                        f"duplicate node id {quote(draft.id)}: already used by the node on line "
                        f"{first_line[draft.id]}; node ids must be unique",
                    )
                    draft.id = None
                else:
                    first_line[draft.id] = draft.line
            drafts.append(draft)
        return drafts

    def _read_node(self, entry: Any, index: int, line: int) -> NodeDraft | None:
        if not isinstance(entry, CommentedMap):
            self.issue(
                line,
                f"node #{index + 1} must be a mapping with 'id' and 'uses', "
                f"got {_yaml_type(entry)}",
            )
            return None
        line = _line(entry)
        draft = NodeDraft(label=f"#{index + 1}", line=line)
        draft.id = self._read_id(entry, draft)
        if draft.id is not None:
            draft.label = repr(draft.id)
        self._unknown_keys(entry, NODE_KEYS, f"in node {draft.label}")
        self._read_uses(entry, draft)
        self._read_params(entry, draft)
        self._read_inputs(entry, draft)
        self._read_placement(entry, draft)
        return draft

    def _read_id(self, entry: CommentedMap, draft: NodeDraft) -> str | None:
        if "id" not in entry:
            self.issue(draft.line, f"node {draft.label} has no 'id'")
            return None
        node_id = entry["id"]
        if not isinstance(node_id, str) or not NODE_ID.fullmatch(node_id):
            self.issue(
                _key_line(entry, "id"),
                f"node id {quote(node_id)} is not valid: use a letter then up to 31 letters, "
                "digits, '_' or '-' (ids name socket files)",
            )
            return None
        return str(node_id)

    def _read_uses(self, entry: CommentedMap, draft: NodeDraft) -> None:
        uses = entry.get("uses")
        if uses is None:
            self.issue(draft.line, f"node {draft.label} has no 'uses' (its node type)")
            return
        line = _key_line(entry, "uses")
        if not isinstance(uses, str) or not uses:
            self.issue(
                line, f"'uses' of node {draft.label} must be a node type name, got {quote(uses)}"
            )
            return
        draft.uses = str(uses)
        if not self.import_nodes and ":" in draft.uses:
            draft.import_path = draft.uses
            module = draft.uses.partition(":")[0]
            self.unchecked.append(
                f"{self.path}:{line}: node {draft.label} not checked: would import {quote(module)}"
            )
            return
        try:
            draft.import_path = registry.import_path(draft.uses)
            draft.cls = registry.load_node_class(draft.uses)
        except registry.UnknownNodeType as exc:
            if ":" in draft.uses or draft.uses in registry.node_types():
                detail = str(exc).removeprefix(draft.uses).strip()
                self.issue(
                    line, f"node {draft.label} uses {quote(draft.uses)}, which fails {detail}"
                )
            else:
                self.issue(
                    line,
                    f"node {draft.label} uses unknown node type {quote(draft.uses)}"
                    + suggest(draft.uses, registry.node_types(), "known types"),
                )
            return
        except registry.NodeRegistryError:
            raise  # the installation is at fault, not this graph
        except Exception as exc:  # a broken node module must not crash validation
            self.issue(
                line,
                f"node {draft.label}: importing {quote(draft.import_path)} failed: "
                f"{type(exc).__name__}: {exc}",
            )
            return
        try:
            draft.declared = declared_params(draft.cls)
        except Exception as exc:
            self.issue(line, f"cannot read the parameters of {quote(draft.uses)}: {exc}")
            draft.cls = None

    def _read_params(self, entry: CommentedMap, draft: NodeDraft) -> None:
        given: dict[str, tuple[Any, int, Override | None]] = {}
        params = entry.get("params")
        if params is not None and not isinstance(params, CommentedMap):
            self.issue(
                _key_line(entry, "params"),
                f"'params' of node {draft.label} must be a mapping of name: value",
            )
        elif params is not None:
            for key, value in params.items():
                line = _key_line(params, key)
                if draft.cls is not None and key not in draft.declared:
                    self.issue(line, self._unknown_param(draft, key))
                    continue
                given[str(key)] = (plain(value), line, None)
        # A --set goes to the first node of that id; a duplicate is already an error.
        if draft.id in self.overrides and draft.id not in self.used_overrides:
            self.used_overrides.add(draft.id)
            for key, item in self.overrides[draft.id].items():
                if draft.cls is not None and key not in draft.declared:
                    message = self._unknown_param(draft, key)
                    self.issue(0, f"--set {item.text}: {message}", OVERRIDES_PATH)
                    continue
                given[key] = (item.value, 0, item)
        for key, (value, line, item) in given.items():
            draft.param_lines[key] = line
            if draft.cls is None:
                draft.params[key] = value
                continue
            param = draft.declared[key]
            try:
                draft.params[key] = coerce(param, value)
            except ValueError as exc:
                if item is not None and item.raw != value:
                    try:
                        draft.params[key] = coerce(param, item.raw)
                        continue
                    except ValueError:
                        pass
                message = f"parameter {quote(key)} of node {draft.label} {exc}"
                if item is None:
                    self.issue(line, message)
                else:
                    self.issue(0, f"--set {item.text}: {message}", OVERRIDES_PATH)
        for name, param in draft.declared.items():
            if param.required and name not in given:
                self.issue(
                    draft.line,
                    f"node {draft.label} ({draft.uses}) needs parameter {quote(name)} "
                    f"({type_name(param)}); add it under 'params'",
                )

    def _unknown_param(self, draft: NodeDraft, key: Any) -> str:
        message = f"node {draft.label} ({draft.uses}) has no parameter {quote(key)}"
        if not draft.declared:
            return f"{message} (it takes none)"
        return message + suggest(str(key), draft.declared, "parameters")

    def _read_inputs(self, entry: CommentedMap, draft: NodeDraft) -> None:
        inputs = entry.get("inputs")
        if inputs is None:
            return
        if not isinstance(inputs, CommentedMap):
            self.issue(
                _key_line(entry, "inputs"),
                f"'inputs' of node {draft.label} must map input names to 'node/output'",
            )
            return
        declared = draft.cls.inputs if draft.cls is not None else None
        for name, value in inputs.items():
            line = _key_line(inputs, name)
            where = f"input {quote(name)} of node {draft.label}"
            if not isinstance(name, str):
                self.issue(line, f"{where}: input names are text")
                continue
            if declared is not None and not _declares(declared, name):
                if not declared:
                    self.issue(line, f"node {draft.label} ({draft.uses}) takes no inputs")
                elif name == WILDCARD:
                    self.issue(
                        line,
                        f"node {draft.label} ({draft.uses}) has no wildcard input '*'; "
                        f"wire its inputs by name ({', '.join(declared)})",
                    )
                else:
                    self.issue(
                        line,
                        f"node {draft.label} ({draft.uses}) has no input {quote(name)}"
                        + suggest(name, declared, "inputs"),
                    )
                continue
            wire = self._read_wire(name, value, line, where)
            if wire is not None:
                draft.wires.append(wire)

    def _read_wire(self, name: str, value: Any, line: int, where: str) -> WireDraft | None:
        if isinstance(value, str):
            return WireDraft(name, value, "latest", DEFAULT_DEPTH["latest"], line)
        if not isinstance(value, CommentedMap):
            self.issue(
                line,
                f"{where} must be 'node/output' or a mapping with 'from', 'policy', 'depth'"
                ", 'budget_mib'",
            )
            return None
        self._unknown_keys(value, INPUT_KEYS, f"in {where}")
        ok = True
        ref = value.get("from")
        if not isinstance(ref, str):
            self.issue(line, f"{where} needs 'from: node/output'")
            ok = False
        policy = value.get("policy", "latest")
        if policy not in POLICIES:
            self.issue(
                _key_line(value, "policy"),
                f"policy {quote(policy)} of {where} is not one of {', '.join(POLICIES)}"
                + suggest(str(policy), POLICIES, ""),
            )
            ok = False
        depth = value.get("depth", DEFAULT_DEPTH.get(str(policy), 1))
        if not is_int(depth) or not 1 <= depth <= MAX_DEPTH:
            self.issue(
                _key_line(value, "depth"),
                f"depth {quote(depth)} of {where} must be a whole number from 1 to {MAX_DEPTH}",
            )
            ok = False
        budget = value.get("budget_mib", DEFAULT_BUDGET_MIB)
        if not is_int(budget) or not 1 <= budget <= MAX_BUDGET_MIB:
            self.issue(
                _key_line(value, "budget_mib"),
                f"budget_mib {quote(budget)} of {where} must be a whole number of MiB from 1 to "
                f"{MAX_BUDGET_MIB}",
            )
            ok = False
        elif "budget_mib" in value and policy != "queue":
            self.issue(
                _key_line(value, "budget_mib"),
                f"budget_mib of {where} applies to 'policy: queue' only (a latest input keeps "
                "nothing back); remove it or set 'policy: queue'",
            )
            ok = False
        if not ok:
            return None
        return WireDraft(
            name, str(ref), typing.cast(Policy, str(policy)), int(depth), line, int(budget)
        )

    def _read_placement(self, entry: CommentedMap, draft: NodeDraft) -> None:
        host = entry.get("host")
        if host is not None:
            if isinstance(host, str) and host.strip():
                draft.host = str(host).strip()
            else:
                self.issue(
                    _key_line(entry, "host"),
                    f"'host' of node {draft.label} must be a host name or address, "
                    f"got {quote(host)}",
                )
        restart = entry.get("restart", "on-failure")
        if restart in RESTARTS:
            draft.restart = typing.cast(Restart, str(restart))
        else:
            self.issue(
                _key_line(entry, "restart"),
                f"'restart' of node {draft.label} is {quote(restart)}, not one of "
                f"{', '.join(RESTARTS)}" + suggest(str(restart), RESTARTS, ""),
            )
        max_restarts = entry.get("max_restarts", DEFAULT_MAX_RESTARTS)
        if is_int(max_restarts) and max_restarts >= 0:
            draft.max_restarts = int(max_restarts)
        else:
            self.issue(
                _key_line(entry, "max_restarts"),
                f"'max_restarts' of node {draft.label} must be a whole number >= 0, "
                f"got {quote(max_restarts)}",
            )
        threads = entry.get("threads", DEFAULT_THREADS)
        if is_int(threads) and threads >= 1:
            draft.threads = int(threads)
        else:
            self.issue(
                _key_line(entry, "threads"),
                f"'threads' of node {draft.label} must be a whole number >= 1, "
                f"got {quote(threads)}",
            )

    # -- helpers bound to this file -----------------------------------------------------------

    def _unknown_keys(self, mapping: CommentedMap, allowed: Sequence[str], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.issue(
                    _key_line(mapping, key),
                    f"unknown key {quote(key)} {where}" + suggest(str(key), allowed, "allowed"),
                )


# -- pure helpers ---------------------------------------------------------------------------


def _line(node: Any) -> int:
    """1-based line where a YAML mapping or list starts."""
    return node.lc.line + 1 if hasattr(node, "lc") else 0


def _key_line(mapping: Any, key: Any) -> int:
    """1-based line of ``key`` in ``mapping``; the mapping's own line when the key is absent."""
    try:
        return mapping.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return _line(mapping)


def _yaml_type(value: Any) -> str:
    """What was found instead of a mapping, as a message says it: 'a list', 'nothing', '7'."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return quote(plain(value))


def _bad_character(exc: ReaderError) -> str:
    if isinstance(exc.character, int):
        return f"character U+{exc.character:04X} is not allowed ({exc.reason})"
    return str(exc.reason)


def _declares(declared: dict[str, type[Message]], name: str) -> bool:
    """A node that declares the wildcard also takes any named input."""
    return name in declared or WILDCARD in declared
