"""Built-in nodes of the stream layer: sources, recording and replay, plumbing.

Each is registered under its ``uses:`` name in pyproject.toml's ``igtflow.nodes`` entry points.
"""
