"""Segmentation and deformation-tracking networks, their training on the phantom and their nodes.

Its label ids are the phantom's (``igtflow.stream.phantom.anatomy.LABEL_NAMES``). A model is a
card (``card.py``) beside its weights; ``inference.py`` runs it, ``frames.py`` and ``outputs.py``
turn frames into its input and its output into messages, and the nodes ``segment`` and
``track`` (``nodes/``) put them in a graph. ``bench.py`` times them beside their baselines.
"""
