"""Registration of what the images show to the preoperative model (ultrasound 3D, fluoroscopy
2D/3D, rigid and deformable), with the quality of every estimate.

It holds no node types yet: the phantom's model (``phantom-model``) and truth poses stand in for
registered ones in the ready-made graphs.
"""
