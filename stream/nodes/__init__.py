"""Built-in nodes of the stream layer, by the short names graphs use in ``uses:``."""

NODES: dict[str, str] = {
    "synthetic-image": "igtflow.stream.nodes.synthetic:SyntheticImage",
    "passthrough": "igtflow.stream.nodes.passthrough:PassThrough",
    "stats": "igtflow.stream.nodes.stats:StatsSink",
    "record": "igtflow.stream.nodes.record:Record",
    "replay": "igtflow.stream.nodes.replay:Replay",
    "video": "igtflow.stream.nodes.video:VideoSource",
    "dicom": "igtflow.stream.nodes.dicom:DicomSource",
    "plus-sequence": "igtflow.stream.nodes.plus_sequence:PlusSequenceSource",
    "phantom-us": "igtflow.stream.nodes.phantom_us:PhantomUS",
    "phantom-fluoro": "igtflow.stream.nodes.phantom_fluoro:PhantomFluoro",
    "phantom-model": "igtflow.stream.nodes.phantom_model:PhantomModel",
}
