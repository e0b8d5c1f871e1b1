"""All chords of one convex face at once: the arrangement of straight cuts.

Private kernel of the 2D engine (inputs validated by the caller). Used for the first
site, whose neurons are straight lines across the whole domain: cutting piece by
piece would take one round per neuron, while the arrangement is built in a fixed
number of vectorised steps.

Combinatorics come first, so neighbouring decisions cannot disagree:

* each chord's two ends are ring slots (where its sign on the ring is 0); two chords
  cross inside the face exactly when their ends interleave along the ring;
* the crossing's position along each chord comes from the other chord's values at the
  chord's ends (linear interpolation, as for edge crossings); crossings closer than the
  snap distance along a chord are one vertex;
* faces are the cycles of the half-edge successor map (turn to the next half-edge
  clockwise around each vertex), ordered by pointer jumping.

Any inconsistency (a chord whose signs are not one clean cut, a face that is not a
positive-area polygon, areas that do not add up) returns None and the caller falls
back to cutting piece by piece.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

#: Largest number of chords arranged at once (the pair tables are chords^2).
MAX_CHORDS = 4096


@dataclass
class Arrangement:
    """Faces of the arrangement: CSR rings (counter-clockwise) with edge labels."""

    ptr: np.ndarray
    vid: np.ndarray
    lab: np.ndarray
    chord_of_edge: np.ndarray  # (nnz,) chord index of each slot's edge, -1 on the ring
    forward: np.ndarray  # (nnz,) the slot's edge runs from the chord's first end to its second


def _clean_ends(sign: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Ring positions (first, second) of each chord's two zeros, or None if not a clean cut."""
    zero = sign == 0
    if not (zero.sum(axis=1) == 2).all():
        return None
    m = sign.shape[1]
    first = np.argmax(zero, axis=1)
    second = m - 1 - np.argmax(zero[:, ::-1], axis=1)
    csum = np.concatenate([np.zeros((len(sign), 1), np.int64), np.cumsum(sign, axis=1)], axis=1)
    rows = np.arange(len(sign))
    inner = second - first - 1
    outer = m - inner - 2
    sum_in = csum[rows, second] - csum[rows, first + 1]
    sum_out = csum[rows, m] - sum_in
    ok = (inner > 0) & (outer > 0) & (np.abs(sum_in) == inner) & (np.abs(sum_out) == outer)
    ok &= np.sign(sum_in) == -np.sign(sum_out)
    return (first, second) if ok.all() else None


def arrange(ring: np.ndarray, ring_lab: np.ndarray, xy: np.ndarray, sign: np.ndarray,
            magnitude: np.ndarray, chord_lab: np.ndarray, snap: float,
            make_vertices: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
            ) -> Arrangement | None:
    """Cut one convex ring by all its chords.

    Parameters
    ----------
    ring, ring_lab : (m,) int64
        The face's vertex ids (counter-clockwise, chord ends already inserted) and the
        label of the edge leaving each slot.
    xy : (V, 2) float64
        Vertex coordinates.
    sign : (c, m) int8
        Sign of each chord's function at each ring slot (0 exactly at its two ends).
    magnitude : (c, m) float64
        ``|value|`` of each chord's function at each ring slot.
    chord_lab : (c,) int64
        Label of the edges each chord creates.
    snap : float
        Crossings closer than this (plane units) along a chord are one vertex.
    make_vertices : callable
        ``make_vertices(points (X, 2), a, b, t) -> ids`` creates the interior vertices
        (``points = xy[a] + t (xy[b] - xy[a])``).

    Returns
    -------
    Arrangement or None
    """
    n_chords, m = sign.shape
    ends = _clean_ends(sign) if n_chords <= MAX_CHORDS else None
    if ends is None:
        return None
    first, second = ends
    # coincident chords (the same two ends) draw one set of edges
    _, unique = np.unique(first * m + second, return_index=True)
    drawn = np.zeros(n_chords, dtype=bool)
    drawn[unique] = True

    # chords i < j cross inside the face iff their ends interleave along the ring
    a, b = first[:, None], second[:, None]
    inside1 = (a < first[None]) & (first[None] < b)
    inside2 = (a < second[None]) & (second[None] < b)
    shared = (first[None] == a) | (first[None] == b) | (second[None] == a) | (second[None] == b)
    cross = (inside1 ^ inside2) & ~shared & drawn[:, None] & drawn[None]
    ci, cj = np.nonzero(np.triu(cross, 1))

    start, end = ring[first], ring[second]
    length = np.hypot(*(xy[end] - xy[start]).T)

    def along(chord: np.ndarray, other: np.ndarray) -> np.ndarray:
        """Position (0..1) along `chord` where `other` crosses it."""
        za = magnitude[other, first[chord]]
        zb = magnitude[other, second[chord]]
        return za / (za + zb)

    t_i, t_j = along(ci, cj), along(cj, ci)
    # one entry per (chord, crossing), sorted along each chord
    chord = np.concatenate([ci, cj])
    t = np.concatenate([t_i, t_j])
    pair = np.concatenate([np.arange(len(ci)), np.arange(len(ci))])
    order = np.lexsort((t, chord))
    chord, t, pair = chord[order], t[order], pair[order]
    same = np.zeros(len(chord), dtype=bool)
    same[1:] = (chord[1:] == chord[:-1]) & ((t[1:] - t[:-1]) * length[chord[1:]] <= snap)
    link = np.flatnonzero(same)
    graph = coo_matrix((np.ones(len(link)), (pair[link], pair[link - 1])), shape=(len(ci),) * 2)
    _, cluster = connected_components(graph, directed=False)
    rep = np.full(cluster.max() + 1 if len(cluster) else 0, -1, dtype=np.int64)
    rep[cluster[::-1]] = np.arange(len(cluster))[::-1]  # lowest pair of each cluster
    points = xy[start[ci[rep]]] + t_i[rep, None] * (xy[end[ci[rep]]] - xy[start[ci[rep]]])
    ids = make_vertices(points, start[ci[rep]], end[ci[rep]], t_i[rep])
    node = ids[cluster[pair]]

    # half-edges: chords (consecutive nodes along each drawn chord), then the ring
    keep = np.ones(len(chord), dtype=bool)
    keep[1:] = ~((chord[1:] == chord[:-1]) & (node[1:] == node[:-1]))
    chord, node = chord[keep], node[keep]
    drawn_ids = np.flatnonzero(drawn)
    seq_chord = np.concatenate([drawn_ids, chord, drawn_ids])
    seq_node = np.concatenate([start[drawn_ids], node, end[drawn_ids]])
    seq_rank = np.concatenate([np.zeros(len(drawn_ids)), np.ones(len(chord)), np.full(len(drawn_ids), 2)])
    order = np.lexsort((np.arange(len(seq_chord)), seq_rank, seq_chord))
    seq_chord, seq_node = seq_chord[order], seq_node[order]
    step = np.flatnonzero(seq_chord[1:] == seq_chord[:-1])
    u, v, k = seq_node[step], seq_node[step + 1], seq_chord[step]
    if (u == v).any():
        return None
    direction = (xy[end[k]] - xy[start[k]])
    nxt = np.roll(ring, -1)
    ring_dir = xy[nxt] - xy[ring]
    # half-edge 2e runs u->v, 2e+1 runs v->u; ring edges: inner then outer
    origin = np.stack([np.concatenate([u, ring]), np.concatenate([v, nxt])], axis=1).ravel()
    dest = np.stack([np.concatenate([v, nxt]), np.concatenate([u, ring])], axis=1).ravel()
    dirs = np.concatenate([direction, ring_dir])
    dx = np.stack([dirs[:, 0], -dirs[:, 0]], axis=1).ravel()
    dy = np.stack([dirs[:, 1], -dirs[:, 1]], axis=1).ravel()
    n_chord_edges = len(u)
    label = np.stack([np.concatenate([chord_lab[k], ring_lab]),
                      np.concatenate([chord_lab[k], np.full(m, -1)])], axis=1).ravel()
    edge_chord = np.repeat(np.concatenate([k, np.full(m, -1)]), 2)
    forward = np.tile([True, False], n_chord_edges + m)
    outer = np.zeros(len(origin), dtype=bool)
    outer[2 * n_chord_edges + 1 :: 2] = True

    # successor: at the destination, the outgoing half-edge just clockwise of the twin
    angle = np.arctan2(dy, dx)
    by_vertex = np.lexsort((angle, origin))
    sorted_origin = origin[by_vertex]
    if ((sorted_origin[1:] == sorted_origin[:-1]) & (angle[by_vertex][1:] == angle[by_vertex][:-1])).any():
        return None  # two edges leave a vertex in the same direction
    position = np.empty(len(origin), dtype=np.int64)
    position[by_vertex] = np.arange(len(origin))
    group_start = np.searchsorted(sorted_origin, origin, side="left")
    group_size = np.searchsorted(sorted_origin, origin, side="right") - group_start
    twin = np.arange(len(origin)) ^ 1
    tp = position[twin]
    prev = group_start[twin] + (tp - group_start[twin] - 1) % group_size[twin]
    successor = by_vertex[prev]
    if not (origin[successor] == dest).all():
        return None

    n_half = len(origin)
    graph = coo_matrix((np.ones(n_half), (np.arange(n_half), successor)), shape=(n_half, n_half))
    n_cycles, cycle = connected_components(graph, directed=True, connection="weak")
    outer_cycle = np.unique(cycle[outer])
    if len(outer_cycle) != 1 or (cycle[~outer] == outer_cycle[0]).any():
        return None
    # rank half-edges along each cycle: distance to the one before the cycle's lowest id
    lowest = np.full(n_cycles, n_half, dtype=np.int64)
    np.minimum.at(lowest, cycle, np.arange(n_half))
    last = successor == lowest[cycle]
    jump = np.where(last, np.arange(n_half), successor)
    dist = (~last).astype(np.int64)
    while (jump != jump[jump]).any():
        dist = dist + dist[jump]
        jump = jump[jump]
    inner = np.flatnonzero(~outer)
    inner = inner[np.lexsort((-dist[inner], cycle[inner]))]
    face = cycle[inner]
    counts = np.bincount(face, minlength=n_cycles)
    counts = counts[counts > 0]
    ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    if (counts < 3).any():
        return None
    return Arrangement(ptr, origin[inner], label[inner], edge_chord[inner], forward[inner])
