"""The orchestrating engine: one refinement per ReLU site, in forward order.

Holds the state of one ``slice_regions`` call and its components: the vertex store,
the two ways to find chords (:class:`VertexValues`, :class:`FaceMaps`), the edge
crossings and the :class:`Cutter`. The algorithm is described in the package docstring.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from reluscope.geometry.plane import Plane
from reluscope.nets.plane_network import Network
from reluscope.nets.sites import Site
from reluscope.regions.options import EngineOptions
from reluscope.regions.patterns import ColumnSubset, PackedPatterns
from reluscope.regions.slice2d.crossings import insert_edge_crossings
from reluscope.regions.slice2d.cutting import Cut, Cutter
from reluscope.regions.slice2d.face_maps import FaceMaps
from reluscope.regions.slice2d.faces import Faces, merge_faces
from reluscope.regions.slice2d.pairs import CanonicalValues, Pairs
from reluscope.regions.slice2d.values import VertexValues
from reluscope.regions.slice2d.vertices import VertexKind, VertexStore


class Engine:
    """State of one slice_regions call.

    Attributes
    ----------
    vertices : VertexStore
    values : VertexValues
        Chords from the values at the vertices (and the values kept for the next site).
    maps : FaceMaps
        Chords from per-face affine maps (and the maps and chords kept for the next site).
    cutter : Cutter
    label_offset : (n_sites + 1,) int64
        Edge label of (site, neuron) is ``label_offset[site] + neuron``.
    timings : dict of str to float
        Seconds per stage, summed over sites.
    """

    def __init__(self, net: Network, plane: Plane, options: EngineOptions, max_regions: int) -> None:
        self.net, self.plane, self.options = net, plane, options
        self.snap = snap = options.snap_rtol * plane.diameter
        band = options.candidate_rtol * plane.diameter
        sizes = [s.size for s in net.sites]
        self.label_offset = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.vertices = VertexStore()
        self.values = VertexValues(net, self.vertices, options, snap)
        self.maps = FaceMaps(net, self.vertices, options, snap, band, self.label_offset)
        self.cutter = Cutter(self.vertices, options, snap, self.label_offset, max_regions)
        self.timings: dict[str, float] = {}

    def run(self) -> Faces:
        """The partition by every site: faces with their patterns."""
        domain = self.plane.polygon
        k = len(domain)
        self.vertices.add(domain, VertexKind.OLD)
        faces = Faces(np.array([0, k], np.int64), np.arange(k, dtype=np.int64),
                      -1 - np.arange(k, dtype=np.int64))
        for site in self.net.sites:
            faces = self.refine(faces, site)
        return faces

    def refine(self, faces: Faces, site: Site) -> Faces:
        """Cut every face by the neurons of `site` (whose maps are affine on each face)."""
        self.vertices.start_site()
        first_new = self.vertices.size
        clock = time.perf_counter()
        if site.pool_stage:
            self.values.tie = self.maps.tie = self._tie_level(site)
        values = None
        if self.maps.walkable(faces, site):
            self.values.forget()
        else:
            values = self.values.at_vertices(site)
        canonical: CanonicalValues
        snapped: tuple[np.ndarray, ...] = ()
        subset: ColumnSubset | None = None
        by_values = values is not None
        if values is not None:
            clock = self.tick("vertex values", clock)
            lookup, chords, base, snapped = self.values.chords(faces, site, values)
            if not self.values.keeps(site):  # the cut reads only the chords' neurons' values
                lookup = lookup.columns(chords.neuron)
                if lookup.position is not None:  # (a wide site's table goes now)
                    values, snapped = None, ()
                    self.values.release()
            canonical = lookup
            self.maps.cache = None
            clock = self.tick("chords", clock)
        else:
            candidates, base = self.maps.candidate_pairs(faces, site)
            clock = self.tick("affine maps", clock)
            # the base rows in their stored form from here on (a wide site's full rows are
            # let go before its chords and crossings): only candidates' bits change later
            subset = self._column_subset(site, candidates.neuron, base)
            if subset is not None:
                base = subset.gather(base)
            canonical, chords, base = self.maps.chords(
                faces, site, candidates, base, None if subset is None else subset.position)
            del candidates  # (a wide site's are many: not held through the cut)
        faces = insert_edge_crossings(faces, chords, canonical, self.vertices, self.snap,
                                      self.options.slot_batch)
        clock = self.tick("crossings", clock)
        self.maps.prev_parent = faces.parent
        if by_values:
            subset = self._column_subset(site, chords.neuron, base)
            if subset is not None:
                base = subset.gather(base)
        faces = self._cut(faces, site, chords, canonical, base, subset)
        clock = self.tick("cutting", clock)
        self.values.finish_site(site, values, snapped, first_new)
        if by_values:
            clock = self.tick("vertex values", clock)
        self.maps.remember(site, chords)
        self.tick("chords", clock)
        return faces

    def _cut(self, faces: Faces, site: Site, chords: Pairs, canonical: CanonicalValues,
             base: np.ndarray, subset: ColumnSubset | None) -> Faces:
        """Faces with many chords all at once, the others in a few rounds; pieces inherit
        the earlier sites' patterns of the face they came from. `base` (F, width): each
        face's base row, stored as `subset` says (None: full rows)."""
        n_chords = np.bincount(chords.face, minlength=faces.count)
        heavy = n_chords >= self.options.arrange_min_chords if self.options.arrange \
            else np.zeros(faces.count, bool)
        arranged: list[Cut] = []
        covered = None
        if heavy.any():
            arranged, covered = self.cutter.arrange_batches(faces, site, chords, canonical, base,
                                                            np.flatnonzero(heavy))
        rounds = self.cutter.cut_rounds(faces, site, chords, canonical, base, covered)
        parts = [rounds, *arranged]
        count = sum(part.faces.count for part in parts)
        if count > self.cutter.max_regions:
            self.cutter.too_many(site, count)
        # this site's rows of every piece, written once in place (see Cut), at each chord's
        # bit of the stored row
        position = np.arange(site.size, dtype=np.int64) if subset is None else subset.position
        rows = np.empty((count, base.shape[1]), dtype=np.uint8)
        first = 0
        for part in parts:
            part.fill(rows[first : first + part.faces.count], position)
            first += part.faces.count
        if not arranged:
            pieces = rounds.faces
            own = PackedPatterns([rows], subset=[subset])
        else:
            pieces = merge_faces([part.faces for part in parts], rows)
            own = PackedPatterns(pieces.patterns.rows, pieces.patterns.owner, [subset])
        assert pieces.parent is not None
        pieces.patterns = faces.patterns.inherit(pieces.parent, own)
        return pieces

    def _column_subset(self, site: Site, neurons: np.ndarray, base: np.ndarray
                       ) -> ColumnSubset | None:
        """The neurons this site's rows store (see ``EngineOptions.column_subsets``): those
        that differ between the faces' base rows, and `neurons` (the chords, or the
        candidates the chords come from, whose bits the base rows do not settle yet);
        None: all."""
        if not self.options.column_subsets or len(base) == 0:
            return None
        subset = ColumnSubset.of(base, site.size, neurons)
        if len(subset.columns) > self.options.column_subset_fraction * site.size:
            return None
        return subset

    def _tie_level(self, site: Site) -> float:
        """Values of a max-pool stage at most this large are ties (``tie_rtol`` times the
        largest pre-activation of the sites so far at the domain's corners and centre:
        a stage's own values there may all be ties)."""
        corners = self.plane.polygon
        points = torch.from_numpy(np.concatenate([corners, corners.mean(axis=0, keepdims=True)]))
        pre = self.net.plane_preactivations(points, site.index)
        scale = max(float(z.abs().max()) for z in pre)
        return self.options.tie_rtol * scale

    def tick(self, stage: str, since: float) -> float:
        """Add the time since `since` to `stage`; returns now."""
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - since
        return now
