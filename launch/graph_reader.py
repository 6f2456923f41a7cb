"""Graph files: read a YAML graph, check everything that can be checked before a process starts.

Every mistake is reported at once as ``file:line: message`` with the fix where one can be guessed,
so an integrator fixes a graph in one pass instead of one launch per typo. This module reads the
file node by node (keys, ids, node types, parameters, placement); :mod:`~igtflow.launch.graph_yaml`
parses the YAML and locates lines, :mod:`~igtflow.launch.graph_inputs` reads each node's inputs as
written, and :mod:`igtflow.launch.graph_checks` then checks what spans nodes. The result is a
frozen :class:`~igtflow.launch.graph.Graph`.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from igtflow.launch import registry, safe_yaml
from igtflow.launch.graph import (
    DEFAULT_MAX_RESTARTS,
    DEFAULT_THREADS,
    Graph,
    Priority,
    Restart,
)
from igtflow.launch.graph_checks import (
    check_cycles,
    check_node_wiring,
    check_ports,
    check_sources,
    check_upstream,
    wire_inputs,
)
from igtflow.launch.graph_draft import NodeDraft, unique
from igtflow.launch.graph_inputs import read_inputs
from igtflow.launch.graph_issues import GraphError, GraphIssue
from igtflow.launch.graph_security import check_tcp_edges, read_curve, read_insecure
from igtflow.launch.graph_yaml import key_line, line_of, load_document, unknown_keys, yaml_type
from igtflow.launch.overrides import OVERRIDES_PATH, Override, parse_overrides
from igtflow.launch.safe_yaml import YamlLimitError, plain, quote
from igtflow.stream.param_values import coerce, declared_params, is_int, suggest, type_name

TOP_KEYS = ("name", "nodes", "curve", "insecure")
NODE_KEYS = (
    "id", "uses", "params", "inputs", "host", "restart", "max_restarts", "threads", "priority"
)  # fmt: skip
RESTARTS: tuple[Restart, ...] = ("on-failure", "never")
PRIORITIES: tuple[Priority, ...] = ("normal", "background")
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
        doc = load_document(self.text, self.path)
        if not isinstance(doc, CommentedMap):
            got = "an empty file" if doc is None else yaml_type(doc)
            self.issue(1, f"a graph file is a mapping with 'name' and 'nodes', got {got}")
            raise self.fail()
        name = self._read_top(doc)
        curve = read_curve(self.issue, doc, self.path)
        insecure = read_insecure(self.issue, doc)
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
        check_upstream(self.issue, nodes)
        check_cycles(self.issue, nodes)
        check_ports(self.issue, nodes)
        check_tcp_edges(self.issue, nodes, curve, insecure, "curve" in doc)
        if self.issues:
            raise self.fail()
        specs = tuple(d.spec() for d in drafts)
        return Graph(name, self.path, self.text, specs, tuple(self.unchecked), curve, insecure)

    # -- top level and nodes ---------------------------------------------------------------

    def _read_top(self, doc: CommentedMap) -> str:
        unknown_keys(self.issue, doc, TOP_KEYS, "at the top level of the graph")
        name = doc.get("name")
        if name is None:
            return Path(self.path).stem if self.path != "<string>" else "graph"
        if not isinstance(name, str) or not name:
            self.issue(key_line(doc, "name"), f"graph 'name' must be a text, got {quote(name)}")
            return "graph"
        return str(name)

    def _read_nodes(self, doc: CommentedMap) -> list[NodeDraft]:
        if "nodes" not in doc:
            self.issue(line_of(doc), "the graph has no 'nodes' list")
            return []
        entries = doc["nodes"]
        line = key_line(doc, "nodes")
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
                f"node #{index + 1} must be a mapping with 'id' and 'uses', got {yaml_type(entry)}",
            )
            return None
        line = line_of(entry)
        draft = NodeDraft(label=f"#{index + 1}", line=line)
        draft.id = self._read_id(entry, draft)
        if draft.id is not None:
            draft.label = repr(draft.id)
        unknown_keys(self.issue, entry, NODE_KEYS, f"in node {draft.label}")
        self._read_uses(entry, draft)
        self._read_params(entry, draft)
        read_inputs(self.issue, entry, draft)
        self._read_placement(entry, draft)
        return draft

    def _read_id(self, entry: CommentedMap, draft: NodeDraft) -> str | None:
        if "id" not in entry:
            self.issue(draft.line, f"node {draft.label} has no 'id'")
            return None
        node_id = entry["id"]
        if not isinstance(node_id, str) or not NODE_ID.fullmatch(node_id):
            self.issue(
                key_line(entry, "id"),
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
        line = key_line(entry, "uses")
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
                key_line(entry, "params"),
                f"'params' of node {draft.label} must be a mapping of name: value",
            )
        elif params is not None:
            for key, value in params.items():
                line = key_line(params, key)
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

    def _read_placement(self, entry: CommentedMap, draft: NodeDraft) -> None:
        host = entry.get("host")
        if host is not None:
            draft.host_line = key_line(entry, "host")
            if isinstance(host, str) and host.strip():
                draft.host = str(host).strip()
            else:
                self.issue(
                    key_line(entry, "host"),
                    f"'host' of node {draft.label} must be a host name or address, "
                    f"got {quote(host)}",
                )
        restart = entry.get("restart", "on-failure")
        if restart in RESTARTS:
            draft.restart = typing.cast(Restart, str(restart))
        else:
            self.issue(
                key_line(entry, "restart"),
                f"'restart' of node {draft.label} is {quote(restart)}, not one of "
                f"{', '.join(RESTARTS)}" + suggest(str(restart), RESTARTS, ""),
            )
        max_restarts = entry.get("max_restarts", DEFAULT_MAX_RESTARTS)
        if is_int(max_restarts) and max_restarts >= 0:
            draft.max_restarts = int(max_restarts)
        else:
            self.issue(
                key_line(entry, "max_restarts"),
                f"'max_restarts' of node {draft.label} must be a whole number >= 0, "
                f"got {quote(max_restarts)}",
            )
        threads = entry.get("threads", DEFAULT_THREADS)
        if is_int(threads) and threads >= 1:
            draft.threads = int(threads)
        else:
            self.issue(
                key_line(entry, "threads"),
                f"'threads' of node {draft.label} must be a whole number >= 1, "
                f"got {quote(threads)}",
            )
        priority = entry.get("priority")
        if priority in PRIORITIES:
            draft.priority = typing.cast(Priority, str(priority))
        elif priority is not None:
            self.issue(
                key_line(entry, "priority"),
                f"'priority' of node {draft.label} is {quote(priority)}, not one of "
                f"{', '.join(PRIORITIES)}" + suggest(str(priority), PRIORITIES, ""),
            )
