"""Affine maps of one site on every face, propagated across shared edges.

Private kernel of the 2D engine (inputs validated by the caller). Only used for
*chain* links: the pre-activation of site ``l`` is ``A_l a_{l-1} + b_l``.

Two faces sharing an edge differ in exactly the neuron that created the edge, so
their maps of site ``l`` differ by a rank-1 term:

* edge of site ``l-1`` (neuron k, both faces inside one face Q of the partition
  before site l-1): ``s * A_l[:, k] (x) g_k`` with ``g_k`` neuron k's map on Q;
* edge of site ``l-2`` (neuron j, inside face H two levels up):
  ``s * (A_l (gate_{l-1} * A_{l-1}[:, j])) (x) g_j`` (one matrix-vector product);

with ``s = gate_after - gate_before`` of that neuron (``+-(1 - negative_slope)``).
A breadth-first traversal computes one *anchor* face per connected piece in full and
every other face from a neighbour, preferring the cheap rank-1 edges. Edges whose two
faces differ in more than one neuron (coinciding boundaries) are not used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from reluscope.regions._bits import bit_at, xor_popcount
from reluscope.regions._rings import edge_twins, ring_ids, search_sorted, site_of_label


@dataclass
class ChordTable:
    """Maps of the chords of one site: rows sorted by (face, neuron), origin form (c, ds, dt)."""

    key: np.ndarray  # face * size + neuron, sorted
    rows: np.ndarray  # (P, 3)
    size: int

    def lookup(self, face: np.ndarray, neuron: np.ndarray) -> np.ndarray:
        (pos,) = search_sorted(self.key, face * self.size + neuron)
        return self.rows[np.minimum(pos, len(self.rows) - 1)]


@dataclass
class Adjacency:
    """Directed usable edges between faces, CSR by source face."""

    ptr: np.ndarray
    dst: np.ndarray
    neuron: np.ndarray
    step: np.ndarray  # gate(dst) - gate(src) for that neuron
    cheap: np.ndarray  # True: created by the previous site (rank-1); False: two sites back


def build_adjacency(ptr: np.ndarray, vid: np.ndarray, lab: np.ndarray, patterns: list[np.ndarray],
                    label_offset: np.ndarray, site: int, slopes: list[float]) -> Adjacency:
    """Usable edges of the faces before `site` is applied (see module docstring)."""
    n_faces = len(ptr) - 1
    face = ring_ids(ptr)
    first, second = edge_twins(ptr, vid)
    shared = second >= 0
    f, g = face[first[shared]], face[second[shared]]
    layer, neuron = site_of_label(lab[first[shared]], label_offset)
    usable = ((layer == site - 1) | (layer == site - 2)) & (layer >= 0)
    f, g, layer, neuron = f[usable], g[usable], layer[usable], neuron[usable]
    # both faces must differ in exactly this neuron over all earlier sites
    flips = np.zeros(len(f), dtype=np.int64)
    for packed in patterns:
        flips += xor_popcount(packed, f, g)
    ok = flips == 1
    f, g, layer, neuron = f[ok], g[ok], layer[ok], neuron[ok]
    bit_f = np.zeros(len(f), dtype=np.float64)
    bit_g = np.zeros(len(f), dtype=np.float64)
    for m in np.unique(layer):
        sel = np.flatnonzero(layer == m)
        bit_f[sel] = bit_at(patterns[m], f[sel], neuron[sel])
        bit_g[sel] = bit_at(patterns[m], g[sel], neuron[sel])
    slope = np.asarray(slopes, dtype=np.float64)[layer] if len(layer) else np.zeros(0)
    gate_f = bit_f + slope * (1 - bit_f)
    gate_g = bit_g + slope * (1 - bit_g)
    src = np.concatenate([f, g])
    dst = np.concatenate([g, f])
    step = np.concatenate([gate_g - gate_f, gate_f - gate_g])
    neuron2 = np.concatenate([neuron, neuron])
    cheap = np.concatenate([layer == site - 1, layer == site - 1])
    order = np.argsort(src, kind="stable")
    out_ptr = np.zeros(n_faces + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n_faces), out=out_ptr[1:])
    return Adjacency(out_ptr, dst[order], neuron2[order], step[order], cheap[order])


def _neighbours(adj: Adjacency, nodes: np.ndarray, cheap: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(src, dst, neuron, step) of the edges of the given kind leaving `nodes`."""
    count = adj.ptr[nodes + 1] - adj.ptr[nodes]
    first = np.repeat(adj.ptr[nodes] - np.cumsum(count) + count, count)
    slots = first + np.arange(int(count.sum()))
    keep = adj.cheap[slots] == cheap
    slots = slots[keep]
    return np.repeat(nodes, count)[keep], adj.dst[slots], adj.neuron[slots], adj.step[slots]


def propagate(adj: Adjacency, n_faces: int, parent: np.ndarray, grandparent: np.ndarray,
              chords_prev: ChordTable, chords_prev2: ChordTable | None,
              matrix: torch.Tensor, matrix_prev: torch.Tensor | None,
              gate_prev: Callable[[np.ndarray], torch.Tensor],
              anchor_maps: Callable[[np.ndarray], torch.Tensor], budget: int
              ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield (faces, maps (3, N, size)) batches covering every face exactly once.

    Parameters
    ----------
    adj : Adjacency
    n_faces : int
    parent, grandparent : (F,) int64
        Face of the partition before site l-1 (resp. l-2) containing each face.
    chords_prev, chords_prev2 : ChordTable
        Chord maps of sites l-1 and l-2 (indexed by parent / grandparent face).
    matrix, matrix_prev : torch.Tensor
        Link matrices A_l (size_l, size_{l-1}) and A_{l-1} (size_{l-1}, size_{l-2}).
    gate_prev : callable
        ``gate_prev(faces)`` -> (N, size_{l-1}) float64 gates of site l-1 on those faces.
    anchor_maps : callable
        ``anchor_maps(faces)`` -> (3, N, size) maps computed in full.
    budget : int
        Faces per yielded batch (approximately).
    """
    device = matrix.device
    rows_of = matrix.T.contiguous()  # row k = column k of A_l (contiguous gathers)
    visited = np.zeros(n_faces, dtype=bool)
    # maps of the faces that may still serve as predecessors, and their positions
    store = _Store(n_faces)
    pending: list[tuple[np.ndarray, torch.Tensor]] = []
    pending_count = 0
    next_anchor = 0
    n_anchor_steps = 0
    cross_edges = chords_prev2 is not None and matrix_prev is not None

    def emit(faces: np.ndarray, maps: torch.Tensor) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        nonlocal pending_count
        if len(faces) >= budget // 4:  # large enough on its own: no copy
            yield faces, maps
            return
        pending.append((faces, maps))
        pending_count += len(faces)
        if pending_count >= budget:
            yield np.concatenate([p[0] for p in pending]), torch.cat([p[1] for p in pending], dim=1)
            pending.clear()
            pending_count = 0

    def first_hits(src: np.ndarray, dst: np.ndarray, *rest: np.ndarray) -> list[np.ndarray]:
        fresh = ~visited[dst]
        src, dst, rest = src[fresh], dst[fresh], tuple(r[fresh] for r in rest)
        _, first = np.unique(dst, return_index=True)
        return [src[first], dst[first], *(r[first] for r in rest)]

    frontier = np.zeros(0, dtype=np.int64)
    while True:
        if len(frontier):
            src, dst, neuron, step = first_hits(*_neighbours(adj, frontier, True))
            if len(dst):
                g = torch.from_numpy((chords_prev.lookup(parent[dst], neuron) * step[:, None]).T
                                     ).to(device)  # (3, N)
                cols = rows_of[torch.from_numpy(neuron).to(device)]  # (N, size)
                maps = torch.addcmul(store.get(src), g[:, :, None], cols[None])
                visited[dst] = True
                # without expensive edges only the frontier can be a predecessor
                store.add(dst, maps, keep_old=cross_edges)
                yield from emit(dst, maps)
                frontier = dst
                continue
        if cross_edges and store.size:
            assert chords_prev2 is not None and matrix_prev is not None
            src, dst, neuron, step = first_hits(*_neighbours(adj, store.faces(), False))
            # one entry per parent face: its siblings then follow through cheap edges
            _, one = np.unique(parent[dst], return_index=True)
            src, dst, neuron, step = src[one], dst[one], neuron[one], step[one]
            if len(dst):
                # column j of A_{l-1}, gated by site l-1 (same on both sides), through A_l
                cols = matrix_prev[:, torch.from_numpy(neuron).to(device)]  # (size_{l-1}, N)
                through = matrix @ (gate_prev(src).T.to(device) * cols)  # (size_l, N)
                g = torch.from_numpy((chords_prev2.lookup(grandparent[dst], neuron)
                                      * step[:, None]).T).to(device)  # (3, N)
                maps = torch.addcmul(store.get(src), g[:, :, None], through.T[None])
                visited[dst] = True
                store.add(dst, maps, keep_old=False)
                yield from emit(dst, maps)
                frontier = dst
                continue
        # nothing reachable: start new pieces from anchors computed in full
        while next_anchor < n_faces and visited[next_anchor]:
            next_anchor += 1
        if next_anchor >= n_faces:
            break
        # usually one anchor reaches every face; if the usable edges leave many pieces,
        # anchor them in growing batches (one face per parent) rather than one by one
        n_anchor_steps += 1
        if n_anchor_steps <= 16:
            start = np.array([next_anchor], dtype=np.int64)
        else:
            rest = np.flatnonzero(~visited[next_anchor:]) + next_anchor
            _, one = np.unique(parent[rest], return_index=True)
            start = np.sort(rest[one])[: min(budget, 2 ** (n_anchor_steps - 16))]
        maps = anchor_maps(start)
        visited[start] = True
        store.add(start, maps, keep_old=False)
        yield from emit(start, maps)
        frontier = start
    if pending:
        yield np.concatenate([p[0] for p in pending]), torch.cat([p[1] for p in pending], dim=1)


class _Store:
    """Maps of a set of faces in one growable buffer, addressable by face index."""

    def __init__(self, n_faces: int) -> None:
        self.position = np.full(n_faces, -1, dtype=np.int64)
        self._faces = np.zeros(0, dtype=np.int64)
        self._maps: torch.Tensor | None = None
        self.size = 0

    def add(self, faces: np.ndarray, maps: torch.Tensor, keep_old: bool) -> None:
        if not keep_old:
            self.position[self._faces[: self.size]] = -1
            self.size = 0
        end = self.size + len(faces)
        if self._maps is None or end > self._maps.shape[1]:
            capacity = max(2 * end, 64)
            grown = torch.empty((3, capacity, maps.shape[2]), dtype=maps.dtype, device=maps.device)
            faces_grown = np.zeros(capacity, dtype=np.int64)
            if self._maps is not None and self.size:
                grown[:, : self.size] = self._maps[:, : self.size]
                faces_grown[: self.size] = self._faces[: self.size]
            self._maps, self._faces = grown, faces_grown
        self._maps[:, self.size : end] = maps
        self._faces[self.size : end] = faces
        self.position[faces] = np.arange(self.size, end)
        self.size = end

    def faces(self) -> np.ndarray:
        return self._faces[: self.size]

    def get(self, faces: np.ndarray) -> torch.Tensor:
        assert self._maps is not None
        return self._maps[:, torch.from_numpy(self.position[faces]).to(self._maps.device)]
