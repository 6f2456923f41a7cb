"""OpenIGTLink: the wire protocol 3D Slicer, PLUS and AR headsets speak."""
