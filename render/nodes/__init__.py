"""Built-in nodes of the render layer (OpenIGTLink, overlay, 3D scene), by their ``uses:`` names."""

NODES: dict[str, str] = {
    "overlay": "igtflow.render.nodes.overlay:Overlay",
    "scene3d": "igtflow.render.nodes.scene3d:Scene3D",
}
