"""`Partition2D`: the exact partition of a plane into linear regions, as flat arrays.

Layout (the GeoArrow / shapely ragged-array layout for the rings):

* ``vertices (V, 2)`` float64 plane coordinates;
* ``face_offsets (F+1,)``, ``face_vertices (nnz,)``: counter-clockwise rings (not closed:
  the first vertex is not repeated);
* ``edges (E, 2)`` vertex ids; ``edge_faces (E, 2)``: the face on the left of
  ``edges[e, 0] -> edges[e, 1]`` and the face on the right (``-1`` outside the domain);
* ``edge_site (E,)``: the site (ReLU call) that created the edge (``-1`` for the domain
  boundary; saved files store it under ``edge_layer``, its former name, still an alias),
  ``edge_neuron (E,)``: the neuron within that site (or the domain side);
* ``patterns``: per site, the ``(F, ceil(size/8))`` uint8 patterns of the faces,
  bit-packed with ``numpy.packbits`` (big-endian bit order): bit ``k`` set means neuron
  ``k`` is active (pre-activation > 0) on the face. ``patterns[s]`` reads as that array;
  it is stored by reference (:class:`~reluscope.regions.patterns.PackedPatterns`: the
  distinct rows of each site and every face's row), as faces cut from one face share its
  earlier sites' patterns, and a wide site's rows hold only the neurons that vary over
  the domain (a :class:`~reluscope.regions.patterns.ColumnSubset`, with one reference row
  for the rest: a conv net's square around its data keeps ~1/10 of its neurons' bits).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reluscope._kernels.bits import unpack
from reluscope._kernels.rings import (
    locate_in_convex_rings,
    offsets_of,
    ring_edges,
    ring_ids,
    shoelace,
    site_of_label,
    vertex_means,
)
from reluscope._validation import check_int, describe, message
from reluscope.errors import InputValueError
from reluscope.geometry.plane import Plane
from reluscope.nets.sites import Site
from reluscope.regions._npz import (
    packed_patterns_from_arrays,
    patterns_to_arrays,
    read_npz,
    sites_from_meta,
    sites_meta,
    write_npz,
)
from reluscope.regions.patterns import PackedPatterns
from reluscope.regions.pools import keep_pool_switches

_FORMAT = "reluscope.Partition2D"
_FORMAT_VERSION = 2  # 2: pattern rows may be column subsets (1: always full)


@dataclass(frozen=True, eq=False)
class Partition2D:
    """Exact partition of a plane's domain into the linear regions of a network.

    See the module docstring for the array layout. Build one with
    :func:`reluscope.slice_regions`; load a saved one with :meth:`Partition2D.load`.
    """

    plane: Plane
    sites: tuple[Site, ...]
    vertices: np.ndarray
    face_offsets: np.ndarray
    face_vertices: np.ndarray
    edges: np.ndarray
    edge_faces: np.ndarray
    edge_site: np.ndarray
    edge_neuron: np.ndarray
    patterns: PackedPatterns
    n_degenerate: int = 0
    snap_rtol: float = 0.0
    #: Seconds spent per stage of the engine (diagnostics; not saved).
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # a tuple of dense per-site arrays (an earlier layout, a user's edit) is wrapped
        object.__setattr__(self, "patterns", PackedPatterns.wrap(self.patterns))

    @property
    def edge_layer(self) -> np.ndarray:
        """Former name of :attr:`edge_site` (it always held a site index, not a layer)."""
        return self.edge_site

    # ------------------------------------------------------------------ sizes
    @property
    def n_regions(self) -> int:
        """Number of linear regions (faces)."""
        return len(self.face_offsets) - 1

    @property
    def n_vertices(self) -> int:
        """Number of distinct vertices."""
        return len(self.vertices)

    @property
    def n_edges(self) -> int:
        """Number of edges (each shared edge counted once)."""
        return len(self.edges)

    def __len__(self) -> int:
        return self.n_regions

    def __repr__(self) -> str:
        sizes = ", ".join(str(s.size) for s in self.sites)
        return (f"Partition2D(n_regions={self.n_regions}, n_vertices={self.n_vertices}, "
                f"n_edges={self.n_edges}, sites=[{sizes}])")

    # ------------------------------------------------------------------ geometry
    def areas(self) -> np.ndarray:
        """Area of each region (shoelace formula), shape (F,), float64."""
        return shoelace(self.face_offsets, self.face_vertices, self.vertices)

    def interior_points(self) -> np.ndarray:
        """A point strictly inside each region (mean of its vertices), shape (F, 2)."""
        return vertex_means(self.face_offsets, self.face_vertices, self.vertices)

    def face(self, index: int) -> np.ndarray:
        """Vertices of region `index`, counter-clockwise, shape (k, 2)."""
        if not (-self.n_regions <= int(index) < self.n_regions):
            raise InputValueError(message("`index` of Partition2D.face",
                                          f"in [0, {self.n_regions})", repr(index),
                                          "Pass a valid region index."))
        i = int(index) % self.n_regions
        ring = self.face_vertices[self.face_offsets[i] : self.face_offsets[i + 1]]
        return self.vertices[ring]

    # ------------------------------------------------------------------ patterns
    def active(self, site: int) -> np.ndarray:
        """Activation pattern of one site for every region, shape (F, size), bool."""
        if not (0 <= int(site) < len(self.sites)):
            raise InputValueError(message("`site` of Partition2D.active",
                                          f"in [0, {len(self.sites)})", repr(site),
                                          "Sites are numbered in forward call order."))
        site = int(site)
        rows = unpack(self.patterns.distinct(site), self.sites[site].size)  # each shared row once
        owner = self.patterns.owner[site]
        return rows if owner is None else rows[owner]

    def region_of(self, points: Any, direct_limit: int = 64) -> np.ndarray:
        """Index of the region containing each point (plane coordinates), -1 if outside.

        Points on a shared boundary, or within ``1e-12 * diameter`` of the domain, get one
        of the adjacent regions. A few points are located directly (each region is convex:
        :func:`~reluscope._kernels.rings.locate_in_convex_rings`); more than
        ``direct_limit`` go through a shapely STRtree of the regions.

        Parameters
        ----------
        points : array-like, shape (N, 2)
        direct_limit : int
            Largest N located without building the spatial index.
        """
        import shapely

        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise InputValueError(message("`points` of Partition2D.region_of", "of shape (N, 2)",
                                          describe(pts), "Pass plane coordinates as rows."))
        limit = check_int(direct_limit, "`direct_limit` of Partition2D.region_of", low=0, example=64)
        if len(pts) <= limit:  # building the tree costs ~2 us per region
            return locate_in_convex_rings(self.face_offsets, self.face_vertices, self.vertices, pts,
                                          1e-12 * self.plane.diameter)
        tree = shapely.STRtree(self.to_shapely())
        idx = tree.query(shapely.points(pts), predicate="intersects")
        out = np.full(len(pts), -1, dtype=np.int64)
        out[idx[0][::-1]] = idx[1][::-1]
        return out

    # ------------------------------------------------------------------ interop
    def edge_switches(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every neuron that switches across each edge: a ragged list, CSR by edge.

        ``edge_site``/``edge_neuron`` name the neuron that *made* an edge; where several
        neurons have the same zero line (coincident neurons: a conv net on images with
        equal pixels, a per-channel PReLU) they all switch across it. They are read from
        the two faces' patterns, which are exact. A max-pool window whose argmax changes
        from candidate ``a`` to ``b`` switches once, at stage ``max(a, b)`` (see
        :mod:`reluscope.regions.pools`).

        Returns
        -------
        ptr : np.ndarray, shape (E + 1,), int64
            Edge ``e``'s switches are entries ``ptr[e]:ptr[e + 1]`` (none on the domain
            boundary).
        site, neuron : np.ndarray, shape (ptr[-1],), int64
            Sorted by site, then neuron, within each edge.
        """
        inner = np.flatnonzero(self.edge_faces[:, 1] >= 0)
        left, right = self.edge_faces[inner, 0], self.edge_faces[inner, 1]
        counts = np.zeros(len(inner), dtype=np.int64)
        for s in range(len(self.sites)):
            counts += self.patterns.flips(s, left, right)
        # one switch (almost every edge): the neuron that made it; several: read the bits
        single = np.flatnonzero(counts == 1)
        several = np.flatnonzero(counts > 1)
        pair, site, neuron = self.patterns.differing([s.size for s in self.sites], left[several],
                                                     right[several])
        real = keep_pool_switches(self.sites, pair, site, neuron)  # one per max-pool window
        pair, site, neuron = pair[real], site[real], neuron[real]
        rows = inner[np.concatenate([single, several[pair]])]
        site = np.concatenate([self.edge_site[inner][single], site]).astype(np.int64)
        neuron = np.concatenate([self.edge_neuron[inner][single], neuron]).astype(np.int64)
        order = np.lexsort((neuron, site, rows))
        return offsets_of(rows, self.n_edges), site[order], neuron[order]

    def to_shapely(self) -> np.ndarray:
        """The regions as an array of shapely Polygons (F,)."""
        import shapely

        closed_offsets = self.face_offsets + np.arange(self.n_regions + 1)
        ring = ring_ids(self.face_offsets)
        slots = np.arange(len(self.face_vertices))
        # each closed ring: its vertices, then its first vertex again
        order = np.concatenate([slots, self.face_offsets[:-1]])
        key = np.concatenate([closed_offsets[ring] + (slots - self.face_offsets[ring]),
                              closed_offsets[1:] - 1])
        coords = np.empty((len(order), 2))
        coords[key] = self.vertices[self.face_vertices[order]]
        return shapely.from_ragged_array(shapely.GeometryType.POLYGON, coords,
                                         (closed_offsets, np.arange(self.n_regions + 1)))

    def to_frame(self, model: torch.nn.Module | None = None) -> Any:
        """One row per region as a pandas DataFrame: area, perimeter, vertices, shape,
        centroid, an interior point, a pattern hash, active neurons per site and, with
        `model`, the predicted class and logits (see :func:`reluscope.metrics.tables.region_table`)."""
        from reluscope.metrics.tables import region_table  # metrics sit above regions: import late

        return region_table(self, model)

    @property
    def __geo_interface__(self) -> dict[str, Any]:
        """GeoJSON FeatureCollection of the regions (plane coordinates), with each region's
        index and area as properties (for shapely, geopandas and GIS tools)."""
        areas = self.areas()
        rings = np.split(self.face_vertices, self.face_offsets[1:-1])
        features = [{"type": "Feature", "properties": {"region": i, "area": float(areas[i])},
                     "geometry": {"type": "Polygon",
                                  "coordinates": [self.vertices[np.append(r, r[0])].tolist()]}}
                    for i, r in enumerate(rings)]  # GeoJSON is one object per region by definition
        return {"type": "FeatureCollection", "features": features}

    def to_geopandas(self, model: torch.nn.Module | None = None) -> Any:
        """:meth:`to_frame` as a GeoDataFrame with the regions as polygons (needs geopandas)."""
        try:
            import geopandas
        except ImportError as exc:
            raise InputValueError(message("Partition2D.to_geopandas", "geopandas installed",
                                          "no geopandas in this environment",
                                          "pip install geopandas, or use to_frame() and to_shapely()."
                                          )) from exc
        return geopandas.GeoDataFrame(self.to_frame(model), geometry=self.to_shapely())

    # ------------------------------------------------------------------ io
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the partition to a compressed ``.npz`` file, atomically.

        Returns the path written (``.npz`` is appended if missing).
        """
        meta = {
            "format": _FORMAT, "version": _FORMAT_VERSION,
            "sites": sites_meta(self.sites),
            "extent": [list(self.plane.extent[0]), list(self.plane.extent[1])],
            "n_degenerate": self.n_degenerate, "snap_rtol": self.snap_rtol,
        }
        arrays = {
            "vertices": self.vertices, "face_offsets": self.face_offsets,
            "face_vertices": self.face_vertices, "edges": self.edges,
            "edge_faces": self.edge_faces, "edge_layer": self.edge_site,
            "edge_neuron": self.edge_neuron,
            "plane_origin": self.plane.origin.detach().cpu().numpy(),
            "plane_basis": self.plane.basis.detach().cpu().numpy(),
            "plane_domain": np.asarray(self.plane.domain),
        }
        return write_npz(path, meta, patterns_to_arrays(self.patterns, arrays))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Partition2D:
        """Read a partition written by :meth:`save`."""
        meta, arrays = read_npz(path, _FORMAT, "Partition2D.load", _FORMAT_VERSION)
        sites = sites_from_meta(meta["sites"])
        extent = (tuple(meta["extent"][0]), tuple(meta["extent"][1]))
        plane = Plane(torch.from_numpy(arrays["plane_origin"]),
                      torch.from_numpy(arrays["plane_basis"]), extent,
                      arrays["plane_domain"])
        return cls(plane, sites, arrays["vertices"], arrays["face_offsets"],
                   arrays["face_vertices"], arrays["edges"], arrays["edge_faces"],
                   arrays["edge_layer"], arrays["edge_neuron"],
                   packed_patterns_from_arrays(arrays, sites, len(arrays["face_offsets"]) - 1,
                                               "Partition2D.load"),
                   int(meta["n_degenerate"]), float(meta["snap_rtol"]))

    # ------------------------------------------------------------------ checks
    def verify(self, model: torch.nn.Module, *, max_regions: int | None = None,
               generator: torch.Generator | None = None) -> VerificationReport:
        """Independent certificate of the partition (see :func:`reluscope.regions.verify`)."""
        from reluscope.regions.verify import verify

        return verify(self, model, max_regions=max_regions, generator=generator)


@dataclass(frozen=True)
class VerificationReport:
    """Outcome of :meth:`Partition2D.verify`; ``ok`` is True when every check passed.

    Attributes
    ----------
    area_relative_error : float
        ``|sum of region areas - domain area| / domain area``.
    nonpositive_areas : int
        Regions whose area is not positive.
    nonconvex_regions : int
        Regions with a reflex corner (beyond rounding).
    pattern_mismatches : int
        Regions where a plain forward pass at the interior point disagrees with the
        recorded pattern (entries within rounding of zero are not counted).
    checked_regions : int
        Regions whose pattern was checked.
    adjacency_mismatches : int
        Shared edges whose two regions do not differ in exactly the edge's neuron.
    unmatched_edges : int
        Edges with a region on one side only that are not on the domain boundary.
    nonaffine_regions : int
        Sampled regions where the model's output is not affine (a nonlinearity the
        partition does not account for).
    coincident_edges : int
        Shared edges where more neurons than the recorded one switch, every one of them
        zero at both ends of the edge (neurons with the same zero line there: a CNN on
        images with equal pixels has them). Correct, so not counted as mismatches.
    """

    area_relative_error: float
    nonpositive_areas: int
    nonconvex_regions: int
    pattern_mismatches: int
    checked_regions: int
    adjacency_mismatches: int
    unmatched_edges: int
    area_rtol: float = 1e-9
    nonaffine_regions: int = 0
    coincident_edges: int = 0

    @property
    def ok(self) -> bool:
        """All checks passed."""
        return (self.area_relative_error <= self.area_rtol and self.nonpositive_areas == 0
                and self.nonconvex_regions == 0 and self.pattern_mismatches == 0
                and self.adjacency_mismatches == 0 and self.unmatched_edges == 0
                and self.nonaffine_regions == 0)


def build_partition(plane: Plane, sites: list[Site], xy: np.ndarray, ptr: np.ndarray,
                    vid: np.ndarray, lab: np.ndarray, patterns: PackedPatterns | list[np.ndarray],
                    label_offset: np.ndarray, n_degenerate: int, snap_rtol: float) -> Partition2D:
    """Assemble a Partition2D from engine output (private: inputs already consistent).

    Compacts the vertices and pairs each ring edge with its twin in the neighbouring ring
    (:func:`ring_edges`: no slot-length temporaries beyond the compacted rings, since the
    assembly of a large partition is the slicer's peak memory).
    """
    used = np.flatnonzero(np.bincount(vid, minlength=len(xy)))  # np.unique, in linear time
    remap = np.full(len(xy), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    vid = remap[vid]
    del remap
    xy = xy[used]
    del used
    first, second, head, ring_first, ring_second = ring_edges(ptr, vid, len(xy))
    del second
    edges = np.stack([vid[first], head], axis=1)
    del head
    edge_faces = np.stack([ring_first, ring_second], axis=1)
    del ring_first, ring_second
    layer, neuron = site_of_label(lab[first], label_offset)
    return Partition2D(plane, tuple(sites), xy, ptr.astype(np.int64, copy=False),
                       vid.astype(np.int64, copy=False), edges.astype(np.int64, copy=False),
                       edge_faces.astype(np.int64, copy=False), layer, neuron,
                       PackedPatterns.wrap(patterns), int(n_degenerate), float(snap_rtol))
