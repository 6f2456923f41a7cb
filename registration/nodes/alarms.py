"""How a registration node says that its estimate may not be trusted, and when it may again.

A warning goes out as an alarm through the runtime (logged, counted in ``igtflow run``'s status
table, published on ``status``); a recovery, or any Status outside a running graph, is published
on ``status`` directly. Nodes raise one on each change of state, never per message, so a stream
of invalid estimates is said once and never floods.
"""

from __future__ import annotations

from typing import Any

from igtflow.stream.messages import Status
from igtflow.stream.node import Node


def say(node: Node, level: str, code: str, text: str, **fields: Any) -> None:
    """Publish ``text`` as a Status of ``level`` (ok, warn or error) and ``code`` from ``node``."""
    alarm = getattr(node._emitter, "alarm", None)
    if alarm is not None and level != "ok":
        alarm(code, text, level, **fields)
        return
    if level == "ok":
        node.log.info("%s: %s", code, text)
    else:
        node.log.warning("%s: %s", code, text)
    node.emit("status", Status(level=level, code=code, text=text, frame=node.id, meta=fields))
