"""Where a site's chords cross the edges of the current partition.

Each crossing is computed once per (edge, neuron), from the canonical values at the
edge's two ends, and inserted into the rings of both faces sharing the edge, in the same
order: neighbouring faces stay consistent by construction.
"""

from __future__ import annotations

import itertools

import numba
import numpy as np

from reluscope._kernels.rings import batch_bounds, gather_rings, next_slot, ring_ids, search_sorted
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
                          vertices: VertexStore, snap: float, batch: int = 1 << 20) -> Faces:
    """Create the vertices where chords cross existing edges; insert them in the rings.

    Crossings of one edge closer than `snap` (plane units) to the previous one are one
    vertex: several neurons whose lines meet on an edge (lines through one point, such as
    the pairwise comparisons of three max-pool candidates in overlapping windows) cross
    it there up to rounding, and separate vertices would make slivers of zero area.
    :meth:`Cutter.signs` gives each of those neurons the sign 0 at that vertex.

    `batch`: (chord, ring slot) pairs, and ring slots, handled at a time (the temporaries
    of a slice of 10^6 faces would otherwise be several times its rings: the peak of the
    whole slice).
    """
    xy = vertices.xy
    nxt = next_slot(faces.ptr)
    lo, hi, k = _crossed_edges(faces, chords, canonical, nxt, batch)
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

    # Insert each edge's points after the slot that starts the edge, in ring order: the
    # points of edge (lo, hi) are ids[first : first + count], sorted from lo to hi.
    n_vertices = vertices.size
    edge_key = lo * n_vertices + hi
    del lo, hi, t
    n_slots = len(faces.vid)
    first_of = np.empty(n_slots, dtype=np.int64)
    count = np.empty(n_slots, dtype=np.int64)
    for s0 in range(0, n_slots, batch):
        a, b = faces.vid[s0 : s0 + batch], faces.vid[nxt[s0 : s0 + batch]]
        f, stop = search_sorted(edge_key, np.minimum(a, b) * n_vertices + np.maximum(a, b),
                                sides=("left", "right"))
        first_of[s0 : s0 + batch], count[s0 : s0 + batch] = f, stop - f
    del edge_key
    ring_width = np.add.reduceat(count, faces.ptr[:-1]) + np.diff(faces.ptr) if len(faces.ptr) > 1 \
        else np.zeros(0, np.int64)
    new_ptr = np.zeros(len(faces.ptr), dtype=np.int64)
    np.cumsum(ring_width, out=new_ptr[1:])
    vid = np.empty(int(new_ptr[-1]), dtype=faces.vid.dtype)
    lab = np.empty(int(new_ptr[-1]), dtype=faces.lab.dtype)
    _insert_points(faces.vid, faces.lab, nxt, first_of, count, ids, vid, lab)
    return Faces(new_ptr, vid, lab, faces.patterns, faces.parent)


def _crossed_edges(faces: Faces, chords: Pairs, canonical: CanonicalValues, nxt: np.ndarray,
                   batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, neuron) of every ring edge a chord of its face crosses (its canonical values
    at the edge's ends have opposite signs), once per face: chords are taken a batch of
    about `batch` (chord, ring slot) pairs at a time."""
    bounds = batch_bounds(faces.ptr[chords.face + 1] - faces.ptr[chords.face], batch)
    empty = np.zeros(0, dtype=np.int64)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [(empty, empty, empty)]
    for c0, c1 in itertools.pairwise(bounds):
        pair_ptr, slots = gather_rings(faces.ptr, chords.face[c0:c1])
        k = chords.neuron[c0 + ring_ids(pair_ptr)]
        a = faces.vid[slots]
        b = faces.vid[nxt[slots]]
        del slots, pair_ptr
        hit = np.flatnonzero(np.sign(canonical(a, k)) * np.sign(canonical(b, k)) < 0)
        parts.append((np.minimum(a[hit], b[hit]), np.maximum(a[hit], b[hit]), k[hit]))
    lo, hi, k = (np.concatenate([part[i] for part in parts]) for i in range(3))
    return lo, hi, k


@numba.njit(cache=True, nogil=True)
def _insert_points(vid: np.ndarray, lab: np.ndarray, nxt: np.ndarray, first: np.ndarray,
                   count: np.ndarray, ids: np.ndarray, out_vid: np.ndarray, out_lab: np.ndarray
                   ) -> None:  # pragma: no cover - compiled
    """Each slot, then the `count` points of its edge in ring order (from its own vertex to
    the next: reversed where the edge runs from the higher vertex id), with its label."""
    o = 0
    for i in range(len(vid)):
        out_vid[o] = vid[i]
        out_lab[o] = lab[i]
        o += 1
        c = count[i]
        forward = vid[i] < vid[nxt[i]]
        for r in range(c):
            out_vid[o] = ids[first[i] + r] if forward else ids[first[i] + c - 1 - r]
            out_lab[o] = lab[i]
            o += 1
