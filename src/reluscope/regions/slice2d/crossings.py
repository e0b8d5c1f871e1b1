"""Where a site's chords cross the edges of the current partition.

Each crossing is computed once per (edge, neuron), from the canonical values at the
edge's two ends, and inserted into the rings of both faces sharing the edge, in the same
order: neighbouring faces stay consistent by construction.
"""

from __future__ import annotations

import numpy as np

from reluscope._kernels.rings import expand_slots, gather_rings, next_slot, ring_ids, search_sorted
from reluscope._kernels.sorting import unique_first
from reluscope.regions.slice2d.faces import Faces
from reluscope.regions.slice2d.pairs import CanonicalValues, Pairs
from reluscope.regions.slice2d.vertices import VertexKind, VertexStore


def order_along_edges(lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
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


def insert_edge_crossings(faces: Faces, chords: Pairs, canonical: CanonicalValues,
                          vertices: VertexStore, snap: float) -> Faces:
    """Create the vertices where chords cross existing edges; insert them in the rings.

    Crossings of one edge closer than `snap` (plane units) to the previous one are one
    vertex: several neurons whose lines meet on an edge (lines through one point, such as
    the pairwise comparisons of three max-pool candidates in overlapping windows) cross
    it there up to rounding, and separate vertices would make slivers of zero area.
    :meth:`Cutter.signs` gives each of those neurons the sign 0 at that vertex.
    """
    xy = vertices.xy
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
    n_vertices, n_neurons = vertices.size, int(k.max()) + 1 if len(k) else 1
    if n_vertices * n_vertices * n_neurons < 2**62:  # one int64 key: fast
        _, first = unique_first((lo * n_vertices + hi) * n_neurons + k)
    else:
        _, first = np.unique(np.stack([lo, hi, k], axis=1), axis=0, return_index=True)
    lo, hi, k = lo[first], hi[first], k[first]
    zlo = canonical(lo, k)
    zhi = canonical(hi, k)
    t = zlo / (zlo - zhi)
    order = order_along_edges(lo, hi, t)
    lo, hi, t = lo[order], hi[order], t[order]
    # neurons crossing an edge at the same point (up to `snap`) share one vertex there
    length = np.hypot(*(xy[hi] - xy[lo]).T)
    fresh = np.ones(len(t), dtype=bool)
    fresh[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1]) | ((t[1:] - t[:-1]) * length[1:] > snap)
    lo, hi, t = lo[fresh], hi[fresh], t[fresh]
    points = xy[lo] + t[:, None] * (xy[hi] - xy[lo])
    ids = vertices.add(points, VertexKind.ON_EDGE, lo, hi, t)

    # Insert each edge's points after the slot that starts the edge, in ring order.
    n_vertices = vertices.size
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
    return Faces(new_ptr, vid, faces.lab[origin], faces.patterns, faces.parent)
