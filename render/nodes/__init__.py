"""Built-in nodes of the render layer: OpenIGTLink, overlay, 3D scene.

Each is registered under its ``uses:`` name in pyproject.toml's ``igtflow.nodes`` entry points.
"""
