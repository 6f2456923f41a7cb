"""The preoperative surface as a registration target, with its closest-point lookup paid once.

The model is fixed for a whole case while the points to register change at every update, so
:class:`ModelTarget` precomputes, once per model, a voxel grid over the model's bounding box
widened by ``band_mm``: each cell stores the tangent plane (unit normal ``n`` and offset
``n·q``) of the model point ``q`` nearest to the cell's centre. An ICP iteration then needs no
search at all: it floors the moving points to cells and gathers one plane each (a vectorised
lookup of 16 bytes per point), and the point-to-plane residual is ``n·p − offset``.

Why a plane per cell and not the nearest point itself: point-to-plane residuals hardly change
when the foot point slides along the surface, so the nearest point *to the cell centre* (up to
``cell_mm·√3/2`` from the query) gives almost the residual of the exact nearest point. On the
phantom's organ with a 2 mm grid, the registration is as accurate as Open3D's exact k-d tree
search on the same points (``igtflow bench registration`` measures both). Cells farther than
``band_mm`` from the surface, and everything outside the grid, hold no plane: points there get
no correspondence (the grid's outer layer is kept empty, so clipping an index to the grid lands
in an empty cell).

For the last, exact step the target also keeps, per cell, the model point nearest its centre
and, per model point, its ``NEIGHBOURS`` nearest model points: :meth:`ModelTarget.closest` walks
``HOPS`` hops over that graph, which reaches a point's nearest model point from anywhere in its
cell where the model is sampled at about 1 mm (one hop does not: measured by the TRE it gives).

Building costs one nearest-neighbour query per cell (Open3D's tensor ``NearestNeighborSearch``,
in batches) plus fitting each model normal to its neighbours: about 1.5 s for the 150 mm organ
(37 000 points) at 2 mm cells and a 25 mm band (0.58 M cells, 9 MB), on one thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

NO_PLANE_OFFSET = 1.0e9  # offset of an empty cell: its residual is huge, never a correspondence
NEIGHBOURS = 8  # model neighbours looked at per hop when walking to a point's nearest
COLUMN_MASK = 15  # NEIGHBOURS (a power of two) must fit in these low bits
COLUMNS = np.arange(NEIGHBOURS, dtype=np.int32)
HOPS = 2  # hops from the cell's point: enough to reach the nearest from anywhere in the cell
BATCH_CELLS = 1 << 19  # nearest-neighbour queries per batch, to bound the memory of a build


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points drawn uniformly by area on a triangle mesh, with their face normals.

    Face normals are exact for the flat triangle a point lies on (vertex normals of a coarse
    mesh are averages), and their sign follows the triangles' winding."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cross = np.cross(b - a, c - a)
    area = np.linalg.norm(cross, axis=1)
    keep = area > 0
    if not keep.any():
        raise ValueError("the mesh has no triangle with a non-zero area")
    face = rng.choice(np.flatnonzero(keep), size=count, p=area[keep] / area[keep].sum())
    u, w = rng.random(count), rng.random(count)
    flip = u + w > 1  # fold the unit square onto the triangle
    u[flip], w[flip] = 1 - u[flip], 1 - w[flip]
    points = a[face] + u[:, None] * (b[face] - a[face]) + w[:, None] * (c[face] - a[face])
    return points, cross[face] / area[face, None]


def mesh_area(vertices: np.ndarray, faces: np.ndarray) -> float:
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    return float(
        0.5
        * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1).sum()
    )


@dataclass(frozen=True, eq=False)
class ModelTarget:
    """A model surface (points with unit normals, mm) and its plane grid; build it once per model.

    Use :meth:`from_mesh` or :meth:`from_points`. ``planes`` is the flat C-order grid of
    ``shape`` cells, each ``[nx, ny, nz, offset]`` float32; cell ``ijk`` is centred at
    ``origin + cell_mm * ijk``."""

    points: np.ndarray
    normals: np.ndarray
    cell_mm: float
    band_mm: float
    origin: np.ndarray
    shape: tuple[int, int, int]
    planes: np.ndarray
    build_s: float
    strides: np.ndarray = field(repr=False)
    nearest: np.ndarray = field(repr=False)  # per cell: the model point nearest its centre
    neighbours: np.ndarray = field(repr=False)  # per model point: its NEIGHBOURS nearest (int32)
    coordinates: np.ndarray = field(repr=False)  # the model points as 3×M float32 rows
    _row_starts: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.intp))

    @classmethod
    def from_points(
        cls,
        points: np.ndarray,
        normals: np.ndarray,
        cell_mm: float = 2.0,
        band_mm: float = 25.0,
        normal_neighbours: int = 30,
    ) -> ModelTarget:
        """Target from surface points and their normals (normalised here). With
        ``normal_neighbours`` > 0 each normal is replaced by the plane fitted to that many nearest
        points (Open3D's ``estimate_normals``), keeping the given normal's side: a smoother
        tangent plane than a facet's, which converges in fewer iterations and fits better."""
        start = time.perf_counter()
        points = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        normals = np.ascontiguousarray(normals, dtype=np.float64).reshape(-1, 3)
        if len(points) < 3 or len(normals) != len(points):
            raise ValueError(
                f"a model target needs at least 3 points with one normal each, got "
                f"{len(points)} points and {len(normals)} normals"
            )
        length = np.linalg.norm(normals, axis=1)
        if not np.all(length > 0):
            raise ValueError("every model normal must be non-zero")
        normals = normals / length[:, None]
        if normal_neighbours > 0:
            normals = _fitted_normals(points, normals, normal_neighbours)
        if cell_mm <= 0 or band_mm <= 0:
            raise ValueError(f"cell_mm and band_mm must be > 0, got {cell_mm} and {band_mm}")
        # One empty layer of cells beyond the band on every side: clipped indices land there.
        origin = points.min(axis=0) - band_mm - cell_mm
        shape = tuple(
            int(n) for n in np.ceil((points.max(axis=0) + band_mm - origin) / cell_mm) + 2
        )
        planes, nearest, neighbours = _plane_grid(points, normals, origin, shape, cell_mm, band_mm)
        strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.intp)
        return cls(
            points=points,
            normals=normals,
            cell_mm=float(cell_mm),
            band_mm=float(band_mm),
            origin=origin,
            shape=shape,  # type: ignore[arg-type]
            planes=planes,
            build_s=time.perf_counter() - start,
            strides=strides,
            nearest=nearest,
            neighbours=neighbours,
            coordinates=np.ascontiguousarray(points.T, dtype=np.float32),
        )

    @classmethod
    def from_mesh(
        cls,
        vertices: np.ndarray,
        faces: np.ndarray,
        spacing_mm: float = 1.0,
        cell_mm: float = 2.0,
        band_mm: float = 25.0,
        normal_neighbours: int = 30,
        seed: int = 0,
    ) -> ModelTarget:
        """Target from a triangle mesh, sampled at about one point per ``spacing_mm``²."""
        count = max(1000, round(mesh_area(vertices, faces) / spacing_mm**2))
        points, normals = sample_surface(vertices, faces, count, np.random.default_rng(seed))
        return cls.from_points(points, normals, cell_mm, band_mm, normal_neighbours)

    @property
    def center(self) -> np.ndarray:
        return self.points.mean(axis=0)

    @property
    def size_mm(self) -> float:
        """Diagonal of the model's bounding box."""
        return float(np.linalg.norm(self.points.max(axis=0) - self.points.min(axis=0)))

    def cells_of(self, points: np.ndarray) -> np.ndarray:
        """Flat cell index of each point (…×3 mm); points outside the grid get an empty cell."""
        ijk = ((points - self.origin) * (1.0 / self.cell_mm) + 0.5).astype(np.intp)
        np.clip(ijk, 0, np.array(self.shape) - 1, out=ijk)
        return ijk @ self.strides

    def closest(self, rows: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """Index of the model point nearest each point (3×N rows, in ``cells``): a walk from
        the cell's point over the model's neighbour graph, ``HOPS`` hops of ``NEIGHBOURS``."""
        if len(self._row_starts) < len(cells):  # grown, never shrunk: one array per target
            object.__setattr__(self, "_row_starts", np.arange(len(cells)) * NEIGHBOURS)
        best = np.take(self.nearest, cells)
        x, y, z = self.coordinates
        px, py, pz = rows.astype(np.float32)[:, :, None]
        for _ in range(HOPS):  # np.take: several times faster than fancy indexing here
            candidates = np.take(self.neighbours, best, axis=0)  # N×k, the current best first
            d2 = np.square(np.take(x, candidates) - px)
            d2 += np.square(np.take(y, candidates) - py)
            d2 += np.square(np.take(z, candidates) - pz)
            # argmin along a short axis is slow in NumPy: a min over keys instead, each key the
            # squared distance's bits (positive floats order as integers) with its column in
            # the low bits (their lost precision is far below a micrometre).
            keys = d2.view(np.int32) & ~COLUMN_MASK
            keys |= COLUMNS
            width = NEIGHBOURS
            while width > 1:  # halving minima: a reduction along a short axis is slower
                width //= 2
                keys = np.minimum(keys[:, :width], keys[:, width : 2 * width])
            column = keys[:, 0] & COLUMN_MASK
            best = np.take(candidates.ravel(), self._row_starts[: len(column)] + column)
        return best

    def residuals(self, points: np.ndarray) -> np.ndarray:
        """Signed point-to-plane distance (mm) of each point to the model; NaN where the point
        is farther than the band from the model (no correspondence)."""
        plane = self.planes[self.cells_of(points)]
        r = np.einsum("ij,ij->i", plane[:, :3], points) - plane[:, 3]
        r[plane[:, 3] >= NO_PLANE_OFFSET] = np.nan
        return r


def _fitted_normals(points: np.ndarray, normals: np.ndarray, neighbours: int) -> np.ndarray:
    """Normals of planes fitted to each point's neighbours, on the side of the given normals."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(min(neighbours, len(points))))
    fitted = np.asarray(cloud.normals, dtype=np.float64)
    fitted *= np.sign(np.einsum("ij,ij->i", fitted, normals) + 1e-12)[:, None]
    return fitted


def _plane_grid(
    points: np.ndarray,
    normals: np.ndarray,
    origin: np.ndarray,
    shape: tuple[int, ...],
    cell_mm: float,
    band_mm: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every cell centre, the tangent plane of the nearest model point (empty beyond band)."""
    import open3d as o3d

    search = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(points.astype(np.float32)))
    search.knn_index()
    axes = [(origin[d] + cell_mm * np.arange(shape[d])).astype(np.float32) for d in range(3)]
    cells = int(np.prod(shape))
    nearest = np.empty(cells, dtype=np.int64)
    distance2 = np.empty(cells, dtype=np.float32)
    plane_cells = shape[1] * shape[2]
    rows = max(1, BATCH_CELLS // plane_cells)
    j, k = np.meshgrid(axes[1], axes[2], indexing="ij")
    for i0 in range(0, shape[0], rows):
        i1 = min(shape[0], i0 + rows)
        centres = np.empty((i1 - i0, plane_cells, 3), dtype=np.float32)
        centres[:, :, 0] = axes[0][i0:i1, None]
        centres[:, :, 1] = j.ravel()
        centres[:, :, 2] = k.ravel()
        index, d2 = search.knn_search(o3d.core.Tensor(centres.reshape(-1, 3)), 1)
        nearest[i0 * plane_cells : i1 * plane_cells] = index.numpy()[:, 0]
        distance2[i0 * plane_cells : i1 * plane_cells] = d2.numpy()[:, 0]
    planes = np.empty((cells, 4), dtype=np.float32)
    planes[:, :3] = normals[nearest]
    planes[:, 3] = np.einsum("ij,ij->i", normals[nearest], points[nearest])
    far = distance2 > band_mm**2
    planes[far] = (0.0, 0.0, 0.0, NO_PLANE_OFFSET)
    grid = planes.reshape(*shape, 4)
    for axis in range(3):
        edge: list[slice | int] = [slice(None)] * 3
        for side in (0, -1):
            edge[axis] = side
            grid[tuple(edge)] = (0.0, 0.0, 0.0, NO_PLANE_OFFSET)
    neighbours, _ = search.knn_search(o3d.core.Tensor(points.astype(np.float32)), NEIGHBOURS)
    return planes, nearest.astype(np.int32), neighbours.numpy().astype(np.int32)
