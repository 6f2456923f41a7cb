"""Parameter values as a node's ``setup`` annotates them: coerced, checked, and named in errors.

A graph's ``params:`` and ``--set`` values arrive as YAML scalars; each is checked against the
type (and constraints) its node declares before any process starts, with pydantic doing the
checking and a message an integrator can act on when it fails.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Literal

from igtflow.launch.graph_issues import suggest
from igtflow.launch.safe_yaml import quote
from igtflow.stream.node import Node, Param, node_params
from pydantic import TypeAdapter, ValidationError


@functools.cache
def declared_params(cls: type[Node]) -> dict[str, Param]:
    """``node_params`` once per node type: a big graph repeats a few types many times."""
    return node_params(cls)


# Building a pydantic validator costs ~0.15 ms; a thousand-node graph needs a handful of kinds.
_ADAPTERS: dict[int, tuple[Param, TypeAdapter[Any] | None]] = {}


def _adapter(param: Param) -> TypeAdapter[Any] | None:
    """The validator of ``param``'s annotation, built once per declared parameter."""
    cached = _ADAPTERS.get(id(param))
    if cached is not None and cached[0] is param:
        return cached[1]
    try:
        adapter: TypeAdapter[Any] | None = TypeAdapter(param.annotation)
    except Exception:
        adapter = None
    _ADAPTERS[id(param)] = (param, adapter)
    return adapter


def coerce(param: Param, value: Any) -> Any:
    """``value`` as the type ``setup`` annotates; ValueError says what was expected."""
    annotation = param.annotation
    if annotation is Any or annotation is inspect.Parameter.empty:
        return value
    adapter = _adapter(param)
    if adapter is None:  # an annotation pydantic cannot check is taken on trust
        return value
    try:
        result = adapter.validate_python(value)
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"]
        detail = f" ({msg[:1].lower()}{msg[1:]})"
        if typing.get_origin(annotation) is Literal:
            # The choices are already in the type name; a close one is the useful hint.
            choices = [str(a) for a in typing.get_args(annotation)]
            detail = suggest(value, choices, "") if isinstance(value, str) else ""
        raise ValueError(f"expects {type_name(param)}, got {quote(value)}{detail}") from None
    if isinstance(value, bool) and not isinstance(result, bool):
        raise ValueError(f"expects {type_name(param)}, got {quote(value)} (a yes/no value)")
    return result


def type_name(param: Param) -> str:
    """How an error names a parameter's type: ``int``, ``tuple[int, int]``, ``one of 'a', 'b'``."""
    annotation = param.annotation
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    return param.type_name


def is_int(value: Any) -> bool:
    """A whole number as YAML gives it; ``true`` is not 1 here."""
    return isinstance(value, int) and not isinstance(value, bool)
