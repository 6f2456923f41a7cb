"""The node API: one small class per node; the runtime owns sockets, timing, stats and restarts.

A node declares ``inputs`` and ``outputs`` (name → message kind), takes its parameters through the
signature of ``setup`` and handles each input in ``on_<input>``. Two bases add a timer:

- :class:`Ticking`: ``tick()`` is also called ``rate_hz`` times a second, beside the inputs (an
  overlay redraws a frozen feed so that it turns stale);
- :class:`Source` (a Ticking node): produces data on its own and has no inputs; it is started
  when the graph goes, paused with the graph, and says ``finished()`` at the end of its data
  (EOS). Sources, and only them, are where the supervisor sees data start (``NodeSpec.is_source``:
  paused, waited for to drain) and what a replay stands in for; a graph that wires an input into
  one is rejected.

Every parameter the graph gives (and every default of one it leaves out) is an attribute of the
node before ``setup`` runs: ``setup`` may read ``self.threshold`` as well as its argument, and a
handler reads it the same way later. :func:`create_node` is that one way of making a node, used
by node processes, offline conversion and ``igtflow.stream.testing``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Protocol

import numpy as np
from pydantic import Field

from igtflow.stream.messages import Message, Status

WILDCARD = "*"
# Path of the running graph's YAML, set by the launcher for nodes that store it (recorders).
GRAPH_ENV = "IGTFLOW_GRAPH"
# Every node can raise alarms (losses, failures) on this output without declaring it.
IMPLICIT_OUTPUTS: dict[str, type[Message]] = {"status": Status}


# Constrained parameter types shared by many nodes: ``igtflow validate`` rejects a value outside
# them at its line, and ``igtflow nodes`` shows the bounds.
Rate = Annotated[float, Field(ge=0, le=10_000)]
Port = Annotated[int, Field(ge=1, le=65535)]
PortOrAny = Annotated[int, Field(ge=0, le=65535)]  # 0: let the system pick a free port
Pixels = Annotated[int, Field(ge=1, le=16384)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # numpy seeds are 32-bit


class PermanentError(Exception):
    """A fault no restart can fix (port in use, file missing, bad model); raise it from ``setup``.

    Its text says what is wrong and what to do. The runtime logs it once without a traceback,
    the supervisor does not restart the node, and the run exits non-zero.
    """


class Emitter(Protocol):
    """What a node needs from the runtime; tests can plug in a plain collector."""

    def emit(self, output: str, message: Message) -> None: ...

    def new_frame(self, output: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class ImageSpec:
    """What the images on an output will be, known from the node's parameters before it runs."""

    height: int
    width: int
    modality: str
    dtype: str = "uint8"


class Node:
    """Base of every node. Subclasses set ``inputs``/``outputs`` and write ``on_<input>``."""

    inputs: ClassVar[dict[str, type[Message]]] = {}
    outputs: ClassVar[dict[str, type[Message]]] = {}

    id: str = "node"
    lockstep: bool = False  # set by the runtime: an offline, deterministic replay is running
    restart_count: int = 0  # set by the runtime: 0 in the first process, n after n restarts
    # Set by the runtime: the files earlier processes of this node reported (``report_file``).
    earlier_files: tuple[dict[str, str], ...] = ()
    # A sink that knows better than the runtime what a restart cost it (a recorder: what its
    # file kept) reports its restart gaps itself with ``report_gap``.
    reports_own_gaps: ClassVar[bool] = False
    # "background": the node's process runs at a lower OS priority unless its graph entry says
    # otherwise (a 3D view must never take CPU from the live path; see launch.graph.Priority).
    priority: ClassVar[Literal["normal", "background"]] = "normal"
    log: logging.Logger = logging.getLogger("igtflow.node")
    _emitter: Emitter | None = None

    @classmethod
    def outputs_for(cls, node_id: str, params: dict[str, Any]) -> dict[str, type[Message]]:
        """The outputs a node of this type has with ``params``: ``outputs`` unless a node's
        outputs depend on its parameters (a replay has one per recorded topic). Raise
        ``ValueError`` with a readable message when the parameters make that impossible.
        """
        return dict(cls.outputs)

    def setup(self) -> None:
        """Called once in the node process with the graph's parameters, which are already set
        as attributes of the node (``self.name``) when it runs."""

    @classmethod
    def check_wiring(cls, params: dict[str, Any], input_names: list[str]) -> list[str]:
        """Problems only this node type can see in its wiring, found by ``igtflow validate``.

        Called once the graph is wired, with the node's checked parameters and the names of its
        inputs (wildcards expanded); each text returned is reported at the node's line.
        """
        return []

    @classmethod
    def image_spec(cls, output: str, params: dict[str, Any]) -> ImageSpec | None:
        """Size, modality and dtype of the images on ``output`` where ``params`` fix them (a
        phantom's frames), for downstream checks by ``igtflow validate``; None when unknown."""
        return None

    @classmethod
    def check_upstream(
        cls, params: dict[str, Any], upstream: dict[str, ImageSpec | None]
    ) -> list[tuple[str, str]]:
        """Problems of this node's parameters with what its inputs will carry, found by
        ``igtflow validate`` (a model card that does not fit the frames wired to it).

        ``upstream`` maps each wired input to the :meth:`image_spec` of the output it reads (None
        where unknown). Each problem is ``(parameter, text)``, reported at that parameter's line
        (the node's line for ``""``).
        """
        return []

    def teardown(self) -> None:
        """Called once on a clean stop; release devices and files here."""

    def on_message(self, input_name: str, message: Message) -> None:
        """Fallback for inputs without an ``on_<input>`` handler (wildcard inputs land here)."""
        raise NotImplementedError(f"{type(self).__name__} has no handler for input {input_name!r}")

    def emit(self, output: str, message: Message) -> None:
        """Publish ``message`` on ``output``; the runtime stamps topic, seq and the trace hop."""
        if output not in self.outputs and output not in IMPLICIT_OUTPUTS:
            raise KeyError(f"{type(self).__name__} has no output {output!r} ({list(self.outputs)})")
        if self._emitter is None:
            raise RuntimeError("emit() called outside a running graph")
        self._emitter.emit(output, message)

    def report_gap(self, topic: str, start_ns: int, end_ns: int, frames: int) -> None:
        """Report that a restart of this node lost ``frames`` messages of ``topic`` captured
        between ``start_ns`` and ``end_ns``: counted in the run summary, raised as an alarm."""
        report = getattr(self._emitter, "restart_gap", None)
        if report is not None:  # outside a running graph there is no run to count it in
            report(topic, start_ns, end_ns, frames)

    def alarm(self, code: str, text: str, level: str = "warn", **fields: Any) -> None:
        """Raise an alarm the whole run sees: logged, in the status table (last alarm), and a
        ``Status`` on this node's ``status`` output (overlay, Slicer); ``fields`` go in its meta."""
        raise_alarm = getattr(self._emitter, "alarm", None)
        if raise_alarm is not None:
            raise_alarm(code, text, level, **fields)
            return
        getattr(self.log, "error" if level == "error" else "warning")("%s: %s", code, text)
        if self._emitter is not None:  # a plain collector (tests): the Status is what it keeps
            status = Status(level=level, code=code, text=text, frame=self.id)
            self._emitter.emit("status", status.restamped(meta=fields) if fields else status)

    def report_file(self, path: str, state: str) -> None:
        """Tell the run about a file this node writes; ``state``: writing, closed or recovered.
        The run summary lists every file a run produced, in its last state. Thread-safe."""
        report = getattr(self._emitter, "report_file", None)
        if report is not None:
            report(path, state)

    def new_frame(self, output: str, shape: tuple[int, ...], dtype: Any = np.uint8) -> np.ndarray:
        """A writable array to fill and then emit on ``output`` with no copy (shared memory)."""
        if self._emitter is None:
            return np.empty(shape, dtype=dtype)
        return self._emitter.new_frame(output, shape, dtype)

    def handler(self, input_name: str) -> typing.Callable[[Message], None]:
        method = getattr(self, f"on_{input_name}", None)
        if method is not None:
            return method
        return lambda message: self.on_message(input_name, message)


class Ticking(Node):
    """A node whose ``tick()`` the runtime calls ``rate_hz`` times a second, beside its inputs.

    Ticks begin once the graph has started (GO) and every output has its consumers. ``tick``
    may return the seconds until it wants to be called again instead (a replay follows the
    recorded timing this way). In lockstep, a tick that sent anything is followed by the next
    only once the graph has handled it. A node that produces data on its own, with no inputs,
    is a :class:`Source` instead.
    """

    rate_hz: float = 30.0
    # What rate_hz means for this node, as ``igtflow nodes`` shows it.
    rate_hz_doc: ClassVar[str] = "ticks per second (0 = as fast as possible)"

    def tick(self) -> float | None:
        raise NotImplementedError


class Source(Ticking):
    """A node that produces messages on its own, with no inputs: ``tick()`` makes them.

    Started when the graph goes and paused with it; it calls ``finished()`` when it has nothing
    more to send (end of a file), which tells the launcher it may stop once the graph drained.
    """

    _finished: bool = False
    # A source whose frames may rightly repeat exactly (a fixed test scene, a still image): the
    # frozen-source watchdog (``frozen_watch.py``) leaves its outputs alone.
    repeats_frames: ClassVar[bool] = False

    def finished(self) -> None:
        """Say that this source has sent everything (end of a file): the launcher can stop."""
        self._finished = True


def load_class(import_path: str) -> type[Node]:
    """Import the node class a ``module:Class`` path names.

    Raises ImportError when the module is missing and LookupError when it has no such Node.
    """
    module_name, _, class_name = import_path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise LookupError(f"{module_name} has no Node class {class_name!r}")
    return cls


def create_node(
    cls: type[Node],
    node_id: str,
    params: dict[str, Any],
    emitter: Emitter | None,
    *,
    log: logging.Logger | None = None,
    lockstep: bool = False,
    restart_count: int = 0,
    earlier_files: Iterable[dict[str, str]] = (),
) -> Node:
    """A ``cls`` node named ``node_id``, set up with ``params`` and emitting into ``emitter``.

    ``params`` are taken as checked (the graph validator or ``check_params`` did it); the
    defaults of those left out are filled in, each is set as an attribute, then ``setup`` is
    called with the ones its signature names. Whatever ``setup`` raises is raised here.
    """
    node = cls()
    node.id = node_id
    node.log = log or logging.getLogger(f"igtflow.node.{node_id}")
    node._emitter = emitter
    node.lockstep = lockstep
    node.restart_count = restart_count
    node.earlier_files = tuple(dict(f) for f in earlier_files)
    values = {
        name: params.get(name, p.default)
        for name, p in node_params(cls).items()
        if name in params or not p.required
    }
    for name, value in values.items():
        setattr(node, name, value)
    accepted = inspect.signature(cls.setup).parameters
    node.setup(**{k: v for k, v in values.items() if k in accepted})
    return node


def all_outputs(
    cls: type[Node], node_id: str = "", params: dict[str, Any] | None = None
) -> dict[str, type[Message]]:
    """Outputs of a ``cls`` node (with ``params``) plus the implicit ``status`` every node has."""
    declared = cls.outputs if params is None else cls.outputs_for(node_id, params)
    return {**declared, **{k: v for k, v in IMPLICIT_OUTPUTS.items() if k not in declared}}


@dataclass(frozen=True)
class Param:
    """One parameter of a node type, read from the signature of its ``setup``."""

    name: str
    annotation: Any
    default: Any
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    @property
    def type_name(self) -> str:
        """The type with its constraints, as people read it: ``int 1..65535``, ``'a' | 'b'``."""
        return describe_type(self.annotation)


# How ``igtflow nodes`` and validation messages write each bound of a constrained number.
_BOUNDS = (("gt", "> {}"), ("ge", ">= {}"), ("lt", "< {}"), ("le", "<= {}"))


def describe_type(annotation: Any) -> str:
    """``annotation`` in words: base type, choices of a ``Literal``, bounds of an ``Annotated``."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "any"
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is Annotated:
        base, *extras = typing.get_args(annotation)
        bounds: dict[str, Any] = {}
        for extra in extras:
            # pydantic's Field keeps its bounds as annotated_types objects in ``metadata``.
            for item in [extra, *getattr(extra, "metadata", [])]:
                for name, _ in _BOUNDS:
                    if getattr(item, name, None) is not None:
                        bounds[name] = getattr(item, name)
        name = describe_type(base)
        if "ge" in bounds and "le" in bounds:
            return f"{name} {bounds['ge']}..{bounds['le']}"
        words = [form.format(bounds[key]) for key, form in _BOUNDS if key in bounds]
        return " ".join([name, *words]) if words else name
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        return " | ".join(
            "none" if arg is type(None) else describe_type(arg)
            for arg in typing.get_args(annotation)
        )
    if origin is not None:
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", None) or str(annotation)


_DOC_LINE = re.compile(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


def _param_docs(doc: str | None) -> dict[str, str]:
    """``name: text`` lines of a docstring, the way setup() documents its parameters."""
    docs: dict[str, str] = {}
    for line in (doc or "").splitlines():
        if match := _DOC_LINE.match(line):
            docs[match.group(1)] = match.group(2).strip()
    return docs


def node_params(cls: type[Node]) -> dict[str, Param]:
    """Every parameter a node type accepts, with type, default and doc, from ``setup``."""
    signature = inspect.signature(cls.setup)
    hints = typing.get_type_hints(cls.setup, include_extras=True)
    docs = _param_docs(cls.setup.__doc__)
    params: dict[str, Param] = {}
    if issubclass(cls, Ticking):
        params["rate_hz"] = Param("rate_hz", Rate, cls.rate_hz, cls.rate_hz_doc)
    for name, p in signature.parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        params[name] = Param(name, hints.get(name, p.annotation), p.default, docs.get(name, ""))
    return params


def node_summary(cls: type[Node]) -> str:
    """First line of the node's docstring: what ``igtflow nodes`` prints beside its name."""
    return (inspect.getdoc(cls) or "").splitlines()[0] if cls.__doc__ else ""
