"""Moved to :mod:`igtflow.stream.safe_yaml`, so that model cards (perception) read YAML within the
same bounds as graphs; imports from here keep working."""

from igtflow.stream.safe_yaml import (
    MAX_BYTES,
    MAX_EXPANDED,
    MAX_NESTING,
    MAX_NUMBER_CHARS,
    YamlLimitError,
    load,
    plain,
    quote,
    read_text,
)

__all__ = [
    "MAX_BYTES",
    "MAX_EXPANDED",
    "MAX_NESTING",
    "MAX_NUMBER_CHARS",
    "YamlLimitError",
    "load",
    "plain",
    "quote",
    "read_text",
]
