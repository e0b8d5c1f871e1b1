"""Merge the pieces a max-pool stage cut without changing the network's region.

See :mod:`reluscope.regions.pools` for why a running maximum over-cuts. After the exact
engines finish, patterns are made canonical and every face (piece) is merged with its
neighbours across a stage's edge (breakpoint) when their canonical patterns are equal:
the network has one activation state, hence one affine map, on both. A region with one
state is convex (each layer's conditions are linear inequalities given the earlier
layers' states), so a merged face's ring is its kept vertices sorted by angle around
their mean. Vertices a kept edge still ends at stay on the ring (collinear corners, like
the engine's own T-junctions); vertices on removed edges only are dropped.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from reluscope._kernels.bits import xor_popcount
from reluscope._kernels.rings import ring_ids
from reluscope.regions.partition1d import Partition1D
from reluscope.regions.partition2d import Partition2D
from reluscope.regions.patterns import PackedPatterns
from reluscope.regions.pools import canonical, has_pools, keep_pool_switches


def _stage_mask(sites: tuple, index: np.ndarray) -> np.ndarray:
    """(m,) bool: index names a max-pool stage site (negative indices: no)."""
    is_stage = np.array([s.pool_stage > 0 for s in sites] + [False])
    return is_stage[np.where(index >= 0, index, len(sites))]


def _equal_patterns(patterns: tuple[np.ndarray, ...], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(m,) bool: rows a and b have equal patterns at every site."""
    same = np.ones(len(a), dtype=bool)
    for packed in patterns:
        same &= xor_popcount(packed, a, b) == 0
    return same


def merge_pool_faces(part: Partition2D) -> Partition2D:
    """`part` with canonical patterns and one face per region (see the module docstring).

    Parameters
    ----------
    part : Partition2D
        The engine's partition of a network with max-pool stages (returned unchanged for
        other networks).

    Returns
    -------
    Partition2D
    """
    if not has_pools(part.sites):
        return part
    clock = time.perf_counter()
    patterns = canonical(part.sites, part.patterns)
    ef = part.edge_faces
    candidate = np.flatnonzero((ef[:, 1] >= 0) & _stage_mask(part.sites, part.edge_site))
    spurious = candidate[_equal_patterns(patterns, ef[candidate, 0], ef[candidate, 1])]
    n_faces = part.n_regions
    if not len(spurious):
        return dataclasses.replace(part, patterns=PackedPatterns(patterns), timings=dict(part.timings))
    graph = coo_matrix((np.ones(len(spurious)), (ef[spurious, 0], ef[spurious, 1])),
                       shape=(n_faces, n_faces))
    _, label = connected_components(graph, directed=False)
    # number the merged faces by their first member, so unmerged faces keep their order
    first = np.full(label.max() + 1, n_faces, dtype=np.int64)
    np.minimum.at(first, label, np.arange(n_faces))
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    label = rank[label]
    first = np.sort(first)
    size = np.bincount(label)

    new_ef = np.where(ef >= 0, label[np.maximum(ef, 0)], -1)
    kept = new_ef[:, 0] != new_ef[:, 1]
    edges, new_ef = part.edges[kept], new_ef[kept]

    # rings: unmerged faces keep theirs; merged ones take the start vertex of each kept
    # half-edge (u -> v for the face on the left of u -> v, v -> u for the right one)
    slot_face = label[ring_ids(part.face_offsets)]
    own = size[slot_face] == 1
    halves = [(new_ef[:, side], edges[:, side]) for side in (0, 1)]
    face = np.concatenate([f for f, _ in halves])
    start = np.concatenate([v for _, v in halves])
    merged = (face >= 0) & (size[np.maximum(face, 0)] > 1)
    face, start = face[merged], start[merged]
    xy = part.vertices
    centre = np.zeros((len(size), 2))
    np.add.at(centre, face, xy[start])
    centre /= np.maximum(np.bincount(face, minlength=len(size)), 1)[:, None]
    angle = np.arctan2(*(xy[start] - centre[face]).T[::-1])
    ring_face = np.concatenate([slot_face[own], face])
    ring_key = np.concatenate([np.flatnonzero(own).astype(np.float64), angle])
    ring_vertex = np.concatenate([part.face_vertices[own], start])
    order = np.lexsort((ring_key, ring_face))
    ring_vertex = ring_vertex[order]
    offsets = np.zeros(len(size) + 1, dtype=np.int64)
    np.cumsum(np.bincount(ring_face, minlength=len(size)), out=offsets[1:])

    # drop the vertices that no ring uses any more
    used = np.zeros(part.n_vertices, dtype=bool)
    used[ring_vertex] = True
    remap = np.cumsum(used) - 1
    merged_part = dataclasses.replace(
        part, vertices=xy[used], face_offsets=offsets, face_vertices=remap[ring_vertex],
        edges=remap[edges], edge_faces=new_ef, edge_site=part.edge_site[kept],
        edge_neuron=part.edge_neuron[kept], patterns=PackedPatterns([p[first] for p in patterns]),
        timings=dict(part.timings))
    merged_part = _relabel_stage_edges(merged_part)
    merged_part.timings["merge"] = round(time.perf_counter() - clock, 4)
    return merged_part


def _relabel_stage_edges(part: Partition2D) -> Partition2D:
    """Kept stage edges name a neuron that really switches across them.

    An edge records the neuron whose line made it. Where overlapping max-pool windows
    compare the same two candidates, a later stage's line runs along it too; if the
    making stage's window keeps its argmax across the edge (a later candidate wins on both
    sides) while the other window's changes, the edge is a region boundary only through
    the other window: it takes that window's switch (the highest differing stage).
    """
    ef = part.edge_faces
    stage = np.flatnonzero((ef[:, 1] >= 0) & _stage_mask(part.sites, part.edge_site))
    if not len(stage):
        return part
    pair, site, neuron = part.patterns.differing([s.size for s in part.sites], ef[stage, 0],
                                                 ef[stage, 1])
    real = keep_pool_switches(part.sites, pair, site, neuron)
    order = np.lexsort((neuron[real], site[real], pair[real]))  # by edge, then site, neuron
    pair, site, neuron = pair[real][order], site[real][order], neuron[real][order]
    recorded = (site == part.edge_site[stage][pair]) & (neuron == part.edge_neuron[stage][pair])
    named = np.bincount(pair[recorded], minlength=len(stage)) > 0
    # the first switch of each edge whose recorded neuron does not switch
    first = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    wrong = ~named[pair[first]]
    if not wrong.any():
        return part
    fix = stage[pair[first[wrong]]]
    edge_site, edge_neuron = part.edge_site.copy(), part.edge_neuron.copy()
    edge_site[fix], edge_neuron[fix] = site[first[wrong]], neuron[first[wrong]]
    return dataclasses.replace(part, edge_site=edge_site, edge_neuron=edge_neuron)


def merge_pool_pieces(part: Partition1D) -> Partition1D:
    """`part` with canonical patterns and one piece per traversal of a region.

    A piece is joined to the previous one of its segment when the breakpoint between them
    is a max-pool stage's and their canonical patterns are equal. Breakpoints kept at a
    stage get the site, first neuron and count of their real switches.

    Parameters
    ----------
    part : Partition1D
        The engine's pieces for a network with max-pool stages (returned unchanged for
        other networks).

    Returns
    -------
    Partition1D
    """
    if not has_pools(part.sites):
        return part
    patterns = canonical(part.sites, part.patterns)
    n = part.n_pieces
    site = part.boundary_site
    joins = np.zeros(n, dtype=bool)
    inner = np.flatnonzero((site >= 0) & _stage_mask(part.sites, site))
    joins[inner] = _equal_patterns(patterns, inner, inner - 1)
    starts = np.flatnonzero(~joins)
    ends = np.append(starts[1:], n) - 1
    before = np.concatenate([[0], np.cumsum(~joins)])
    merged = dataclasses.replace(
        part, piece_offsets=before[part.piece_offsets], t0=part.t0[starts], t1=part.t1[ends],
        boundary_site=site[starts], boundary_neuron=part.boundary_neuron[starts],
        boundary_count=part.boundary_count[starts], patterns=tuple(p[starts] for p in patterns),
        output_start=part.output_start[starts], output_end=part.output_end[ends],
        timings=dict(part.timings))
    # a kept stage breakpoint: its real switches (the engine counted raw stage flips)
    ptr, sw_site, sw_neuron = merged.boundary_switches()
    bsite, bneuron = merged.boundary_site.copy(), merged.boundary_neuron.copy()
    bcount = merged.boundary_count.copy()
    at_stage = np.flatnonzero((bsite >= 0) & _stage_mask(merged.sites, bsite) & (np.diff(ptr) > 0))
    bsite[at_stage], bneuron[at_stage] = sw_site[ptr[at_stage]], sw_neuron[ptr[at_stage]]
    rows = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    of_lead = np.bincount(rows[sw_site == bsite[rows]], minlength=len(ptr) - 1)
    bcount[at_stage] = of_lead[at_stage]
    return dataclasses.replace(merged, boundary_site=bsite, boundary_neuron=bneuron,
                               boundary_count=bcount)
