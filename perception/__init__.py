"""Segmentation and deformation-tracking networks, their training on the phantom and their nodes.

Its label ids are the phantom's (``igtflow.stream.phantom.anatomy.LABEL_NAMES``). It holds no node
types yet: the ready-made graphs draw the phantom's truth outputs (``truth_labels``,
``truth_flow``) where segmentation and tracking outputs will be wired.
"""
