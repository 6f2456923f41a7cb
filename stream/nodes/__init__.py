"""Built-in nodes of the stream layer, by the short names graphs use in ``uses:``."""

NODES: dict[str, str] = {
    "synthetic-image": "igtflow.stream.nodes.synthetic:SyntheticImage",
    "passthrough": "igtflow.stream.nodes.passthrough:PassThrough",
    "stats": "igtflow.stream.nodes.stats:StatsSink",
    "record": "igtflow.stream.nodes.record:Record",
    "phantom-us": "igtflow.stream.nodes.phantom_us:PhantomUS",
    "phantom-fluoro": "igtflow.stream.nodes.phantom_fluoro:PhantomFluoro",
}
