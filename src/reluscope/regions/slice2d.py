"""The exact 2D engine: linear regions of a network on a plane.

Algorithm (one pass per ReLU site, in forward order)
---------------------------------------------------
The partition by sites ``0..l-1`` is refined by site ``l``. On each current face
``R`` the pre-activations of site ``l`` are affine, so each neuron that takes both
signs on R cuts it along a straight chord.

1. *Chords.* Three ways, chosen per site:

   * **walk** (``_walk``), for a site whose input is an affine *link* of a previous site
     of at least ``walk_min_width`` neurons: a compiled depth-first walk over the faces
     carries one exact affine map, updated by a rank-1 term across each shared edge
     (re-anchored to an exactly computed map every ``walk_anchor_steps`` steps), and screens
     every neuron on every face by a bounding-box test.
   * **vertex values** (``_vertex_values``), otherwise, when the (vertices x neurons)
     matrix fits ``values_max_entries``: the network is continuous, so site ``l`` has one
     value per vertex, whichever face it is seen from -- canonical by construction.
     Values come from one GEMM row per vertex through the link from the previous site's
     values (kept from step to step; the first site is affine on the whole plane), or
     from a plain forward pass at the vertex. A neuron cuts R iff R's vertex values take
     both signs; its affine map on R (needed inside R) is a least-squares fit to those
     values, whose residual bounds its error over R.
   * **face maps**, for the rest: exact affine maps per face from a masked forward-mode
     pass (any architecture), or through the link by rank-1 updates from a sibling face.

   After a walk or face maps, neurons near zero on a face get *canonical* values at its
   vertices (each (vertex, neuron) value computed by one face only).

2. *Edge crossings*: where a chord crosses an edge of the current partition the new
   vertex is computed once per (edge, neuron) from the canonical end values and
   inserted into the rings of both faces sharing the edge, in the same order.
3. *Cutting*: faces with at least ``arrange_min_chords`` chords (the first site's
   single face has one per neuron) are cut by all of them at once, as an arrangement
   of segments built from ring order alone (``_arrangement``). The others -- and any
   face whose arrangement is inconsistent -- are cut in rounds: round ``j`` cuts every
   piece of a face by its ``j``-th chord; signs at vertices on the face's boundary are
   decided combinatorially (by their order along the edge), so neighbouring faces stay
   consistent, and only vertices created inside the face use its affine map.

Tolerances
----------
A vertex within ``snap_rtol * diameter`` (plane units, ``diameter`` = diagonal of the
domain's bounding box) of a neuron's zero line is treated as lying on it, and chord
crossings closer than that along a chord are one vertex. Regions thinner than that are
therefore not created (the two cutting methods may differ by such slivers). Pieces with
a sign pattern that cannot be a single straight cut (possible only at that scale) are
left whole and counted in ``Partition2D.n_degenerate``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from reluscope._memory import reuse_freed_memory
from reluscope._validation import describe, message
from reluscope.errors import InputTypeError, InputValueError, TooManyRegionsError
from reluscope.geometry.plane import Plane
from reluscope.nets.plane_network import Network, at_points
from reluscope.nets.sites import Site
from reluscope.regions._adjacency import ChordTable, build_adjacency
from reluscope.regions._arrangement import Arrangement, arrange
from reluscope.regions._bits import bit_at, clear_bit, concat_rows, pack, set_bit, unpack
from reluscope.regions._growable import Growable
from reluscope.regions._hashing import KeyTable
from reluscope.regions._rings import (
    expand_slots,
    gather_rings,
    next_slot,
    ring_ids,
    search_sorted,
    shoelace,
    vertex_means,
)
from reluscope.regions._sorting import (
    argsort_int,
    unique_first,
    unique_first_inverse,
    unique_values,
)
from reluscope.regions._split import split_rings
from reluscope.regions._vertex_values import face_signs, fit_maps, mixed_pairs
from reluscope.regions._walk import WalkGraph, walk_candidates
from reluscope.regions.options import EngineOptions
from reluscope.regions.partition2d import Partition2D, build_partition

#: Default memory guard of slice_regions (the 784-1024-1024-1024 benchmark MLP has ~1.8M).
MAX_REGIONS = 5_000_000


@dataclass
class _Faces:
    """Current faces: CSR rings, edge labels and packed activation patterns per site."""

    ptr: np.ndarray
    vid: np.ndarray
    lab: np.ndarray
    patterns: list[np.ndarray] = field(default_factory=list)
    parent: np.ndarray | None = None  # face of the previous partition each face lies in

    @property
    def count(self) -> int:
        return len(self.ptr) - 1


@dataclass
class _Pairs:
    """(face, neuron) pairs with the neuron's affine map on that face."""

    face: np.ndarray
    neuron: np.ndarray
    value: np.ndarray
    ds: np.ndarray
    dt: np.ndarray
    ref: np.ndarray  # (P, 2) reference point of the map
    slack: np.ndarray | None = None  # (P,) bound on the map's error over its face, if fitted

    def take(self, index: np.ndarray) -> _Pairs:
        return _Pairs(self.face[index], self.neuron[index], self.value[index], self.ds[index],
                      self.dt[index], self.ref[index],
                      None if self.slack is None else self.slack[index])

    def evaluate(self, pair: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Value of pair ``pair[i]``'s map at point ``xy[i]``."""
        d = xy - self.ref[pair]
        return self.value[pair] + self.ds[pair] * d[:, 0] + self.dt[pair] * d[:, 1]

    def tolerance(self, pair: np.ndarray, distance: float) -> np.ndarray:
        """Value tolerance equivalent to `distance` in the plane for each pair."""
        return distance * np.hypot(self.ds[pair], self.dt[pair])


class _Canonical:
    """Canonical values of (vertex, neuron) pairs: one evaluation shared by all faces.

    ``keys`` are ``vertex * n + neuron`` (repeats carry the same value).
    """

    def __init__(self, keys: np.ndarray, values: np.ndarray, n: int) -> None:
        self.table = KeyTable(keys, values)
        self.n = n

    def __call__(self, vertex: np.ndarray, neuron: np.ndarray) -> np.ndarray:
        return self.table(vertex * self.n + neuron)


class _VertexLookup:
    """Canonical values when the site's values at every vertex are known: a table lookup."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __call__(self, vertex: np.ndarray, neuron: np.ndarray) -> np.ndarray:
        return self.values[vertex, neuron]


#: Either kind of canonical (vertex, neuron) -> value lookup.
_CanonicalValues = _Canonical | _VertexLookup


class _RingPool:
    """Append-only storage of rings; a ring is addressed by (start, length)."""

    def __init__(self) -> None:
        self.vid = Growable(None, np.int64)
        self.lab = Growable(None, np.int64)

    def add(self, ptr: np.ndarray, vid: np.ndarray, lab: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
        """Store CSR rings; return their (start, length) arrays."""
        first = self.vid.size
        self.vid.extend(vid)
        self.lab.extend(lab)
        return first + ptr[:-1], np.diff(ptr)

    def gather(self, start: np.ndarray, length: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR (ptr, vid, lab) of the rings at (start, length)."""
        ptr = np.zeros(len(start) + 1, dtype=np.int64)
        np.cumsum(length, out=ptr[1:])
        slots = np.repeat(start - ptr[:-1], length) + np.arange(int(ptr[-1]), dtype=np.int64)
        return ptr, self.vid.view()[slots], self.lab.view()[slots]


def _ring_boxes(ptr: np.ndarray, vid: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box (lower, upper corners, each (K, 2)) of each ring."""
    if len(ptr) == 1:
        return np.zeros((0, 2)), np.zeros((0, 2))
    corner = xy[vid]
    return (np.minimum.reduceat(corner, ptr[:-1], axis=0),
            np.maximum.reduceat(corner, ptr[:-1], axis=0))


def _settle_pairs(sign: np.ndarray, pair_ptr: np.ndarray, base: np.ndarray, face: np.ndarray,
                  neuron: np.ndarray) -> np.ndarray:
    """Which (face, neuron) pairs cut their face; set the bits of the others.

    ``sign`` holds each pair's signs on its face's vertices (CSR by ``pair_ptr``). A pair
    with both signs cuts the face (its bit is decided per piece later, so it is cleared
    here); any other is active on the face iff it is positive somewhere on it.
    """
    if len(sign):
        pos = np.maximum.reduceat(sign, pair_ptr[:-1]) > 0
        neg = np.minimum.reduceat(sign, pair_ptr[:-1]) < 0
    else:
        pos = neg = np.zeros(0, bool)
    cuts = pos & neg
    clear_bit(base, face, neuron)
    quiet_pos = ~cuts & pos
    set_bit(base, face[quiet_pos], neuron[quiet_pos])
    return cuts


def _order_along_edges(lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``np.lexsort((t, hi, lo))`` for crossings already sorted by edge (lo, hi).

    Only edges crossed more than once need sorting by position.
    """
    order = np.arange(len(t))
    if len(t) < 2:
        return order
    new_edge = np.ones(len(t), dtype=bool)
    new_edge[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    edge = np.cumsum(new_edge) - 1
    size = np.bincount(edge)
    shared = np.flatnonzero(size[edge] > 1)
    order[shared] = shared[np.lexsort((t[shared], edge[shared]))]
    return order


def _merge_faces(first: _Faces, second: _Faces) -> _Faces:
    """Both sets of faces in one, sorted by parent (siblings contiguous for the next site)."""
    assert first.parent is not None and second.parent is not None
    parents = np.concatenate([first.parent, second.parent])
    order = argsort_int(parents)
    lengths = np.concatenate([np.diff(first.ptr), np.diff(second.ptr)])[order]
    starts = np.concatenate([first.ptr[:-1], len(first.vid) + second.ptr[:-1]])[order]
    ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    take = np.repeat(starts - ptr[:-1], lengths) + np.arange(int(ptr[-1]))
    vid = np.concatenate([first.vid, second.vid])[take]
    lab = np.concatenate([first.lab, second.lab])[take]
    patterns = [concat_rows(a, b, order) for a, b in zip(first.patterns, second.patterns,
                                                          strict=True)]
    return _Faces(ptr, vid, lab, patterns, parents[order])


class _Engine:
    """State of one slice_regions call."""

    def __init__(self, net: Network, plane: Plane, options: EngineOptions, max_regions: int) -> None:
        self.net = net
        self.options = options
        self.max_regions = max_regions
        self.plane = plane
        self.diameter = plane.diameter
        self.snap = options.snap_rtol * self.diameter
        self.band = options.candidate_rtol * self.diameter
        self.chunk_entries = options.chunk_entries
        self.xy = Growable(2, np.float64)
        self.vclass = Growable(None, np.int8)
        self.va = Growable(None, np.int64)
        self.vb = Growable(None, np.int64)
        self.vt = Growable(None, np.float64)
        self.n_degenerate = 0
        self.batches: list[int] = []  # vertex count after each creation batch of a site
        self.timings: dict[str, float] = {}
        self.cache: torch.Tensor | None = None  # previous site's maps (3, faces, size)
        # chords of the last two sites (origin form) and the parents of the last faces
        self.prev_chords: ChordTable | None = None
        self.prev2_chords: ChordTable | None = None
        self.prev_parent: np.ndarray | None = None
        # pre-activations of the last site at every vertex (kept for a chained next site),
        # a view of the start of a flat store reused from site to site
        self.rows: np.ndarray | None = None
        self.store: np.ndarray | None = None
        sizes = [s.size for s in net.sites]
        self.label_offset = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    # ------------------------------------------------------------------ vertices
    def add_vertices(self, xy: np.ndarray, cls: int, a: np.ndarray | None = None,
                     b: np.ndarray | None = None, t: np.ndarray | None = None) -> np.ndarray:
        n = len(xy)
        ids = self.xy.extend(xy)
        self.batches.append(self.xy.size)
        self.vclass.extend(np.full(n, cls, dtype=np.int8))
        self.va.extend(a if a is not None else np.full(n, -1, np.int64))
        self.vb.extend(b if b is not None else np.full(n, -1, np.int64))
        self.vt.extend(t if t is not None else np.zeros(n))
        return ids

    # ------------------------------------------------------------------ main loop
    def run(self) -> _Faces:
        domain = self.plane.polygon
        k = len(domain)
        self.add_vertices(domain, 0)
        faces = _Faces(np.array([0, k], np.int64), np.arange(k, dtype=np.int64),
                       -1 - np.arange(k, dtype=np.int64))
        for site in self.net.sites:
            faces = self.refine(faces, site)
        return faces

    def refine(self, faces: _Faces, site: Site) -> _Faces:
        """Cut every face by the neurons of `site` (whose maps are affine on each face)."""
        self.vclass.view()[:] = 0
        first_new = self.xy.size
        clock = time.perf_counter()
        if self._walkable(faces, site):
            values = None
            self.rows = self.store = None
        else:
            values = self.vertex_values(site)
        canonical: _CanonicalValues
        if values is not None:
            clock = self._tick("vertex values", clock)
            canonical, chords, base, snapped = self.value_chords(faces, site, values)
            self.cache = None
            clock = self._tick("chords", clock)
        else:
            candidates, base = self.candidate_pairs(faces, site)
            clock = self._tick("affine maps", clock)
            canonical, chords, base = self.crossing_pairs(faces, site, candidates, base)
        faces = self.insert_edge_crossings(faces, chords, canonical)
        clock = self._tick("crossings", clock)
        self.prev_parent = faces.parent
        # faces with many chords: all at once; the others: a few rounds
        n_chords = np.bincount(chords.face, minlength=faces.count)
        heavy = n_chords >= self.options.arrange_min_chords if self.options.arrange \
            else np.zeros(faces.count, bool)
        arranged = None
        if heavy.any():
            arranged = self.arrange_faces(faces, site, chords, canonical, base,
                                          np.flatnonzero(heavy))
        if arranged is None:
            pieces = self.cut_rounds(faces, site, chords, canonical, base)
        else:
            pieces = _merge_faces(self.cut_rounds(faces, site, chords, canonical, base, heavy),
                                  arranged)
            if pieces.count > self.max_regions:
                self._too_many(site, pieces.count)
        # pieces inherit the earlier sites' patterns of the face they came from
        assert pieces.parent is not None
        pieces.patterns = [p[pieces.parent] for p in faces.patterns] + pieces.patterns
        faces = pieces
        clock = self._tick("cutting", clock)
        self.rows = None
        if values is not None:
            values[snapped[0], snapped[1]] = snapped[2]  # exact values again for the next site
            if self._chained_next(site):
                self.rows = self._site_rows(site, values, first_new)
            else:
                self.store = None
            clock = self._tick("vertex values", clock)
        self.prev2_chords = self.prev_chords
        origin = chords.value - chords.ds * chords.ref[:, 0] - chords.dt * chords.ref[:, 1]
        self.prev_chords = ChordTable(chords.face * site.size + chords.neuron,
                                      np.stack([origin, chords.ds, chords.dt], axis=1), site.size)
        self._tick("chords", clock)
        return faces

    # ------------------------------------------------------------------ vertex values
    def _chained_next(self, site: Site) -> bool:
        """Will the next site's values come from this site's values by one link (GEMM)?"""
        nxt = site.index + 1
        if nxt >= len(self.net.sites) or self.net.link(nxt) is None:
            return False
        if site.size >= self.options.walk_min_width:  # the next site walks the faces instead
            return False
        return self.xy.size * max(site.size, self.net.sites[nxt].size) <= self.options.values_max_entries

    def _rows(self, count: int, width: int, spare: int = 0, keep: int = 0) -> np.ndarray:
        """(count, width) view of the value store, grown to fit ``spare`` more rows.

        The store is reused from site to site: first touches of fresh pages cost more
        than the arithmetic here. The first `keep` rows survive a regrowth.
        """
        need = (count + spare) * width
        if self.store is None or len(self.store) < need:
            grown = np.empty(need)
            if keep and self.store is not None:
                grown[: keep * width] = self.store[: keep * width]
            self.store = grown
        return self.store[: count * width].reshape(count, width)

    def _site_rows(self, site: Site, values: np.ndarray, first_new: int) -> np.ndarray:
        """Values of `site` at every vertex, for the next site.

        The first site is affine on the whole plane: evaluate it. A vertex created by a
        later site lies on an edge of one face where that site is affine, so its values
        interpolate the edge's end values. `values` lies at the start of the store, so
        the old vertices' rows are already in place.
        """
        n = values.shape[1]
        if site.index == 0:
            rows = self._rows(self.xy.size, n)
            coords = torch.from_numpy(self.xy.view())
            rows[:] = self.net.site0_values(coords).cpu().numpy()
            return rows
        rows = self._rows(self.xy.size, n, keep=first_new)
        va, vb, vt = self.va.view(), self.vb.view(), self.vt.view()
        # a vertex only refers to vertices made before it: fill in creation batches,
        # in small blocks (no large temporaries)
        step = max(1, (1 << 16) // n)
        done = first_new
        for stop in self.batches:
            for lo in range(done, stop, step):
                new = slice(lo, min(lo + step, stop))
                a, b = rows[va[new]], rows[vb[new]]
                b -= a
                b *= vt[new, None]
                b += a
                rows[new] = b
            done = stop
        return rows

    def vertex_values(self, site: Site) -> np.ndarray | None:
        """(V, size) pre-activations of `site` at every vertex, or None if too large.

        The result lies at the start of the value store, with room for the vertices
        this site will create when the next site will need them (see ``_site_rows``).
        """
        self.batches = []
        n_vertices, n = self.xy.size, site.size
        if n_vertices * n > self.options.values_max_entries:
            self.rows = self.store = None
            return None
        spare = 0
        if self._chained_next(site):  # the vertices this site adds (a guess; it regrows)
            spare = min(3 * n_vertices, self.options.values_max_entries // n - n_vertices)
        link = self.net.link(site.index) if site.index > 0 else None
        if link is not None and self.rows is not None and len(self.rows) == n_vertices:
            matrix, bias = link
            slope = self.net.sites[site.index - 1].negative_slope
            rows = self.rows
            in_place = rows.shape[1] == n  # each block only needs its own rows
            if in_place:
                out = rows
            else:
                self.store = None
                out = self._rows(n_vertices, n, spare)
            step = max(1, (1 << 20) // max(n, rows.shape[1]))
            for lo in range(0, n_vertices, step):
                z = torch.from_numpy(rows[lo : lo + step]).to(matrix.device)
                act = torch.where(z > 0, z, z * slope) if slope else z.clamp_min_(0.0)
                block = torch.addmm(bias, act, matrix.T).cpu().numpy()
                out[lo : lo + step] = block
            self.rows = None
            if in_place:  # make room for this site's new vertices
                out = self._rows(n_vertices, n, spare, keep=n_vertices)
            return out
        self.rows = self.store = None
        out = self._rows(n_vertices, n, spare)
        xy = self.xy.view()
        sizes = [s.size for s in self.net.sites[: site.index + 1]]
        links = [self.net.link(m) for m in range(1, site.index + 1)]
        chained = all(link is not None for link in links)
        step = max(1, self.chunk_entries // (max(sizes) if chained else sum(sizes)))
        for lo in range(0, n_vertices, step):
            coords = torch.from_numpy(xy[lo : lo + step].copy())
            if chained:  # the first site's plane map, then the links: no input-sized layer
                z = self.net.site0_values(coords)
                for m, link in enumerate(links, start=1):
                    matrix, bias = link  # type: ignore[misc]
                    slope = self.net.sites[m - 1].negative_slope
                    z = torch.addmm(bias, torch.where(z > 0, z, z * slope), matrix.T)
            else:
                z = self.net.plane_preactivations(coords, site.index)[site.index]
            out[lo : lo + step] = z.cpu().numpy()
        return out

    def value_chords(self, faces: _Faces, site: Site, values: np.ndarray
                     ) -> tuple[_VertexLookup, _Pairs, np.ndarray, tuple[np.ndarray, ...]]:
        """Chords and base patterns from the values at the vertices (see ``_vertex_values``).

        A vertex within the snap distance of a neuron's zero line, on a face that neuron
        cuts, counts as on the line: its value is set to 0 in `values` (the original
        values are returned in ``snapped`` to be restored after the site).
        """
        xy = self.xy.view()
        n = site.size
        signs = face_signs(faces.ptr, faces.vid, values)
        face, neuron = mixed_pairs(signs, n)
        box_lo, box_hi = _ring_boxes(faces.ptr, faces.vid, xy)
        ref = 0.5 * (box_lo + box_hi)
        fit = fit_maps(faces.ptr, faces.vid, xy, values, face, neuron, ref)
        pair_ptr, slots = gather_rings(faces.ptr, face)
        pair = ring_ids(pair_ptr)
        v, k = faces.vid[slots], neuron[pair]
        z = values[v, k]
        near = np.flatnonzero((np.abs(z) <= self.snap * np.hypot(fit.ds, fit.dt)[pair]) & (z != 0))
        key = unique_values(v[near] * n + k[near])
        sv, sk = key // n, key % n
        snapped = (sv, sk, values[sv, sk])
        values[sv, sk] = 0.0
        base = signs.pos & ~signs.neg  # neurons of one sign on a face
        cuts = _settle_pairs(np.sign(values[v, k]), pair_ptr, base, face, neuron)
        keep = np.flatnonzero(cuts)
        chords = _Pairs(face[keep], neuron[keep], fit.value[keep], fit.ds[keep], fit.dt[keep],
                        ref[face[keep]], fit.residual[keep])
        return _VertexLookup(values), chords, base, snapped

    def _tick(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - since
        return now

    # ------------------------------------------------------------------ step 1
    def candidate_pairs(self, faces: _Faces, site: Site) -> tuple[_Pairs, np.ndarray]:
        """Affine maps per face, in batches; keep neurons whose values come near zero."""
        xy = self.xy.view()
        n = site.size
        # reference point of each face's maps: the centre of its bounding box
        box_lo, box_hi = _ring_boxes(faces.ptr, faces.vid, xy)
        ref = 0.5 * (box_lo + box_hi)
        half = 0.5 * (box_hi - box_lo) + self.band
        if self._walkable(faces, site):
            return self._walk_pairs(faces, site, ref, half)
        base = np.zeros((faces.count, (n + 7) // 8), dtype=np.uint8)
        parts: list[_Pairs] = []
        keep = site.index + 1 < len(self.net.sites) and faces.count * 3 * n <= self.options.cache_entries
        cache: torch.Tensor | None = None
        for idx, maps in self._map_batches(faces, site):
            parts.append(self._near_zero(faces, site, idx, maps, ref, half, base))
            if keep and maps is not None:
                if cache is None:
                    cache = torch.empty((3, faces.count, n), dtype=maps.dtype, device=maps.device)
                cache[:, torch.from_numpy(idx).to(maps.device)] = maps
            elif keep:
                keep = False
        self.cache = cache if keep else None
        pairs = _Pairs(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                         ("face", "neuron", "value", "ds", "dt", "ref")))
        return pairs.take(argsort_int(pairs.face * n + pairs.neuron)), base

    def _walkable(self, faces: _Faces, site: Site) -> bool:
        """Wide chained site with a previous one: walk the faces with one running map."""
        return (site.index > 0 and self.net.link(site.index) is not None
                and faces.parent is not None and self.prev_chords is not None
                and self.net.sites[site.index - 1].size >= self.options.walk_min_width)

    def _walk_pairs(self, faces: _Faces, site: Site, ref: np.ndarray, half: np.ndarray
                    ) -> tuple[_Pairs, np.ndarray]:
        """Candidate pairs and base patterns from a depth-first walk (see ``_walk``)."""
        assert faces.parent is not None and self.prev_chords is not None
        index = site.index
        prev_link = self.net.link(index - 1) if index > 1 else None
        # edges two sites back need the previous link and that site's chords
        cross = prev_link is not None and self.prev2_chords is not None \
            and self.prev_parent is not None
        slopes = [s.negative_slope for s in self.net.sites]
        adj = build_adjacency(faces.ptr, faces.vid, faces.lab, faces.patterns, self.label_offset,
                              index, slopes, far=cross)
        src = np.repeat(np.arange(faces.count), np.diff(adj.ptr))
        coef = np.empty((len(src), 3))
        cheap = np.flatnonzero(adj.cheap)
        coef[cheap] = self.prev_chords.lookup(faces.parent[src[cheap]], adj.neuron[cheap])
        far = np.flatnonzero(~adj.cheap)
        if len(far):
            assert self.prev2_chords is not None and self.prev_parent is not None
            grandparent = self.prev_parent[faces.parent[src[far]]]
            coef[far] = self.prev2_chords.lookup(grandparent, adj.neuron[far])
        coef *= adj.step[:, None]
        graph = WalkGraph(adj.ptr, adj.dst, (~adj.cheap).astype(np.int8), adj.neuron, coef)
        matrix = self.net.link(index)[0]  # type: ignore[index]
        at_rows = matrix.T.contiguous().cpu().numpy()
        prev_rows = prev_link[0].T.contiguous().cpu().numpy() if cross and prev_link else None

        def exact(face: int) -> np.ndarray:
            idx = np.array([face], dtype=np.int64)
            return self._full_maps(faces, site, idx)[:, 0].cpu().numpy()

        out = walk_candidates(graph, at_rows, prev_rows, faces.patterns[index - 1],
                              self.net.sites[index - 1].negative_slope, ref, half, exact, self.options)
        order = argsort_int(out.face)  # stable: neurons stay ascending within a face
        pairs = _Pairs(out.face, out.neuron, out.value, out.ds, out.dt, ref[out.face])
        return pairs.take(order), out.base

    def _masks(self, faces: _Faces, idx: np.ndarray, upto: int) -> list[torch.Tensor]:
        return [torch.from_numpy(unpack(p[idx], s.size))
                for p, s in zip(faces.patterns[:upto], self.net.sites, strict=False)]

    def _map_batches(self, faces: _Faces, site: Site
                     ) -> Iterator[tuple[np.ndarray, torch.Tensor | None]]:
        """(faces, origin-form maps or None for the generic path) batches covering all faces."""
        budget = max(1, self.chunk_entries // max(site.size, 1))
        link = self.net.link(site.index) if site.index > 0 else None
        for start in range(0, faces.count, budget):
            idx = np.arange(start, min(start + budget, faces.count))
            if link is None:
                yield idx, None
            elif faces.parent is None or self.prev_chords is None:
                yield idx, self._full_maps(faces, site, idx)
            else:
                yield idx, self._sibling_maps(faces, site, idx, link[0])

    def _sibling_maps(self, faces: _Faces, site: Site, idx: np.ndarray, matrix: torch.Tensor
                      ) -> torch.Tensor:
        """Maps on a contiguous run of faces (sorted by parent), for narrow layers.

        The first face of each parent in the run is computed in full; its siblings differ
        from it only in the parent's chords of the previous site, so their maps are the
        anchor's plus ``(gate_R[k] - gate_anchor[k]) * A[:, k] (x) g_k`` per differing
        chord k. Faces of parents with many chords are computed in full.
        """
        assert faces.parent is not None and self.prev_chords is not None
        table = self.prev_chords
        prev_site = self.net.sites[site.index - 1]
        parent = faces.parent[idx]
        chord_face = table.key // table.size
        lo = np.searchsorted(chord_face, parent, side="left")
        n_chords = np.searchsorted(chord_face, parent, side="right") - lo
        first = np.ones(len(idx), dtype=bool)
        first[1:] = parent[1:] != parent[:-1]
        anchor = np.flatnonzero(first)[np.cumsum(first) - 1]
        full = np.flatnonzero(first | (n_chords * self.options.sibling_cost > prev_site.size))
        maps = torch.empty((3, len(idx), site.size), dtype=torch.float64, device=matrix.device)
        maps[:, torch.from_numpy(full).to(matrix.device)] = self._full_maps(faces, site, idx[full])
        rest = np.setdiff1d(np.arange(len(idx)), full, assume_unique=True)
        if len(rest) == 0:
            return maps
        maps[:, torch.from_numpy(rest).to(matrix.device)] = \
            maps[:, torch.from_numpy(anchor[rest]).to(matrix.device)]
        count = n_chords[rest]
        rows = np.repeat(rest, count)
        chord = np.repeat(lo[rest] - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
        k = table.key[chord] % table.size
        packed = faces.patterns[site.index - 1]
        step = (bit_at(packed, idx[rows], k).astype(np.float64)
                - bit_at(packed, idx[anchor[rows]], k)) * (1.0 - prev_site.negative_slope)
        hit = np.flatnonzero(step != 0)
        rows, chord, k, step = rows[hit], chord[hit], k[hit], step[hit]
        batch = self.options.sibling_batch
        for start in range(0, len(rows), batch):
            sl = slice(start, start + batch)
            g = torch.from_numpy((table.rows[chord[sl]] * step[sl, None]).T).to(matrix.device)
            cols = matrix[:, torch.from_numpy(k[sl]).to(matrix.device)].T  # (P, size)
            maps.index_add_(1, torch.from_numpy(rows[sl]).to(matrix.device),
                            g[:, :, None] * cols[None])
        return maps

    def _full_maps(self, faces: _Faces, site: Site, idx: np.ndarray) -> torch.Tensor:
        """Origin-form maps on faces `idx` by full propagation through the links."""
        previous = None
        if self.cache is not None and faces.parent is not None:
            previous = self.cache[:, torch.from_numpy(faces.parent[idx]).to(self.cache.device)]
        masks = self._masks(faces, idx, site.index)
        maps = self.net.chain_maps(masks, site.index, previous)
        if maps is None:  # an earlier link is missing: one forward-mode pass per face
            at_origin = torch.zeros(len(idx), 2, dtype=torch.float64)
            maps = torch.stack(self.net.affine_maps(at_origin, masks, site.index), dim=0)
        return maps

    def _near_zero(self, faces: _Faces, site: Site, idx: np.ndarray, maps: torch.Tensor | None,
                   ref: np.ndarray, half: np.ndarray, base: np.ndarray) -> _Pairs:
        """Pairs (face, neuron) whose range over the face's box reaches zero; base patterns.

        `maps` None means no link: the maps come from a masked forward-mode pass here.
        """
        coords = torch.from_numpy(ref[idx])
        if maps is not None:
            triple = at_points(maps, coords.to(maps.device))
        else:
            triple = self.net.affine_maps(coords, self._masks(faces, idx, site.index), site.index)
        value_t, ds_t, dt_t = triple
        # Each neuron's range over the face's bounding box (grown by the band) is
        # value +- (|ds| * half_s + |dt| * half_t): a superset of its range over the face.
        # Only pairs whose range reaches zero get the exact per-vertex check.
        box = torch.from_numpy(half[idx]).to(value_t.device)
        margin = ds_t.abs().mul_(box[:, :1])
        margin.addcmul_(dt_t.abs(), box[:, 1:])
        base[idx] = pack((value_t > margin).cpu().numpy())
        f, k = np.nonzero((value_t.abs() < margin).cpu().numpy())
        value, ds, dt = (t.detach().cpu().numpy() for t in triple)
        return _Pairs(idx[f], k, value[f, k], ds[f, k], dt[f, k], ref[idx][f])

    # ------------------------------------------------------------------ step 2
    def crossing_pairs(self, faces: _Faces, site: Site, cand: _Pairs, base: np.ndarray
                       ) -> tuple[_Canonical, _Pairs, np.ndarray]:
        """Canonical vertex values of candidates; neurons with both signs on a face cut it."""
        xy = self.xy.view()
        n = site.size
        pair_ptr, slots = gather_rings(faces.ptr, cand.face)
        pair = ring_ids(pair_ptr)
        v = faces.vid[slots]
        z = cand.evaluate(pair, xy[v])
        z[np.abs(z) <= cand.tolerance(pair, self.snap)] = 0.0
        key = v * n + cand.neuron[pair]
        # slots run in face order (candidates are sorted by face), so the first slot of
        # each (vertex, neuron) is on its lowest face; every slot takes that slot's value
        _, first, inverse = unique_first_inverse(key)
        value = z[first][inverse]
        cuts = _settle_pairs(np.sign(value), pair_ptr, base, cand.face, cand.neuron)
        # later lookups only concern the chords' own vertices
        chord_slots = np.flatnonzero(cuts[pair])
        canonical = _Canonical(key[chord_slots], value[chord_slots], n)
        return canonical, cand.take(np.flatnonzero(cuts)), base

    # ------------------------------------------------------------------ step 3
    def insert_edge_crossings(self, faces: _Faces, chords: _Pairs, canonical: _CanonicalValues
                              ) -> _Faces:
        """Create the vertices where chords cross existing edges; insert them in the rings."""
        xy = self.xy.view()
        pair_ptr, slots = gather_rings(faces.ptr, chords.face)
        pair = ring_ids(pair_ptr)
        nxt = next_slot(faces.ptr)
        a = faces.vid[slots]
        b = faces.vid[nxt[slots]]
        k = chords.neuron[pair]
        sa = np.sign(canonical(a, k))
        sb = np.sign(canonical(b, k))
        hit = sa * sb < 0
        lo = np.minimum(a, b)[hit]
        hi = np.maximum(a, b)[hit]
        k = k[hit]
        # one crossing per (edge, neuron), found from both faces of the edge
        n_vertices, n_neurons = self.xy.size, int(k.max()) + 1 if len(k) else 1
        if n_vertices * n_vertices * n_neurons < 2**62:  # one int64 key: fast
            _, first = unique_first((lo * n_vertices + hi) * n_neurons + k)
        else:
            _, first = np.unique(np.stack([lo, hi, k], axis=1), axis=0, return_index=True)
        lo, hi, k = lo[first], hi[first], k[first]
        zlo = canonical(lo, k)
        zhi = canonical(hi, k)
        t = zlo / (zlo - zhi)
        order = _order_along_edges(lo, hi, t)
        lo, hi, t = lo[order], hi[order], t[order]
        # neurons crossing an edge at the very same point share one vertex there
        fresh = np.ones(len(t), dtype=bool)
        fresh[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1]) | (t[1:] != t[:-1])
        lo, hi, t = lo[fresh], hi[fresh], t[fresh]
        points = xy[lo] + t[:, None] * (xy[hi] - xy[lo])
        ids = self.add_vertices(points, 1, lo, hi, t)

        # Insert each edge's points after the slot that starts the edge, in ring order.
        n_vertices = self.xy.size
        edge_key = lo * n_vertices + hi
        sa_all = faces.vid
        sb_all = faces.vid[nxt]
        slot_key = np.minimum(sa_all, sb_all) * n_vertices + np.maximum(sa_all, sb_all)
        first, stop = search_sorted(edge_key, slot_key, sides=("left", "right"))
        count = stop - first
        new_ptr, origin, rank = expand_slots(faces.ptr, count)
        forward = sa_all[origin] < sb_all[origin]
        pick = np.where(forward, first[origin] + rank - 1, first[origin] + count[origin] - rank)
        vid = np.where(rank == 0, faces.vid[origin], ids[np.clip(pick, 0, max(len(ids) - 1, 0))]
                       if len(ids) else faces.vid[origin])
        return _Faces(new_ptr, vid, faces.lab[origin], faces.patterns, faces.parent)

    # ------------------------------------------------------------------ step 4
    def cut_rounds(self, faces: _Faces, site: Site, chords: _Pairs, canonical: _CanonicalValues,
                   base: np.ndarray, skip: np.ndarray | None = None) -> _Faces:
        """Round j cuts every piece of each face by that face's j-th chord.

        Pieces live in an append-only ring pool, so a round only touches the pieces its
        chords actually cross: a bounding-box test (with the snap margin) settles the
        side of every other piece without looking at its ring. Faces where `skip` is
        True are left out of the result (they are cut elsewhere).
        """
        n_chords = np.bincount(chords.face, minlength=faces.count)
        chord_start = np.concatenate([[0], np.cumsum(n_chords)]).astype(np.int64)
        label0 = self.label_offset[site.index]
        pool = _RingPool()

        def add_faces(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            ptr, slots = gather_rings(faces.ptr, idx)
            return pool.add(ptr, faces.vid[slots], faces.lab[slots])

        keep = np.ones(faces.count, dtype=bool) if skip is None else ~skip
        quiet = np.flatnonzero((n_chords == 0) & keep)
        done: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = [
            (*add_faces(quiet), quiet, base[quiet])]
        parent = np.flatnonzero((n_chords > 0) & keep)
        start, length = add_faces(parent)
        pattern = base[parent]
        lo, hi = _ring_boxes(*pool.gather(start, length)[:2], self.xy.view())
        j = 0
        while len(parent):
            q = chord_start[parent] + j
            neuron = chords.neuron[q]
            offset = 0.5 * (lo + hi) - chords.ref[q]
            half = 0.5 * (hi - lo)
            ds, dt = chords.ds[q], chords.dt[q]
            centre = chords.value[q] + ds * offset[:, 0] + dt * offset[:, 1]
            spread = np.abs(ds) * half[:, 0] + np.abs(dt) * half[:, 1] \
                + 2.0 * chords.tolerance(q, self.snap)
            if chords.slack is not None:
                spread += 2.0 * chords.slack[q]
            plus = centre > spread
            cross = np.flatnonzero(np.abs(centre) <= spread)
            set_bit(pattern, np.flatnonzero(plus), neuron[plus])
            if len(cross):
                ptr, vid, lab = pool.gather(start[cross], length[cross])
                pair = q[cross]
                sign = self._signs(ptr, vid, pair, chords, canonical)

                def make(a: np.ndarray, b: np.ndarray, ring: np.ndarray,
                         pair: np.ndarray = pair) -> np.ndarray:
                    return self._interior_vertices(a, b, pair[ring], chords)

                res = split_rings(ptr, vid, lab, sign, label0 + chords.neuron[pair], make)
                self.n_degenerate += int(res.degenerate.sum())
                whole_plus = cross[res.side > 0]
                set_bit(pattern, whole_plus, neuron[whole_plus])
                src = cross[res.src]
                h_start, h_length = pool.add(res.ptr, res.vid, res.lab)
                h_lo, h_hi = _ring_boxes(res.ptr, res.vid, self.xy.view())
                h_pattern = pattern[src]
                set_bit(h_pattern, np.flatnonzero(res.positive), neuron[src][res.positive])
                # the positive half takes the cut face's slot; the negative half is appended
                n_half = len(src) // 2
                cut = src[:n_half]
                start[cut], length[cut] = h_start[:n_half], h_length[:n_half]
                lo[cut], hi[cut], pattern[cut] = h_lo[:n_half], h_hi[:n_half], h_pattern[:n_half]
                start = np.concatenate([start, h_start[n_half:]])
                length = np.concatenate([length, h_length[n_half:]])
                lo = np.concatenate([lo, h_lo[n_half:]])
                hi = np.concatenate([hi, h_hi[n_half:]])
                pattern = np.concatenate([pattern, h_pattern[n_half:]])
                parent = np.concatenate([parent, parent[src[n_half:]]])
            j += 1
            total = len(parent) + sum(len(d[0]) for d in done)
            if total > self.max_regions:
                self._too_many(site, total)
            finished = n_chords[parent] <= j
            if finished.any():
                fin = np.flatnonzero(finished)
                done.append((start[fin], length[fin], parent[fin], pattern[fin]))
                keep = np.flatnonzero(~finished)
                start, length, parent, pattern = start[keep], length[keep], parent[keep], pattern[keep]
                lo, hi = lo[keep], hi[keep]

        # faces leave sorted by parent, so siblings are contiguous for the next site
        parents = np.concatenate([d[2] for d in done])
        order = np.argsort(parents, kind="stable")
        parents = parents[order]
        ptr, vid, lab = pool.gather(np.concatenate([d[0] for d in done])[order],
                                    np.concatenate([d[1] for d in done])[order])
        # only this site's patterns: the earlier ones are inherited once (see refine)
        return _Faces(ptr, vid, lab, [np.concatenate([d[3] for d in done])[order]], parents)

    def arrange_faces(self, faces: _Faces, site: Site, chords: _Pairs,
                      canonical: _CanonicalValues, base: np.ndarray, busy: np.ndarray
                      ) -> _Faces | None:
        """Faces `busy` cut by all their chords at once (see ``_arrangement``).

        Returns their pieces only, or None (forgetting any vertex it made) when an
        arrangement is not consistent; the caller then cuts piece by piece.
        """
        is_busy = np.zeros(faces.count, dtype=bool)
        is_busy[busy] = True
        chords = chords.take(np.flatnonzero(is_busy[chords.face]))
        local_face = np.searchsorted(busy, chords.face)
        n_chords = np.bincount(local_face, minlength=len(busy))
        sub_ptr, sub_slots = gather_rings(faces.ptr, busy)
        sub_vid, sub_lab = faces.vid[sub_slots], faces.lab[sub_slots]
        # each chord's signs on its face's ring (chord-major)
        ring_ptr, slots = gather_rings(sub_ptr, local_face)
        sign = self._signs(ring_ptr, sub_vid[slots], np.arange(len(local_face)), chords, canonical)

        def make(points: np.ndarray, a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
            return self.add_vertices(points, 2, a, b, t)

        first_vertex = self.xy.size
        arr = arrange(sub_ptr, sub_vid, sub_lab, self.xy.view(), local_face,
                      self.label_offset[site.index] + chords.neuron, sign.astype(np.int8),
                      chords.evaluate, self.snap, make, self.options.arrangement_max_pairs)
        xy = self.xy.view()
        if arr is not None:
            area = shoelace(arr.ptr, arr.vid, xy)
            whole = shoelace(sub_ptr, sub_vid, xy)
            covered = np.bincount(arr.face, weights=area, minlength=len(busy))
            if (area <= 0).any() or (np.abs(covered - whole) > 1e-9 * whole).any():
                arr = None
        if arr is None:
            self._truncate_vertices(first_vertex)
            return None
        if len(arr.ptr) - 1 > self.max_regions:
            self._too_many(site, len(arr.ptr) - 1)
        parent = busy[arr.face]
        pattern = base[parent]
        # chord bits: the side of each chord of its face the piece's vertex mean is on ...
        self._chord_bits(pattern, arr, n_chords, chords, site.size)
        # ... except for the chords it borders: it lies left of its counter-clockwise edges
        slot = np.flatnonzero(arr.chord_of_edge >= 0)
        chord = arr.chord_of_edge[slot]
        edge_piece = ring_ids(arr.ptr)[slot]
        d = xy[arr.chord_end[chord]] - xy[arr.chord_start[chord]]
        d *= np.where(arr.forward[slot], 1.0, -1.0)[:, None]
        positive = chords.ds[chord] * -d[:, 1] + chords.dt[chord] * d[:, 0] > 0
        clear_bit(pattern, edge_piece, chords.neuron[chord])
        set_bit(pattern, edge_piece[positive], chords.neuron[chord][positive])
        return _Faces(arr.ptr, arr.vid, arr.lab, [pattern], parent)  # this site's patterns

    def _chord_bits(self, pattern: np.ndarray, arr: Arrangement, n_chords: np.ndarray,
                    chords: _Pairs, size: int) -> None:
        """Set the bits of the chords of each piece's face where its vertex mean is above.

        ``n_chords`` counts the chords of each face of the arrangement (in its order).
        """
        xy = self.xy.view()
        mean = vertex_means(arr.ptr, arr.vid, xy)
        chord_start = np.concatenate([[0], np.cumsum(n_chords)]).astype(np.int64)
        parent = arr.face
        count = n_chords[parent]
        # faces with many chords (the first site's single face): one dense block each
        dense = np.flatnonzero(n_chords >= self.options.dense_chords)
        for face in dense:
            rows = np.flatnonzero(parent == face)
            cols = np.arange(chord_start[face], chord_start[face + 1])
            # origin form: [1, s, t] @ [c; ds; dt] is one small matrix product per block
            ref = chords.ref[cols]
            c0 = chords.value[cols] - chords.ds[cols] * ref[:, 0] - chords.dt[cols] * ref[:, 1]
            # every neuron gets a column (-1 for those that are not chords here: bit 0)
            rhs = np.zeros((3, size))
            rhs[0] = -1.0
            rhs[:, chords.neuron[cols]] = np.stack([c0, chords.ds[cols], chords.dt[cols]])
            step = max(1, (1 << 19) // size)
            value = np.empty((min(step, len(rows)), size))
            for lo in range(0, len(rows), step):
                block = rows[lo : lo + step]
                lhs = np.concatenate([np.ones((len(block), 1)), mean[block]], axis=1)
                out = value[: len(block)]
                np.matmul(lhs, rhs, out=out)
                pattern[block] |= np.packbits(out > 0, axis=1)
        count = np.where(count >= self.options.dense_chords, 0, count)  # done above
        piece = np.repeat(np.arange(len(parent)), count)
        pair = np.repeat(chord_start[parent] - np.cumsum(count) + count, count) \
            + np.arange(int(count.sum()))
        above = chords.evaluate(pair, mean[piece]) > 0
        set_bit(pattern, piece[above], chords.neuron[pair[above]])

    def _truncate_vertices(self, size: int) -> None:
        for store in (self.xy, self.vclass, self.va, self.vb, self.vt):
            store.size = size
        while self.batches and self.batches[-1] > size:
            self.batches.pop()

    def _too_many(self, site: Site, count: int) -> None:
        raise TooManyRegionsError(message(
            "the partition of slice_regions", f"at most max_regions={self.max_regions:,} regions",
            f"more than {count:,} while cutting by site {site.index} (`{site.name}`, "
            f"{site.size:,} neurons)",
            "Use a smaller domain (a smaller margin in Plane.through, or a smaller radius in "
            "Plane.around), or pass a larger max_regions if you have the memory "
            "(roughly 1 KB per region for a 3 x 1024 MLP)."))

    def _signs(self, ptr: np.ndarray, vid: np.ndarray, pair_of_ring: np.ndarray, chords: _Pairs,
               canonical: _CanonicalValues) -> np.ndarray:
        """Sign of each slot's vertex for its ring's chord, decided as described above."""
        xy = self.xy.view()
        pair = pair_of_ring[ring_ids(ptr)]
        k = chords.neuron[pair]
        cls = self.vclass.view()[vid]
        sign = np.zeros(len(vid), dtype=np.int8)

        old = cls == 0
        sign[old] = np.sign(canonical(vid[old], k[old]))

        on_edge = np.flatnonzero(cls == 1)
        if len(on_edge):
            v = vid[on_edge]
            a, b, t = self.va.view()[v], self.vb.view()[v], self.vt.view()[v]
            kk = k[on_edge]
            za, zb = canonical(a, kk), canonical(b, kk)
            crosses = np.sign(za) * np.sign(zb) < 0
            with np.errstate(divide="ignore", invalid="ignore"):
                tk = np.where(crosses, za / np.where(crosses, za - zb, 1.0), 0.0)
            by_order = np.sign(t - tk) * np.sign(zb - za)
            fixed = np.where(za != 0, np.sign(za), np.sign(zb))
            sign[on_edge] = np.where(crosses, by_order, fixed)

        inner = np.flatnonzero(cls == 2)
        if len(inner):
            p = pair[inner]
            z = chords.evaluate(p, xy[vid[inner]])
            z[np.abs(z) <= chords.tolerance(p, self.snap)] = 0.0
            sign[inner] = np.sign(z)
        return sign

    def _interior_vertices(self, lo: np.ndarray, hi: np.ndarray, pair: np.ndarray,
                           chords: _Pairs) -> np.ndarray:
        xy = self.xy.view()
        za = chords.evaluate(pair, xy[lo])
        zb = chords.evaluate(pair, xy[hi])
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.clip(za / (za - zb), 0.0, 1.0)
        t = np.nan_to_num(t, nan=0.5)
        points = xy[lo] + t[:, None] * (xy[hi] - xy[lo])
        return self.add_vertices(points, 2, lo, hi, t)


def slice_regions(model: nn.Module, plane: Plane, *, max_regions: int = MAX_REGIONS,
                  options: EngineOptions | None = None) -> Partition2D:
    """Exact partition of a plane's domain into the linear regions of `model`.

    A linear region is a maximal connected set of points with one activation pattern
    over all ReLU/LeakyReLU units; on it the network is affine. Regions are convex
    polygons and tile the domain.

    Parameters
    ----------
    model : nn.Module
        Any network whose nonlinearities are ReLU or LeakyReLU: MLPs, CNNs (conv,
        average pooling, flatten), BatchNorm in eval mode, residual additions. It is not
        modified (a float64 copy of its parameters is used). If its parameters are on a
        GPU, the forward passes run there.
    plane : Plane
        The slice and its convex domain.
    max_regions : int, optional
        Stop with :class:`~reluscope.TooManyRegionsError` once the partition has more
        regions than this (a memory guard: wide convolutional layers on a large domain
        can have tens of millions of regions).
    options : EngineOptions, optional
        The engine's tolerances and thresholds (see :class:`EngineOptions`); the default
        suits networks from 2 to thousands of neurons per layer.

    Returns
    -------
    Partition2D
        Vertices, counter-clockwise face rings, edges with the faces on either side and
        the (site, neuron) that created them, and bit-packed activation patterns.

    Raises
    ------
    UnsupportedModelError
        The model uses an operation that is not piecewise affine with ReLU breakpoints,
        or a module in training mode.
    InputTypeError, InputValueError
        `model`, `plane` or `max_regions` is not usable.
    TooManyRegionsError
        The partition exceeds `max_regions`.

    Examples
    --------
    >>> import torch, reluscope as rs
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> plane = rs.Plane(torch.zeros(2), torch.eye(2), ((-1, 1), (-1, 1)))
    >>> part = rs.slice_regions(net, plane)
    >>> part.n_regions >= 1
    True
    """
    clock = time.perf_counter()
    if isinstance(max_regions, bool) or not isinstance(max_regions, int | np.integer) \
            or max_regions < 1:
        raise InputValueError(message("`max_regions` of slice_regions", "a positive integer",
                                      repr(max_regions), "Pass e.g. max_regions=10_000_000."))
    net = Network(model, plane, where="slice_regions")
    if options is None:
        options = EngineOptions()
    elif not isinstance(options, EngineOptions):
        raise InputTypeError(message("`options` of slice_regions", "an EngineOptions", describe(options),
                                     "Pass rs.EngineOptions(...) or leave it out."))
    engine = _Engine(net, plane, options, int(max_regions))
    engine._tick("setup", clock)
    with reuse_freed_memory():
        faces = engine.run()
        clock = time.perf_counter()
        part = build_partition(plane, net.sites, engine.xy.view().copy(), faces.ptr, faces.vid,
                               faces.lab, faces.patterns, engine.label_offset,
                               engine.n_degenerate, options.snap_rtol)
    engine._tick("assembly", clock)
    part.timings.update({k: round(v, 4) for k, v in engine.timings.items()})
    return part
