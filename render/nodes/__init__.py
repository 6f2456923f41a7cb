"""Built-in nodes of the render layer (OpenIGTLink, overlay, 3D scene), by their ``uses:`` names."""

NODES: dict[str, str] = {
    "overlay": "igtflow.render.nodes.overlay:Overlay",
    "scene3d": "igtflow.render.nodes.scene3d:Scene3D",
    "igtl-server": "igtflow.render.nodes.igtl_server:IgtlServerNode",
    "igtl-client": "igtflow.render.nodes.igtl_client:IgtlClientNode",
    "igtl-source": "igtflow.render.nodes.igtl_source:IgtlSource",
}
