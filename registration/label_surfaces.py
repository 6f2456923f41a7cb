"""Surfaces of the structures in a label volume: marching cubes, then windowed-sinc smoothing.

Each label becomes one closed surface in RAS mm: its voxels (cropped to their bounding box and
padded with background so the surface closes at the volume's edge) go through VTK's flying
edges at the half-way level, the vertices are placed by ``ijk_to_ras``, and a windowed-sinc
filter smooths the voxel steps away without shrinking the structure, as Slicer's segmentation
export does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from igtflow.registration.preop_model import SurfaceModel, build_surface
from igtflow.registration.preop_volume import LabelVolume
from igtflow.stream.phantom.anatomy import LABEL_NAMES


def surfaces_from_labels(
    volume: LabelVolume,
    names: Mapping[int, str] | None = None,
    smooth_iterations: int = 20,
    pass_band: float = 0.1,
    merge: Mapping[int, Sequence[int]] | None = None,
    max_triangles: int | None = None,
) -> dict[str, SurfaceModel]:
    """One SurfaceModel per named label present in the volume, {name: model}.

    ``names`` maps label values to structure names (default: every label present, named as the
    phantom names them, else ``label-<n>``). ``merge`` lets a structure enclose others, e.g.
    ``{1: [2, 3]}`` makes the organ's surface wrap its vessels and lesion instead of lining the
    holes they leave. ``smooth_iterations`` 0 keeps the voxel steps. ``max_triangles``
    decimates each surface to about that many triangles (quadric decimation).
    """
    present = [int(v) for v in np.unique(volume.labels) if v != 0]
    if names is None:
        names = {v: LABEL_NAMES.get(v, f"label-{v}") for v in present}
    surfaces = {}
    for value, name in names.items():
        if value not in present:
            continue
        values = [value, *((merge or {}).get(value, ()))]
        mask = np.isin(volume.labels, values)
        vertices, faces = _mask_surface(
            mask, volume.ijk_to_ras, smooth_iterations, pass_band, max_triangles
        )
        surfaces[name] = build_surface(name, vertices, faces, volume.source)
    return surfaces


def _bounding_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest index of the set voxels along each axis."""
    spans = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        spans.append(np.flatnonzero(mask.any(axis=others))[[0, -1]])
    return np.array([s[0] for s in spans]), np.array([s[1] for s in spans])


def _mask_surface(
    mask: np.ndarray,
    ijk_to_ras: np.ndarray,
    smooth_iterations: int,
    pass_band: float,
    max_triangles: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import (
        vtkFlyingEdges3D,
        vtkQuadricDecimation,
        vtkWindowedSincPolyDataFilter,
    )

    lo, hi = _bounding_box(mask)
    crop = np.pad(mask[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1], 1)
    image = vtkImageData()
    image.SetDimensions(*crop.shape)
    image.SetOrigin(*(lo - 1).astype(float))  # the surface comes out in voxel indices
    scalars = numpy_to_vtk(crop.ravel(order="F").astype(np.uint8), deep=True)
    image.GetPointData().SetScalars(scalars)
    edges = vtkFlyingEdges3D()
    edges.SetInputData(image)
    edges.SetValue(0, 0.5)
    edges.ComputeNormalsOff()
    edges.ComputeGradientsOff()
    edges.ComputeScalarsOff()
    edges.Update()
    surface: Any = edges.GetOutput()
    ijk = vtk_to_numpy(surface.GetPoints().GetData()).astype(np.float64)
    ras = ijk @ ijk_to_ras[:3, :3].T + ijk_to_ras[:3, 3]
    points = vtkPoints()
    points.SetData(numpy_to_vtk(ras, deep=True))
    surface.SetPoints(points)  # smoothing in mm: anisotropic voxels smooth evenly
    if smooth_iterations > 0:
        smooth = vtkWindowedSincPolyDataFilter()
        smooth.SetInputData(surface)
        smooth.SetNumberOfIterations(smooth_iterations)
        smooth.SetPassBand(pass_band)
        smooth.BoundarySmoothingOff()
        smooth.FeatureEdgeSmoothingOff()
        smooth.NonManifoldSmoothingOn()
        smooth.NormalizeCoordinatesOn()
        smooth.Update()
        surface = smooth.GetOutput()
    if max_triangles and surface.GetNumberOfPolys() > max_triangles:
        decimate = vtkQuadricDecimation()
        decimate.SetInputData(surface)
        decimate.SetTargetReduction(1.0 - max_triangles / surface.GetNumberOfPolys())
        decimate.Update()
        surface = decimate.GetOutput()
    vertices = vtk_to_numpy(surface.GetPoints().GetData()).astype(np.float64)
    faces = vtk_to_numpy(surface.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    return vertices, faces
