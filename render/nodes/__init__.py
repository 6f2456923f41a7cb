"""Built-in nodes of the render layer (OpenIGTLink, overlay, 3D scene), by their ``uses:`` names."""

NODES: dict[str, str] = {}
