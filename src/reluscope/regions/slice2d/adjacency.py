"""Which faces share an edge, and the chords of the previous sites.

Private helpers of the 2D engine's walk over faces (see ``walk``). Two faces sharing
an edge differ in exactly the neuron that created the edge; edges whose two faces
differ in more than one neuron (coinciding boundaries) are not usable and left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluscope._kernels.rings import edge_twins, ring_ids, search_sorted, site_of_label
from reluscope._kernels.sorting import lexsort_int
from reluscope.regions.patterns import PackedPatterns


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


def build_adjacency(ptr: np.ndarray, vid: np.ndarray, lab: np.ndarray, patterns: PackedPatterns,
                    label_offset: np.ndarray, site: int, slopes: list[float], far: bool = True
                    ) -> Adjacency:
    """Usable edges of the faces before `site` is applied (see module docstring).

    `far` False leaves out the edges of site ``l-2``.
    """
    n_faces = len(ptr) - 1
    face = ring_ids(ptr)
    first, second = edge_twins(ptr, vid)
    shared = second >= 0
    f, g = face[first[shared]], face[second[shared]]
    layer, neuron = site_of_label(lab[first[shared]], label_offset)
    usable = ((layer == site - 1) | (far & (layer == site - 2))) & (layer >= 0)
    f, g, layer, neuron = f[usable], g[usable], layer[usable], neuron[usable]
    # both faces must differ in exactly this neuron over all earlier sites
    flips = np.zeros(len(f), dtype=np.int64)
    for m in range(len(patterns)):
        flips += patterns.flips(m, f, g)
    ok = flips == 1
    f, g, layer, neuron = f[ok], g[ok], layer[ok], neuron[ok]
    bit_f = np.zeros(len(f), dtype=np.float64)
    bit_g = np.zeros(len(f), dtype=np.float64)
    for m in np.unique(layer):
        sel = np.flatnonzero(layer == m)
        bit_f[sel] = patterns.bits(m, f[sel], neuron[sel])
        bit_g[sel] = patterns.bits(m, g[sel], neuron[sel])
    slope = np.asarray(slopes, dtype=np.float64)[layer] if len(layer) else np.zeros(0)
    gate_f = bit_f + slope * (1 - bit_f)
    gate_g = bit_g + slope * (1 - bit_g)
    src = np.concatenate([f, g])
    dst = np.concatenate([g, f])
    step = np.concatenate([gate_g - gate_f, gate_f - gate_g])
    neuron2 = np.concatenate([neuron, neuron])
    cheap = np.concatenate([layer == site - 1, layer == site - 1])
    order = lexsort_int(((~cheap).astype(np.int64), src))  # by source face, cheap edges first
    out_ptr = np.zeros(n_faces + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n_faces), out=out_ptr[1:])
    return Adjacency(out_ptr, dst[order], neuron2[order], step[order], cheap[order])
