"""Parameter values checked against a node's ``setup`` signature: coerced, and named in errors.

The graph validator checks every ``params:`` value with these before any process starts, and
:func:`check_params` does the same for a node made without a graph (offline conversion, tests),
so a bad value is refused with the same words wherever it comes from.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import typing
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from igtflow.stream.node import Node, Param, node_params

QUOTE_CHARS = 40


def quote(value: Any, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters, so a message never embeds a whole document."""
    if isinstance(value, list | dict | tuple) and len(value) > limit:
        kind = type(value).__name__
        return f"<a {kind} of {len(value)} items>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def suggest(word: str, choices: Iterable[str], listing: str) -> str:
    """'; did you mean 'x'?' for a close match, else the list of choices (when named)."""
    options = [str(c) for c in choices]
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if matches:
        return f"; did you mean {matches[0]!r}?"
    if listing and options:
        return f" ({listing}: {', '.join(options)})"
    return ""


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


def check_params(
    cls: type[Node], params: dict[str, Any], node_id: str, uses: str | None = None
) -> dict[str, Any]:
    """``params`` of a node ``node_id`` of type ``cls``, each coerced to its declared type.

    Raises ValueError at the first unknown, missing or mistyped parameter, worded as the graph
    validator words it; ``uses`` is how the message names the type (default ``module:Class``).
    """
    uses = uses or f"{cls.__module__}:{cls.__qualname__}"
    declared = declared_params(cls)
    label = repr(node_id)
    for key in params:
        if key not in declared:
            message = f"node {label} ({uses}) has no parameter {quote(key)}"
            if not declared:
                raise ValueError(f"{message} (it takes none)")
            raise ValueError(message + suggest(str(key), declared, "parameters"))
    for name, param in declared.items():
        if param.required and name not in params:
            wanted = f"{quote(name)} ({type_name(param)})"
            raise ValueError(f"node {label} ({uses}) needs parameter {wanted}")
    checked: dict[str, Any] = {}
    for key, value in params.items():
        try:
            checked[key] = coerce(declared[key], value)
        except ValueError as exc:
            raise ValueError(f"parameter {quote(key)} of node {label} {exc}") from None
    return checked


def is_int(value: Any) -> bool:
    """A whole number as YAML gives it; ``true`` is not 1 here."""
    return isinstance(value, int) and not isinstance(value, bool)
