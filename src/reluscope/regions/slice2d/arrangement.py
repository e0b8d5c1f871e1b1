"""Cut convex faces by all their chords at once: arrangements of straight cuts.

Private kernel of the 2D engine (inputs validated by the caller). On each face of the
current partition a site is affine, so its neurons cut the face along straight
chords. Cutting piece by piece takes one round per chord of the busiest face (a
thousand rounds for the first site of a wide network); here every face's arrangement
is built in a fixed number of vectorised steps.

Combinatorics come first, so neighbouring decisions cannot disagree:

* each chord's two ends are ring slots (where its sign on the ring is 0); two chords
  of a face cross inside it exactly when their ends interleave along its ring;
* the crossing's position along each chord comes from the other chord's values at the
  chord's ends (linear interpolation, as for edge crossings); crossings closer than the
  snap distance along a chord are one vertex;
* around a ring vertex, edges are ordered by ring position (the ring edge leaving it,
  then its chords by the ring position of their other end, then the ring edge
  arriving); around an inner vertex, by the angle of the chords' directions;
* pieces are the cycles of the half-edge successor map (the next half-edge clockwise
  around the vertex reached), found and put in order by one compiled walk over the
  permutation (``_permutation_cycles``).

Any inconsistency (a chord whose signs are not one clean cut, two edges leaving an
inner vertex in the same direction, a successor that does not start where its
predecessor ends, a ring that is not one outer cycle, a piece that runs along an edge
both ways or visits a vertex twice) returns None, and the caller cuts piece by piece
instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from reluscope._kernels.rings import next_slot
from reluscope._kernels.sorting import unique_first, unique_values


@dataclass
class Arrangement:
    """Pieces of the cut faces: CSR rings (counter-clockwise), sorted by face.

    Attributes
    ----------
    ptr, vid, lab : CSR rings of the pieces and the label of the edge leaving each slot.
    face : (K,) int64
        The input ring each piece lies in.
    chord_of_edge : (nnz,) int64
        Chord whose line carries each slot's edge (-1 for a piece of the input ring).
    forward : (nnz,) bool
        The slot's edge runs from the chord's first end to its second.
    chord_start, chord_end : (P,) int64
        The vertices at each chord's first and second end.
    """

    ptr: np.ndarray
    vid: np.ndarray
    lab: np.ndarray
    face: np.ndarray
    chord_of_edge: np.ndarray
    forward: np.ndarray
    chord_start: np.ndarray
    chord_end: np.ndarray


def _chord_ends(sign: np.ndarray, chord_ptr: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Ring positions (first < second) of each chord's two zeros, or None if not clean."""
    n_chords = len(chord_ptr) - 1
    zero = np.flatnonzero(sign == 0)
    if len(zero) != 2 * n_chords:
        return None
    owner = np.searchsorted(chord_ptr, zero, side="right") - 1
    if not (owner.reshape(-1, 2) == np.arange(n_chords)[:, None]).all():
        return None
    local = (zero - chord_ptr[owner]).reshape(-1, 2)
    first, second = local[:, 0], local[:, 1]
    m = np.diff(chord_ptr)
    csum = np.concatenate([[0], np.cumsum(sign, dtype=np.int64)])
    start = chord_ptr[:-1]
    inner = second - first - 1
    outer = m - inner - 2
    sum_in = csum[start + second] - csum[start + first + 1]
    sum_out = csum[chord_ptr[1:]] - csum[start] - sum_in
    ok = (inner > 0) & (outer > 0) & (np.abs(sum_in) == inner) & (np.abs(sum_out) == outer)
    ok &= np.sign(sum_in) == -np.sign(sum_out)
    return (first, second) if ok.all() else None


def _crossing_pairs(chord_face: np.ndarray, first: np.ndarray, second: np.ndarray,
                    drawn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (p, q), p < q, of drawn chords of the same face whose ends interleave along its
    ring (they cross inside it), by p then q (chords sorted by face). Compiled, counted then
    written: no table of all the face's chord pairs is formed (chords^2 per face)."""
    args = (chord_face.astype(np.int64, copy=False), first.astype(np.int64, copy=False),
            second.astype(np.int64, copy=False), drawn.astype(np.bool_, copy=False))
    empty = np.zeros(0, dtype=np.int64)
    n = _crossing_pairs_into(*args, empty, empty)
    p, q = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    _crossing_pairs_into(*args, p, q)
    return p, q


@numba.njit(cache=True, nogil=True)
def _crossing_pairs_into(chord_face: np.ndarray, first: np.ndarray, second: np.ndarray,
                         drawn: np.ndarray, p: np.ndarray, q: np.ndarray
                         ) -> int:  # pragma: no cover - compiled
    """Count the crossing pairs; write them into `p`, `q` while they have room."""
    n = len(chord_face)
    count = 0
    start = 0
    while start < n:
        stop = start
        while stop < n and chord_face[stop] == chord_face[start]:
            stop += 1
        for i in range(start, stop):
            if not drawn[i]:
                continue
            a, b = first[i], second[i]
            for j in range(i + 1, stop):
                if not drawn[j]:
                    continue
                x, y = first[j], second[j]
                if x == a or x == b or y == a or y == b:
                    continue  # chords sharing an end meet there, not inside
                if ((a < x) and (x < b)) != ((a < y) and (y < b)):
                    if count < len(p):
                        p[count] = i
                        q[count] = j
                    count += 1
        start = stop
    return count


@numba.njit(cache=True, nogil=True)
def _permutation_cycles(successor: np.ndarray
                        ) -> tuple[int, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Cycles of a permutation: (count, cycle of each element, steps to its cycle's end).

    Cycles are numbered by their lowest element and cut just before it, so the lowest
    element is the farthest from the end. A map that is not a permutation gives count -1.
    """
    n = len(successor)
    cycle = np.full(n, -1, dtype=np.int64)
    dist = np.zeros(n, dtype=np.int64)
    count = 0
    for i in range(n):
        if cycle[i] >= 0:
            continue
        length = 0
        j = i
        while True:
            if j < 0 or j >= n or cycle[j] >= 0:
                return -1, cycle, dist
            cycle[j] = count
            length += 1
            j = successor[j]
            if j == i:
                break
        j = i
        for step in range(length):
            dist[j] = length - 1 - step
            j = successor[j]
        count += 1
    return count, cycle, dist


@numba.njit(cache=True, nogil=True)
def _root(parent: np.ndarray, x: int) -> int:  # pragma: no cover - compiled
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@numba.njit(cache=True, nogil=True)
def _components(n: int, a: np.ndarray, b: np.ndarray
                ) -> tuple[int, np.ndarray]:  # pragma: no cover - compiled
    """Connected components of the undirected graph with edges (a[i], b[i]) on n nodes.

    Components are numbered in the order of their lowest node.
    """
    parent = np.arange(n)
    for e in range(len(a)):
        ra, rb = _root(parent, a[e]), _root(parent, b[e])
        if ra < rb:
            parent[rb] = ra
        elif rb < ra:
            parent[ra] = rb
    label = np.empty(n, dtype=np.int64)
    of_root = np.full(n, -1, dtype=np.int64)
    count = 0
    for i in range(n):
        r = _root(parent, i)
        if of_root[r] < 0:
            of_root[r] = count
            count += 1
        label[i] = of_root[r]
    return count, label


@dataclass
class _Chords:
    """The chords of one call: ring positions of their ends (first < second), the vertices
    there (start, end), and whether each is drawn (a coincident chord draws no edges)."""

    first: np.ndarray
    second: np.ndarray
    start: np.ndarray
    end: np.ndarray
    drawn: np.ndarray


@dataclass
class _HalfEdges:
    """Half-edges 2e (u -> v) and 2e + 1 (v -> u): chord edges first, then ring edges
    (inner copy, then outer copy). ``chord`` is -1 for ring edges."""

    tail: np.ndarray
    head: np.ndarray
    face: np.ndarray
    label: np.ndarray
    chord: np.ndarray
    forward: np.ndarray
    outer: np.ndarray


def arrange(ptr: np.ndarray, vid: np.ndarray, lab: np.ndarray, xy: np.ndarray,
            chord_face: np.ndarray, chord_lab: np.ndarray, sign: np.ndarray,
            evaluate: Callable[[np.ndarray, np.ndarray], np.ndarray], snap: float,
            make_vertices: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray],
            max_pairs: int = 1 << 24) -> Arrangement | None:
    """Cut convex rings by all their chords.

    Stages (each returns None on an inconsistency, see the module docstring): the chords'
    ends on their rings; which chords cross and where; the inner vertices; the chord
    edges between consecutive vertices along each chord; the half-edges and their
    successor around each vertex; the pieces as the successor's cycles.

    Parameters
    ----------
    ptr, vid, lab : CSR rings (F rings, counter-clockwise), chord ends already inserted.
    xy : (V, 2) float64
        Vertex coordinates.
    chord_face : (P,) int64
        Ring of each chord, sorted (every ring has at least one chord).
    chord_lab : (P,) int64
        Label of the edges each chord creates.
    sign : (sum of the chords' ring lengths,) int8
        Sign of each chord's function at each slot of its ring (chord-major), 0 exactly
        at the chord's two ends.
    evaluate : callable
        ``evaluate(chords, points (N, 2)) -> (N,)`` values of the chords' functions.
    snap : float
        Crossings closer than this (plane units) along a chord are one vertex.
    make_vertices : callable
        ``make_vertices(points (X, 2), a, b, t) -> ids`` creates the inner vertices
        (``points = xy[a] + t (xy[b] - xy[a])``).
    max_pairs : int
        Most chord pairs handled in one call (the pair tables grow with chords^2 per face);
        beyond it the call returns None (the caller cuts in rounds).

    Returns
    -------
    Arrangement or None
    """
    m = np.diff(ptr)
    chords = _locate_chords(ptr, vid, m, chord_face, sign)
    if chords is None:
        return None
    crossing = _crossings(chords, chord_face, xy, evaluate, max_pairs)
    if crossing is None:
        return None
    n_vertices = len(xy)
    on_chord, node, n_new = _inner_vertices(chords, *crossing, xy, snap, make_vertices)
    edges = _chord_edges(chords, on_chord, node)
    if edges is None:
        return None
    half = _half_edges(ptr, vid, lab, m, chord_face, chord_lab, *edges)
    successor = _successors(half, chords, m, xy, n_vertices, n_new)
    if successor is None:
        return None
    return _pieces(half, successor, chords, len(m), n_vertices + n_new)


def _locate_chords(ptr: np.ndarray, vid: np.ndarray, m: np.ndarray, chord_face: np.ndarray,
                   sign: np.ndarray) -> _Chords | None:
    """Each chord's two ends on its ring; coincident chords (the same two ends) draw once."""
    chord_ptr = np.concatenate([[0], np.cumsum(m[chord_face])]).astype(np.int64)
    ends = _chord_ends(sign, chord_ptr)
    if ends is None:
        return None
    first, second = ends
    width = int(m.max()) + 1
    _, unique = unique_first((chord_face * width + first) * width + second)
    drawn = np.zeros(len(chord_face), dtype=bool)
    drawn[unique] = True
    return _Chords(first, second, vid[ptr[chord_face] + first], vid[ptr[chord_face] + second], drawn)


def _crossings(chords: _Chords, chord_face: np.ndarray, xy: np.ndarray,
               evaluate: Callable[[np.ndarray, np.ndarray], np.ndarray], max_pairs: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Crossing chord pairs (p, q) and the position (0..1) of each along p and along q.

    Two chords of a face cross inside it iff their ends interleave along its ring; the
    position along one comes from the other's values at its ends.
    """
    per_face = np.unique(chord_face, return_counts=True)[1]
    if int((per_face * (per_face - 1) // 2).sum()) > max_pairs:
        return None
    p, q = _crossing_pairs(chord_face, chords.first, chords.second, chords.drawn)

    def along(chord: np.ndarray, other: np.ndarray) -> np.ndarray | None:
        za = np.abs(evaluate(other, xy[chords.start[chord]]))
        zb = np.abs(evaluate(other, xy[chords.end[chord]]))
        total = za + zb
        if not (total > 0).all():
            return None
        return za / total

    t_p, t_q = along(p, q), along(q, p)
    if t_p is None or t_q is None:
        return None
    return p, q, t_p, t_q


def _inner_vertices(chords: _Chords, p: np.ndarray, q: np.ndarray, t_p: np.ndarray, t_q: np.ndarray,
                    xy: np.ndarray, snap: float,
                    make_vertices: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
                    ) -> tuple[np.ndarray, np.ndarray, int]:
    """One vertex per cluster of crossings closer than `snap` along a chord.

    Returns (chord, node) per (chord, crossing), sorted along each chord, and the number
    of vertices made.
    """
    chord = np.concatenate([p, q])
    t = np.concatenate([t_p, t_q])
    pair = np.tile(np.arange(len(p)), 2)
    order = np.lexsort((t, chord))
    chord, t, pair = chord[order], t[order], pair[order]
    start, end = chords.start, chords.end
    length = np.hypot(*(xy[end] - xy[start]).T)
    if not len(p):
        return chord, np.zeros(0, dtype=np.int64), 0
    link = np.flatnonzero((chord[1:] == chord[:-1]) & ((t[1:] - t[:-1]) * length[chord[1:]] <= snap))
    n_new, cluster = _components(len(p), pair[link + 1], pair[link])
    rep = np.zeros(n_new, dtype=np.int64)
    rep[cluster[::-1]] = np.arange(len(p))[::-1]  # the lowest pair of each cluster
    rp = p[rep]
    points = xy[start[rp]] + t_p[rep, None] * (xy[end[rp]] - xy[start[rp]])
    node = make_vertices(points, start[rp], end[rp], t_p[rep])[cluster[pair]]
    return chord, node, n_new


def _chord_edges(chords: _Chords, chord: np.ndarray, node: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Edges (u, v, chord) between consecutive vertices along each drawn chord, from its
    first end to its second."""
    fresh = np.ones(len(chord), dtype=bool)
    fresh[1:] = (chord[1:] != chord[:-1]) | (node[1:] != node[:-1])
    chord, node = chord[fresh], node[fresh]
    ids = np.flatnonzero(chords.drawn)
    seq_chord = np.concatenate([ids, chord, ids])
    seq_node = np.concatenate([chords.start[ids], node, chords.end[ids]])
    seq_rank = np.concatenate([np.zeros(len(ids)), np.ones(len(chord)), np.full(len(ids), 2.0)])
    order = np.lexsort((seq_rank, seq_chord))
    seq_chord, seq_node = seq_chord[order], seq_node[order]
    step = np.flatnonzero(seq_chord[1:] == seq_chord[:-1])
    u, v, k = seq_node[step], seq_node[step + 1], seq_chord[step]
    if (u == v).any():
        return None
    return u, v, k


def _half_edges(ptr: np.ndarray, vid: np.ndarray, lab: np.ndarray, m: np.ndarray,
                chord_face: np.ndarray, chord_lab: np.ndarray, u: np.ndarray, v: np.ndarray,
                k: np.ndarray) -> _HalfEdges:
    """Both half-edges of every chord edge and ring edge."""
    ring_face = np.repeat(np.arange(len(m)), m)
    ring_next = vid[next_slot(ptr)]
    n_chord_edges, n_slots = len(u), len(vid)
    tail = np.stack([np.concatenate([u, vid]), np.concatenate([v, ring_next])], axis=1).ravel()
    head = np.stack([np.concatenate([v, ring_next]), np.concatenate([u, vid])], axis=1).ravel()
    face = np.repeat(np.concatenate([chord_face[k], ring_face]), 2)
    label = np.stack([np.concatenate([chord_lab[k], lab]),
                      np.concatenate([chord_lab[k], np.full(n_slots, -1)])], axis=1).ravel()
    chord = np.repeat(np.concatenate([k, np.full(n_slots, -1)]), 2)
    forward = np.tile([True, False], n_chord_edges + n_slots)
    outer = np.zeros(len(tail), dtype=bool)
    outer[2 * n_chord_edges + 1 :: 2] = True
    return _HalfEdges(tail, head, face, label, chord, forward, outer)


def _successors(half: _HalfEdges, chords: _Chords, m: np.ndarray, xy: np.ndarray, n_vertices: int,
                n_new: int) -> np.ndarray | None:
    """The next half-edge clockwise around the vertex each half-edge reaches.

    Half-edges leaving a vertex are ordered counter-clockwise: at a ring vertex by ring
    position (the ring edge leaving it, its chords by the position of their other end,
    the ring edge arriving); at an inner vertex by the angle of the chord's direction.
    Compiled: a key and a vertex id per half-edge and their sort are all it holds.
    """
    key = np.empty(len(half.tail), dtype=np.float64)
    if not _leaving_keys(half.tail, half.face, half.chord, half.forward, half.outer, chords.first,
                         chords.second, chords.start, chords.end, m.astype(np.int64, copy=False),
                         xy, n_vertices, key):
        return None  # a chord edge leaving a ring vertex that is not its end
    where = half.face.astype(np.int64) * (n_vertices + n_new) + half.tail
    by_vertex = np.lexsort((key, where))
    successor = np.empty(len(key), dtype=np.int64)
    if not _next_clockwise(by_vertex, where, key, half.tail, half.head, successor):
        return None  # two edges leave a vertex in the same direction, or a successor is off
    return successor


@numba.njit(cache=True, nogil=True)
def _leaving_keys(tail: np.ndarray, face: np.ndarray, chord: np.ndarray, forward: np.ndarray,
                  outer: np.ndarray, first: np.ndarray, second: np.ndarray, start: np.ndarray,
                  end: np.ndarray, m: np.ndarray, xy: np.ndarray, n_vertices: int,
                  key: np.ndarray) -> bool:  # pragma: no cover - compiled
    """Each half-edge's counter-clockwise order key around the vertex it leaves (`key`, H):
    0 for the ring edge leaving a ring vertex, 1 + the ring span to a chord's other end,
    ring length + 1 for the ring edge arriving; the chord's angle at an inner vertex.
    False if a chord edge leaves a ring vertex other than its chord's ends."""
    for h in range(len(tail)):
        c, f = chord[h], face[h]
        if tail[h] >= n_vertices:  # inner vertices are the new ones: only chords leave them
            dx, dy = xy[end[c], 0] - xy[start[c], 0], xy[end[c], 1] - xy[start[c], 1]
            key[h] = np.arctan2(dy, dx) if forward[h] else np.arctan2(-dy, -dx)
        elif c >= 0:
            if forward[h] and tail[h] == start[c]:
                span = second[c] - first[c]
            elif not forward[h] and tail[h] == end[c]:
                span = first[c] - second[c]
            else:
                return False
            key[h] = 1.0 + (span % m[f] + m[f]) % m[f]
        else:
            key[h] = m[f] + 1.0 if outer[h] else 0.0
    return True


@numba.njit(cache=True, nogil=True)
def _next_clockwise(by_vertex: np.ndarray, where: np.ndarray, key: np.ndarray, tail: np.ndarray,
                    head: np.ndarray, successor: np.ndarray) -> bool:  # pragma: no cover - compiled
    """Fill `successor`: the half-edge arriving at a vertex continues along the one leaving it
    just before its twin counter-clockwise (`by_vertex`: half-edges sorted by (where, key)).
    False if two leave a vertex with the same key or a successor does not start where its
    predecessor ends."""
    n = len(by_vertex)
    lo = 0
    while lo < n:
        hi = lo + 1
        while hi < n and where[by_vertex[hi]] == where[by_vertex[lo]]:
            if key[by_vertex[hi]] == key[by_vertex[hi - 1]]:
                return False
            hi += 1
        count = hi - lo
        for j in range(lo, hi):
            successor[by_vertex[j] ^ 1] = by_vertex[lo + (j - lo - 1 + count) % count]
        lo = hi
    for h in range(n):
        if tail[successor[h]] != head[h]:
            return False
    return True


def _pieces(half: _HalfEdges, successor: np.ndarray, chords: _Chords, n_faces: int,
            n_all_vertices: int) -> Arrangement | None:
    """The pieces: the successor's cycles of inner half-edges, each ring one outer cycle."""
    n_half = len(half.tail)
    n_cycles, cycle, dist = _permutation_cycles(successor)
    if n_cycles < 0:
        return None
    outer = half.outer
    outer_cycles = unique_values(cycle[outer])
    kind = np.zeros(n_cycles, dtype=np.int8)  # 1 inner, 2 outer
    kind[cycle[~outer]] |= 1
    kind[cycle[outer]] |= 2
    if len(outer_cycles) != n_faces or (kind == 3).any():
        return None
    # a convex piece never runs along an edge both ways nor visits a vertex twice
    # (a dangling edge left by inconsistent orders would do both)
    if (cycle == cycle[np.arange(n_half) ^ 1]).any():
        return None
    visit = cycle.astype(np.int64) * n_all_vertices + half.tail
    if len(unique_values(visit)) != n_half:
        return None
    inner = np.flatnonzero(~outer)
    inner = inner[np.lexsort((-dist[inner], cycle[inner], half.face[inner]))]
    counts = np.bincount(cycle[inner], minlength=n_cycles)
    piece_start = np.flatnonzero(np.concatenate([[True], cycle[inner][1:] != cycle[inner][:-1]]))
    piece_len = counts[cycle[inner][piece_start]]
    if (piece_len < 3).any():
        return None
    out_ptr = np.concatenate([[0], np.cumsum(piece_len)]).astype(np.int64)
    return Arrangement(out_ptr, half.tail[inner], half.label[inner], half.face[inner][piece_start],
                       half.chord[inner], half.forward[inner], chords.start, chords.end)
