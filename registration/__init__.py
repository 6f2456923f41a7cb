"""Registration of what the images show to the preoperative model (ultrasound 3D, fluoroscopy
2D/3D, rigid and deformable), with the quality of every estimate.

The preoperative model comes first: ``case.load_case(folder)`` reads the structures (surface
meshes, or a label volume's surfaces) and named targets of a case in RAS mm, from an ``igtflow
phantom export`` folder or a folder of Slicer exports; ``preop_mesh.load_mesh``,
``preop_volume.load_label_volume`` and ``label_surfaces.surfaces_from_labels`` read one file.

Fluoroscopy: ``fluoro_registration.FluoroRegistrar(case).update(labels)`` fits the model's
outlines to a segmented frame under the C-arm geometry of its ``meta`` and gives the
``ModelToReference`` pose with the depth uncertainty that one view leaves.

Node types (``nodes/``): ``register-us`` and ``register-fluoro`` (the registrars on a stream of
segmented frames, with their validity and staleness said) and ``shift-monitor``;
``phantom_preop.phantom_preop(seed)`` is the phantom's case without a folder.
"""
