"""Which faces share an edge, and the chords of the previous sites.

Private helpers of the 2D engine's walk over faces (see ``walk``). Two faces sharing
an edge differ in exactly the neuron that created the edge; edges whose two faces
differ in more than one neuron (coinciding boundaries) are not usable and left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluscope._kernels.rings import edge_twins, ring_ids, search_sorted, site_of_label
from reluscope._kernels.sorting import argsort_int
from reluscope.regions.patterns import PackedPatterns


@dataclass
class ChordTable:
    """Maps of the chords of one site: rows sorted by (face, neuron), origin form (c, ds, dt)."""

    key: np.ndarray  # face * size + neuron, sorted
    rows: np.ndarray  # (P, 3)
    size: int

    def positions(self, face: np.ndarray, neuron: np.ndarray) -> np.ndarray:
        """(N,) int32: the row of each (face, neuron) chord (every one must be in the table)."""
        (pos,) = search_sorted(self.key, face * self.size + neuron)
        return np.minimum(pos, len(self.rows) - 1).astype(np.int32)


@dataclass
class Adjacency:
    """Directed usable edges between faces, CSR by source face."""

    ptr: np.ndarray  # (F + 1,) int64
    dst: np.ndarray  # (E,) int32
    neuron: np.ndarray  # (E,) int32
    sign: np.ndarray  # (E,) int8: sign of gate(dst) - gate(src) for that neuron
    cheap: np.ndarray  # True: created by the previous site (rank-1); False: two sites back


def build_adjacency(ptr: np.ndarray, vid: np.ndarray, lab: np.ndarray, patterns: PackedPatterns,
                    label_offset: np.ndarray, site: int, far: bool = True) -> Adjacency:
    """Usable edges of the faces before `site` is applied (see module docstring).

    `far` False leaves out the edges of site ``l-2``.
    """
    # (each temporary is let go as soon as it is used: on a conv net's slice of 10^6 faces
    # these arrays are tens of MB each, and this is the peak of a site's memory)
    n_faces = len(ptr) - 1
    first, second = edge_twins(ptr, vid)
    shared = np.flatnonzero(second >= 0)
    first, second = first[shared], second[shared]
    del shared
    layer, neuron = site_of_label(lab[first], label_offset)
    usable = np.flatnonzero(((layer == site - 1) | (far & (layer == site - 2))) & (layer >= 0))
    face = ring_ids(ptr)
    f, g = face[first[usable]], face[second[usable]]
    del face, first, second
    layer, neuron = layer[usable], neuron[usable]
    del usable
    # both faces must differ in exactly this neuron over all earlier sites
    flips = np.zeros(len(f), dtype=np.int64)
    for m in range(len(patterns)):
        flips += patterns.flips(m, f, g)
    ok = np.flatnonzero(flips == 1)
    del flips
    f, g, layer, neuron = f[ok], g[ok], layer[ok], neuron[ok]
    del ok
    # gate(g) - gate(f) = (bit_g - bit_f)(1 - slope) for a unit with negative slope `slope`:
    # its sign is kept (the walk multiplies by its site's 1 - slope)
    step = np.zeros(len(f), dtype=np.int8)
    for m in np.unique(layer):
        sel = np.flatnonzero(layer == m)
        step[sel] = (patterns.bits(m, g[sel], neuron[sel]).astype(np.int8)
                     - patterns.bits(m, f[sel], neuron[sel]).astype(np.int8))
    cheap = layer == site - 1
    del layer
    m = len(f)
    # directed edges f -> g, then g -> f; by source face, cheap edges first
    order = argsort_int(2 * np.concatenate([f, g]) + np.concatenate([~cheap, ~cheap]))
    out_ptr = np.zeros(n_faces + 1, dtype=np.int64)
    np.cumsum(np.bincount(f, minlength=n_faces) + np.bincount(g, minlength=n_faces), out=out_ptr[1:])
    half = np.where(order < m, order, order - m)  # each directed edge's undirected one
    forward = order < m
    del order
    if n_faces >= 2**31:  # (int32 face ids below; max_regions keeps slices far smaller)
        raise ValueError(f"a walk over {n_faces} faces is beyond int32 face ids")
    dst = np.where(forward, g[half], f[half]).astype(np.int32)
    del f, g
    return Adjacency(out_ptr, dst, neuron[half].astype(np.int32),
                     np.where(forward, step[half], -step[half]).astype(np.int8), cheap[half])
