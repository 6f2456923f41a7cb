"""Graph texts the CLI derives from others: a recorder added, a recording put in a source's place.

The edits work on the YAML itself (ruamel round trip), so the validator still reports problems
against lines the user wrote, and the graph stored in a new recording reads like a graph file.
"""

from __future__ import annotations

import fnmatch
import io
from collections.abc import Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from igtflow.launch import registry, safe_yaml
from igtflow.launch.safe_yaml import YamlLimitError, quote
from igtflow.stream.node import Source
from igtflow.stream.nodes.replay import output_name

RECORD_DEPTH = 256


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 100
    return yaml


def _load(text: str) -> CommentedMap:
    """The graph in ``text``, read within :mod:`safe_yaml`'s bounds; ValueError says why not."""
    try:
        doc = safe_yaml.load(text)
    except YamlLimitError as exc:
        raise ValueError(f"graph YAML, {exc}") from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise ValueError(f"graph YAML, line {line}: {quote(exc.problem, 80)}") from None
    except YAMLError as exc:
        raise ValueError(f"graph YAML: {quote(str(exc), 80)}") from None
    if not isinstance(doc, CommentedMap) or not isinstance(doc.get("nodes"), list):
        raise ValueError("a graph needs a mapping with a 'nodes' list")
    return doc


def _dump(doc: CommentedMap) -> str:
    stream = io.StringIO()
    _yaml().dump(doc, stream)
    return stream.getvalue()


def _free_id(nodes: Sequence[Any], wanted: str) -> str:
    taken = {n.get("id") for n in nodes if isinstance(n, dict)}
    candidate, n = wanted, 1
    while candidate in taken:
        n += 1
        candidate = f"{wanted}-{n}"
    return candidate


def with_recorder(text: str, path: str) -> str:
    """``text`` plus a ``record`` node writing every output of every node to ``path``."""
    doc = _load(text)
    nodes = doc["nodes"]
    node = CommentedMap()
    node["id"] = _free_id(nodes, "record")
    node["uses"] = "record"
    node["inputs"] = {"*": {"from": "*", "policy": "queue", "depth": RECORD_DEPTH}}
    node["params"] = {"path": str(path)}
    nodes.append(node)
    return _dump(doc)


def _is_source(node: Any) -> bool:
    """Whether a node of a stored graph is a Source, as ``NodeSpec.is_source`` says: by its type
    when that is a registered one (a stored graph is not trusted to name a module to import),
    else by having no inputs."""
    uses = node.get("uses")
    try:
        if isinstance(uses, str) and uses in registry.node_types():
            return issubclass(registry.load_node_class(uses), Source)
    except Exception:  # a type that cannot be loaded here is judged by its wiring
        pass
    return not node.get("inputs")


def source_topics(graph_text: str | None, recorded: Sequence[str]) -> list[str]:
    """Recorded topics of the graph's sources (the nodes that made data on their own),
    ``status`` aside."""
    plain = [t for t in recorded if not t.endswith("/status")]
    if not graph_text:
        return plain
    try:
        nodes = _load(graph_text)["nodes"]
    except Exception:  # a damaged stored graph: play everything
        return plain
    sources = {n.get("id") for n in nodes if isinstance(n, dict) and _is_source(n)}
    return [t for t in plain if t.partition("/")[0] in sources] or plain


def replay_graph(
    recording: str,
    graph_text: str | None,
    recorded: Sequence[str],
    patterns: Sequence[str] = (),
    params: dict[str, Any] | None = None,
    graph_name: str = "the graph",
) -> tuple[str, str]:
    """A graph where one ``replay`` node plays ``recording`` in place of the recorded sources.

    ``graph_text`` is the graph to run downstream (default: none, the replay alone). Nodes whose
    topics are replayed are taken out, and so are recorders (they would write over nothing new;
    add ``--record``). Every input that read a replayed topic reads the replay instead. Returns
    ``(graph text, replay node id)``; a ``graph_text`` that is not a graph is a ``ValueError``
    naming ``graph_name``.
    """
    selected = (
        [t for t in recorded if any(fnmatch.fnmatchcase(t, p) for p in patterns)]
        if patterns
        else source_topics(graph_text, recorded)
    )
    if not selected:
        raise ValueError(f"{recording}: no recorded topic matches {list(patterns)}")
    producers = sorted({t.partition("/")[0] for t in selected})
    try:
        doc = _load(graph_text) if graph_text else CommentedMap(name="replay", nodes=CommentedSeq())
    except (YAMLError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise ValueError(
            f"{graph_name} cannot be read ({detail}); replay with --alone, or give the graph "
            "to run with --graph FILE"
        ) from None
    kept = CommentedSeq(
        n
        for n in doc["nodes"]
        if isinstance(n, dict) and n.get("id") not in producers and n.get("uses") != "record"
    )
    replay_id = producers[0] if len(producers) == 1 else _free_id(kept, "replay")
    for node in kept:
        inputs = node.get("inputs")
        if isinstance(inputs, dict):
            for name, wire in inputs.items():
                inputs[name] = _rewired(wire, selected, replay_id)
    replay = CommentedMap()
    replay["id"] = replay_id
    replay["uses"] = "replay"
    replay["params"] = {"path": str(recording), "topics": list(selected), **(params or {})}
    kept.insert(0, replay)
    doc["nodes"] = kept
    doc["name"] = f"{doc.get('name', 'graph')}-replay"
    return _dump(doc), replay_id


def _rewired(wire: Any, selected: Sequence[str], replay_id: str) -> Any:
    ref = wire.get("from") if isinstance(wire, dict) else wire
    if not isinstance(ref, str) or ref not in selected:
        return wire
    new_ref = f"{replay_id}/{output_name(replay_id, ref)}"
    if isinstance(wire, dict):
        wire["from"] = new_ref
        return wire
    return new_ref


def without_nodes(text: str, uses: Sequence[str]) -> str:
    """``text`` with every node of a type in ``uses`` taken out, and what only they fed.

    Inputs that read a removed node are dropped; a node left with none of its inputs is removed
    too (and so on downstream); wildcard inputs (recorders, stats) stay. ``igtflow bench e2e``
    runs a guidance graph this way, without its networks and registration, as the framework's
    floor: the same sources, overlay, server and recorder, with nothing to compute in between.
    """
    doc = _load(text)
    nodes = [n for n in doc["nodes"] if isinstance(n, dict)]
    removed = {n.get("id") for n in nodes if n.get("uses") in set(uses)}
    changed = True
    while changed:
        changed = False
        for node in nodes:
            inputs = node.get("inputs")
            if node.get("id") in removed or not isinstance(inputs, dict):
                continue
            for name in [k for k, wire in inputs.items() if _reads(wire) in removed]:
                del inputs[name]
            if not inputs:
                removed.add(node.get("id"))
                changed = True
    doc["nodes"] = CommentedSeq(n for n in nodes if n.get("id") not in removed)
    return _dump(doc)


def _reads(wire: Any) -> str | None:
    """The node id an input wire reads from (None for a wildcard or something unreadable)."""
    ref = wire.get("from") if isinstance(wire, dict) else wire
    if not isinstance(ref, str) or "/" not in ref:
        return None
    return ref.partition("/")[0]
