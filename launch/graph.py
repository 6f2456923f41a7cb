"""Graph files: read a YAML graph, check everything that can be checked before a process starts.

Every mistake is reported at once as ``file:line: message`` with the fix where one can be guessed,
so an integrator fixes a graph in one pass instead of one launch per typo. The result is a frozen
:class:`Graph` of :class:`NodeSpec` that the launcher turns into processes.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from igtflow.launch import registry, safe_yaml
from igtflow.launch.safe_yaml import YamlLimitError, quote
from igtflow.stream.messages import Message
from igtflow.stream.node import WILDCARD, Node, Param, all_outputs
from igtflow.stream.param_values import coerce as _coerce
from igtflow.stream.param_values import declared_params as _declared_params
from igtflow.stream.param_values import suggest as _suggest
from igtflow.stream.param_values import type_name as _type_name
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

Policy = Literal["latest", "queue"]
Restart = Literal["on-failure", "never"]

TOP_KEYS = ("name", "nodes")
NODE_KEYS = ("id", "uses", "params", "inputs", "host", "restart", "max_restarts", "threads")
INPUT_KEYS = ("from", "policy", "depth", "budget_mib")
POLICIES: tuple[Policy, ...] = ("latest", "queue")
RESTARTS: tuple[Restart, ...] = ("on-failure", "never")
DEFAULT_DEPTH: dict[str, int] = {"latest": 1, "queue": 16}
MAX_DEPTH = 100_000
DEFAULT_BUDGET_MIB = 256  # shared memory a queue may leave unread at its producer (per output)
MAX_BUDGET_MIB = 1 << 20
MAX_NODES = 1000  # one process per node: far past what a host runs, well short of a hang
DEFAULT_MAX_RESTARTS = 5
DEFAULT_THREADS = 1
# Ids become socket file names and topic prefixes: short, no separators, no dots.
NODE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
OVERRIDES_PATH = "<--set>"


@dataclass(frozen=True)
class InputSpec:
    """One wire into a node: which upstream output it reads and how it queues."""

    name: str
    node: str
    output: str
    policy: Policy = "latest"
    depth: int = 1
    line: int = 0
    budget_mib: int = DEFAULT_BUDGET_MIB

    @property
    def source(self) -> str:
        """The ``node/output`` reference this input reads."""
        return f"{self.node}/{self.output}"


@dataclass(frozen=True)
class NodeSpec:
    """One node of a checked graph: enough for the launcher to start its process."""

    id: str
    uses: str
    import_path: str
    params: dict[str, Any]
    inputs: tuple[InputSpec, ...] = ()
    host: str | None = None
    restart: Restart = "on-failure"
    max_restarts: int = DEFAULT_MAX_RESTARTS
    threads: int = DEFAULT_THREADS
    line: int = 0
    outputs: tuple[str, ...] = ()  # every output, the implicit ``status`` included


@dataclass(frozen=True)
class Graph:
    """A validated graph: nodes in file order, every wire resolved, no cycles."""

    name: str
    path: str
    text: str
    nodes: tuple[NodeSpec, ...]
    # ``validate --no-import``: what was left unchecked, e.g. "node 'x': would import pkg.mod".
    unchecked: tuple[str, ...] = ()

    def node(self, node_id: str) -> NodeSpec:
        """The node with id ``node_id``; a KeyError names the ids that exist."""
        for spec in self.nodes:
            if spec.id == node_id:
                return spec
        known = ", ".join(spec.id for spec in self.nodes)
        raise KeyError(f"graph {self.name!r} has no node {node_id!r} (nodes: {known})")

    def consumers(self, node_id: str, output: str) -> list[tuple[NodeSpec, InputSpec]]:
        """Every (node, input) that reads ``node_id/output``, in file order."""
        return [
            (spec, wire)
            for spec in self.nodes
            for wire in spec.inputs
            if wire.node == node_id and wire.output == output
        ]

    def topo_order(self) -> list[NodeSpec]:
        """Nodes with every upstream before its consumers; ties keep file order."""
        order = _topo_order([spec.id for spec in self.nodes], _edges(self.nodes))
        return [self.node(node_id) for node_id in order]


@dataclass(frozen=True)
class GraphIssue:
    """One mistake in a graph, located so an editor can jump to it."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class GraphError(Exception):
    """A graph that must not run; ``issues`` holds every mistake found, in file order."""

    def __init__(self, issues: Sequence[GraphIssue]) -> None:
        self.issues: list[GraphIssue] = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


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


@dataclass
class _Override:
    """One ``--set node.param=value``: the YAML-typed value and the raw text to fall back on."""

    text: str
    value: Any
    raw: str


@dataclass
class _Wire:
    """An input as written, before its reference is resolved against the other nodes."""

    name: str
    ref: str
    policy: Policy
    depth: int
    line: int
    budget_mib: int = DEFAULT_BUDGET_MIB


@dataclass
class _Draft:
    """A node read from YAML; ``cls`` is None when its type could not be loaded."""

    label: str
    line: int
    id: str | None = None
    uses: str = ""
    import_path: str = ""
    cls: type[Node] | None = None
    declared: dict[str, Param] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    param_lines: dict[str, int] = field(default_factory=dict)
    wires: list[_Wire] = field(default_factory=list)
    inputs: list[InputSpec] = field(default_factory=list)
    outputs: dict[str, type[Message]] = field(default_factory=dict)
    host: str | None = None
    restart: Restart = "on-failure"
    max_restarts: int = DEFAULT_MAX_RESTARTS
    threads: int = DEFAULT_THREADS


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
        self.overrides = self._parse_overrides(overrides)
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
                        + _suggest(node_id, ids, "nodes"),
                        OVERRIDES_PATH,
                    )
        nodes = _unique(drafts)
        self._wire(drafts, nodes)
        self._check_wiring(nodes)
        self._check_cycles(nodes)
        self._check_ports(nodes)
        if self.issues:
            raise self.fail()
        specs = tuple(_spec(d) for d in drafts)
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

    def _read_nodes(self, doc: CommentedMap) -> list[_Draft]:
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
        drafts: list[_Draft] = []
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

    def _read_node(self, entry: Any, index: int, line: int) -> _Draft | None:
        if not isinstance(entry, CommentedMap):
            self.issue(
                line,
                f"node #{index + 1} must be a mapping with 'id' and 'uses', "
                f"got {_yaml_type(entry)}",
            )
            return None
        line = _line(entry)
        draft = _Draft(label=f"#{index + 1}", line=line)
        draft.id = self._read_id(entry, draft)
        if draft.id is not None:
            draft.label = repr(draft.id)
        self._unknown_keys(entry, NODE_KEYS, f"in node {draft.label}")
        self._read_uses(entry, draft)
        self._read_params(entry, draft)
        self._read_inputs(entry, draft)
        self._read_placement(entry, draft)
        return draft

    def _read_id(self, entry: CommentedMap, draft: _Draft) -> str | None:
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

    def _read_uses(self, entry: CommentedMap, draft: _Draft) -> None:
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
            if ":" in draft.uses:
                detail = str(exc).removeprefix(draft.uses).strip()
                self.issue(
                    line, f"node {draft.label} uses {quote(draft.uses)}, which fails {detail}"
                )
            else:
                self.issue(
                    line,
                    f"node {draft.label} uses unknown node type {quote(draft.uses)}"
                    + _suggest(draft.uses, registry.builtin_nodes(), "known types"),
                )
            return
        except Exception as exc:  # a broken node module must not crash validation
            self.issue(
                line,
                f"node {draft.label}: importing {quote(draft.import_path)} failed: "
                f"{type(exc).__name__}: {exc}",
            )
            return
        try:
            draft.declared = _declared_params(draft.cls)
        except Exception as exc:
            self.issue(line, f"cannot read the parameters of {quote(draft.uses)}: {exc}")
            draft.cls = None

    def _read_params(self, entry: CommentedMap, draft: _Draft) -> None:
        given: dict[str, tuple[Any, int, _Override | None]] = {}
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
                given[str(key)] = (_plain(value), line, None)
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
                draft.params[key] = _coerce(param, value)
            except ValueError as exc:
                if item is not None and item.raw != value:
                    try:
                        draft.params[key] = _coerce(param, item.raw)
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
                    f"({_type_name(param)}); add it under 'params'",
                )

    def _unknown_param(self, draft: _Draft, key: Any) -> str:
        message = f"node {draft.label} ({draft.uses}) has no parameter {quote(key)}"
        if not draft.declared:
            return f"{message} (it takes none)"
        return message + _suggest(str(key), draft.declared, "parameters")

    def _read_inputs(self, entry: CommentedMap, draft: _Draft) -> None:
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
                        + _suggest(name, declared, "inputs"),
                    )
                continue
            wire = self._read_wire(name, value, line, where)
            if wire is not None:
                draft.wires.append(wire)

    def _read_wire(self, name: str, value: Any, line: int, where: str) -> _Wire | None:
        if isinstance(value, str):
            return _Wire(name, value, "latest", DEFAULT_DEPTH["latest"], line)
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
                + _suggest(str(policy), POLICIES, ""),
            )
            ok = False
        depth = value.get("depth", DEFAULT_DEPTH.get(str(policy), 1))
        if not _is_int(depth) or not 1 <= depth <= MAX_DEPTH:
            self.issue(
                _key_line(value, "depth"),
                f"depth {quote(depth)} of {where} must be a whole number from 1 to {MAX_DEPTH}",
            )
            ok = False
        budget = value.get("budget_mib", DEFAULT_BUDGET_MIB)
        if not _is_int(budget) or not 1 <= budget <= MAX_BUDGET_MIB:
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
        return _Wire(
            name, str(ref), typing.cast(Policy, str(policy)), int(depth), line, int(budget)
        )

    def _read_placement(self, entry: CommentedMap, draft: _Draft) -> None:
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
                f"{', '.join(RESTARTS)}" + _suggest(str(restart), RESTARTS, ""),
            )
        max_restarts = entry.get("max_restarts", DEFAULT_MAX_RESTARTS)
        if _is_int(max_restarts) and max_restarts >= 0:
            draft.max_restarts = int(max_restarts)
        else:
            self.issue(
                _key_line(entry, "max_restarts"),
                f"'max_restarts' of node {draft.label} must be a whole number >= 0, "
                f"got {quote(max_restarts)}",
            )
        threads = entry.get("threads", DEFAULT_THREADS)
        if _is_int(threads) and threads >= 1:
            draft.threads = int(threads)
        else:
            self.issue(
                _key_line(entry, "threads"),
                f"'threads' of node {draft.label} must be a whole number >= 1, "
                f"got {quote(threads)}",
            )

    # -- across nodes -------------------------------------------------------------------------

    def _wire(self, drafts: list[_Draft], nodes: dict[str, _Draft]) -> None:
        """Resolve every input against the outputs that exist; expand wildcards."""
        for draft in drafts:
            self._read_outputs(draft)
        unloaded = {node_id for node_id, d in nodes.items() if d.cls is None}
        refs = [f"{n}/{o}" for n, d in nodes.items() if d.cls is not None for o in d.outputs]
        for draft in drafts:
            if draft.cls is None:
                continue
            taken = {wire.name for wire in draft.wires if wire.name != WILDCARD}
            for wire in draft.wires:
                where = f"input {quote(wire.name)} of node {draft.label}"
                kind = _input_kind(draft.cls, wire.name)
                is_wild = wire.ref == WILDCARD or wire.ref.endswith("/" + WILDCARD)
                if wire.name == WILDCARD and not is_wild:
                    self.issue(
                        wire.line,
                        f"{where} reads {quote(wire.ref)}; the wildcard input reads '*' (every "
                        "output of every other node) or 'node/*' (every output of one node)",
                    )
                elif is_wild and wire.name != WILDCARD:
                    self.issue(
                        wire.line,
                        f"{where} reads {quote(wire.ref)}, but only the input '*' may read a "
                        "wildcard; name one output ('node/output')",
                    )
                elif is_wild:
                    self._expand(draft, wire, kind, nodes, unloaded, taken)
                else:
                    self._resolve(draft, wire, where, kind, nodes, unloaded, refs)

    def _read_outputs(self, draft: _Draft) -> None:
        """The draft's outputs; a node whose parameters rule out any output becomes unloaded."""
        if draft.cls is None:
            return
        try:
            draft.outputs = all_outputs(draft.cls, draft.id or "", draft.params)
        except (ValueError, OSError) as exc:
            self.issue(draft.line, f"node {draft.label} ({draft.uses}): {exc}")
            draft.cls = None

    def _resolve(
        self,
        draft: _Draft,
        wire: _Wire,
        where: str,
        kind: type[Message],
        nodes: dict[str, _Draft],
        unloaded: set[str],
        refs: list[str],
    ) -> None:
        node_id, slash, output = wire.ref.partition("/")
        if not slash or not node_id or not output or "/" in output:
            self.issue(
                wire.line,
                f"{where} reads {quote(wire.ref)}, which is not 'node/output'"
                + _suggest(wire.ref, refs, ""),
            )
            return
        if node_id in unloaded:
            return  # its type failed to load, already reported; its outputs are unknown
        upstream = nodes.get(node_id)
        if upstream is None or upstream.cls is None:
            why = f"no node {quote(node_id)}"
        elif output not in upstream.outputs:
            outs = ", ".join(upstream.outputs) or "none"
            why = f"outputs of {node_id}: {outs}"
        else:
            out_kind = upstream.outputs[output]
            if not _kinds_match(out_kind, kind):
                self.issue(
                    wire.line,
                    f"{where} expects {_kind_name(kind)}, but {quote(wire.ref)} carries "
                    f"{_kind_name(out_kind)}",
                )
                return
            draft.inputs.append(
                InputSpec(
                    wire.name,
                    node_id,
                    output,
                    wire.policy,
                    wire.depth,
                    wire.line,
                    wire.budget_mib,
                )
            )
            return
        self.issue(
            wire.line,
            f"{where} reads {quote(wire.ref)}, which does not exist ({why})"
            + _suggest(wire.ref, refs, ""),
        )

    def _expand(
        self,
        draft: _Draft,
        wire: _Wire,
        kind: type[Message],
        nodes: dict[str, _Draft],
        unloaded: set[str],
        taken: set[str],
    ) -> None:
        if wire.ref == WILDCARD:
            # Another catch-all reader (a recorder beside a stats sink) is left out: each would
            # read the other's status and form a cycle.
            sources = [
                d
                for i, d in nodes.items()
                if d is not draft and i not in unloaded and not _reads_everything(d)
            ]
        else:
            node_id = wire.ref[: -len("/" + WILDCARD)]
            if node_id in unloaded:
                return
            if node_id not in nodes:
                self.issue(
                    wire.line,
                    f"input '*' of node {draft.label} reads {quote(wire.ref)}, but there is no "
                    f"node {quote(node_id)}" + _suggest(node_id, list(nodes), "nodes"),
                )
                return
            sources = [nodes[node_id]]
        # A typed wildcard subscribes to the outputs of its kind and leaves the others alone.
        added = 0
        for upstream in sources:
            assert upstream.cls is not None and upstream.id is not None
            for output, out_kind in upstream.outputs.items():
                name = f"{upstream.id}/{output}"
                if name in taken or not _kinds_match(out_kind, kind):
                    continue
                draft.inputs.append(
                    InputSpec(
                        name,
                        upstream.id,
                        output,
                        wire.policy,
                        wire.depth,
                        wire.line,
                        wire.budget_mib,
                    )
                )
                added += 1
        if not added and not (wire.ref == WILDCARD and unloaded):
            self.issue(
                wire.line,
                f"input '*' of node {draft.label} reads {quote(wire.ref)}, which matches no "
                f"{_kind_name(kind)} output",
            )

    def _check_wiring(self, nodes: dict[str, _Draft]) -> None:
        """The node types' own checks of their wiring (``Node.check_wiring``)."""
        for draft in nodes.values():
            if draft.cls is None:
                continue
            names = [wire.name for wire in draft.inputs]
            params = {n: p.default for n, p in draft.declared.items() if not p.required}
            params.update(draft.params)
            try:
                problems = draft.cls.check_wiring(params, names)
            except Exception as exc:  # a buggy check must not crash validation
                problems = [f"checking its wiring failed: {type(exc).__name__}: {exc}"]
            for problem in problems:
                self.issue(draft.line, f"node {draft.label} ({draft.uses}): {problem}")

    def _check_cycles(self, nodes: dict[str, _Draft]) -> None:
        edges = {i: {w.node for w in d.inputs if w.node in nodes} for i, d in nodes.items()}
        for cycle in _cycles(list(nodes), edges):
            start, last = cycle[0], cycle[-2]
            line = next(w.line for w in nodes[start].inputs if w.node == last)
            self.issue(
                line,
                f"nodes {' -> '.join(cycle)} form a cycle; data must flow one way, "
                f"so remove one of these inputs",
            )

    def _check_ports(self, nodes: dict[str, _Draft]) -> None:
        """Two nodes on one host that bind the same port would fail only at run time."""
        seen: dict[tuple[str | None, int], tuple[str, str, int]] = {}
        for draft in nodes.values():
            if draft.cls is None:
                continue
            values = {n: p.default for n, p in draft.declared.items() if not p.required}
            values.update(draft.params)
            for name, value in values.items():
                if not (name == "port" or name.endswith("_port")):
                    continue
                port = _port_number(value)
                if port is None:
                    continue
                line = draft.param_lines.get(name) or draft.line
                key = (draft.host, port)
                if key in seen:
                    other, other_param, other_line = seen[key]
                    host = "this host" if draft.host is None else f"host {draft.host}"
                    self.issue(
                        line,
                        f"node {draft.label} uses port {port} ({name!r}), which node {other!r} "
                        f"already uses ({other_param!r}, line {other_line}) on {host}; "
                        "give one of them another port",
                    )
                else:
                    assert draft.id is not None
                    seen[key] = (draft.id, name, line)

    # -- helpers bound to this file -----------------------------------------------------------

    def _unknown_keys(self, mapping: CommentedMap, allowed: Sequence[str], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.issue(
                    _key_line(mapping, key),
                    f"unknown key {quote(key)} {where}" + _suggest(str(key), allowed, "allowed"),
                )

    def _parse_overrides(self, overrides: Sequence[str]) -> dict[str, dict[str, _Override]]:
        parsed: dict[str, dict[str, _Override]] = {}
        for text in overrides:
            target, eq, raw = text.partition("=")
            node_id, dot, param = target.strip().partition(".")
            if not eq or not dot or not node_id or not param:
                self.issue(
                    0,
                    f"--set {quote(text)} is not node.param=value (e.g. seg.device=cpu)",
                    OVERRIDES_PATH,
                )
                continue
            parsed.setdefault(node_id, {})[param.strip()] = _Override(text, _scalar(raw), raw)
        return parsed


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
    return quote(_plain(value))


def _plain(value: Any) -> Any:
    """Round-trip YAML values as plain Python, so params pickle/serialise without ruamel."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _scalar(raw: str) -> Any:
    """A ``--set`` value typed the way YAML would type it (``60`` int, ``true`` bool)."""
    if not raw.strip():
        return raw
    try:
        return _plain(safe_yaml.load(raw))
    except (YAMLError, YamlLimitError):
        return raw


def _bad_character(exc: ReaderError) -> str:
    if isinstance(exc.character, int):
        return f"character U+{exc.character:04X} is not allowed ({exc.reason})"
    return str(exc.reason)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _reads_everything(draft: _Draft) -> bool:
    return any(w.name == WILDCARD and w.ref == WILDCARD for w in draft.wires)


def _declares(declared: dict[str, type[Message]], name: str) -> bool:
    """A node that declares the wildcard also takes any named input."""
    return name in declared or WILDCARD in declared


def _input_kind(cls: type[Node], name: str) -> type[Message]:
    return cls.inputs.get(name) or cls.inputs.get(WILDCARD) or Message


def _kinds_match(out_kind: type[Message], in_kind: type[Message]) -> bool:
    """The base ``Message`` on either side means "any kind"."""
    if out_kind is Message or in_kind is Message:
        return True
    return isinstance(out_kind, type) and issubclass(out_kind, in_kind)


def _kind_name(kind: type[Message]) -> str:
    return getattr(kind, "KIND", None) or kind.__name__


def _port_number(value: Any) -> int | None:
    """A port a node would bind; 0 and empty mean "pick a free one" and never clash."""
    if _is_int(value) and value > 0:
        return int(value)
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value)
    return None


def _unique(drafts: list[_Draft]) -> dict[str, _Draft]:
    """Nodes that can be wired: a valid, first-seen id."""
    return {d.id: d for d in drafts if d.id is not None}


def _spec(draft: _Draft) -> NodeSpec:
    assert draft.id is not None
    return NodeSpec(
        id=draft.id,
        uses=draft.uses,
        import_path=draft.import_path,
        params=draft.params,
        inputs=tuple(draft.inputs),
        host=draft.host,
        restart=draft.restart,
        max_restarts=draft.max_restarts,
        threads=draft.threads,
        line=draft.line,
        outputs=tuple(draft.outputs),
    )


def _edges(nodes: Iterable[NodeSpec]) -> dict[str, set[str]]:
    """Node id → the ids it reads from."""
    return {spec.id: {wire.node for wire in spec.inputs} for spec in nodes}


def _topo_order(ids: list[str], upstream: dict[str, set[str]]) -> list[str]:
    """Upstream first; among ready nodes the earliest in the file goes first."""
    placed: set[str] = set()
    order: list[str] = []
    while len(order) < len(ids):
        ready = next((i for i in ids if i not in placed and upstream.get(i, set()) <= placed), None)
        if ready is None:
            raise ValueError("graph has a cycle")
        placed.add(ready)
        order.append(ready)
    return order


def _cycles(ids: list[str], upstream: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group, as ``[a, b, ..., a]`` in data-flow direction."""
    downstream: dict[str, list[str]] = {i: [] for i in ids}
    for node_id in ids:
        for source in upstream.get(node_id, ()):
            downstream[source].append(node_id)
    cycles: list[list[str]] = []
    covered: set[str] = set()
    for start in ids:
        if start in covered:
            continue
        path = _shortest_loop(start, downstream)
        if path is not None:
            covered.update(path)
            covered.update(_reachable_both_ways(start, downstream, upstream))
            cycles.append(path)
    return cycles


def _shortest_loop(start: str, downstream: dict[str, list[str]]) -> list[str] | None:
    """Breadth-first path from ``start`` back to itself, or None."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node_id in frontier:
            for nxt in downstream.get(node_id, ()):
                if nxt == start:
                    path = [node_id]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if nxt not in parents:
                    parents[nxt] = node_id
                    following.append(nxt)
        frontier = following
    return None


def _reachable_both_ways(
    start: str, downstream: dict[str, list[str]], upstream: dict[str, set[str]]
) -> set[str]:
    """The strongly connected group of ``start``: it is reported once, not once per member."""

    def reach(edges: dict[str, Any]) -> set[str]:
        seen = {start}
        stack = [start]
        while stack:
            for nxt in edges.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    return reach(downstream) & reach(upstream)
