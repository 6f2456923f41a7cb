"""Built-in nodes of the render layer (OpenIGTLink, overlay, 3D scene), by their ``uses:`` names."""

NODES: dict[str, str] = {
    "igtl-server": "igtflow.render.nodes.igtl_server:IgtlServerNode",
    "igtl-client": "igtflow.render.nodes.igtl_client:IgtlClientNode",
    "igtl-source": "igtflow.render.nodes.igtl_source:IgtlSource",
}
