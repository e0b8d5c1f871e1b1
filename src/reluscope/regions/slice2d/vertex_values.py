"""Chords of a site from its pre-activations at the partition's vertices.

Private kernels of the 2D engine (inputs validated by the caller).

The network is continuous, so a site's pre-activation has one value at each vertex
of the current partition, whichever face it is seen from. On each face the site is
affine, so a neuron cuts the face exactly when its values on the face's vertices take
both signs; where it crosses an edge follows from the two end values. Computing the
values once per *vertex* (one GEMM row each, or one forward pass) instead of an affine
map per *face* (three GEMM rows) is both cheaper and canonical by construction.

The neuron's affine map on a face it cuts is still needed (to cut the face's pieces
and to place vertices inside it); it is recovered by a least-squares fit to the
values at the face's vertices. The fit's largest residual on those vertices bounds
its error over the whole (convex) face, so screens built on it stay conservative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluscope._kernels.bits import pack, unpack
from reluscope._kernels.rings import gather_rings, ring_ids

#: Rows of the (slots x packed neurons) block reduced at once (bounds temporaries).
_BLOCK_SLOTS = 1 << 16


@dataclass
class FaceSigns:
    """Per face and neuron: does the neuron take a positive / negative value on a vertex?

    Attributes
    ----------
    pos, neg : (F, ceil(n/8)) uint8
        Bit-packed; ``pos`` has a neuron's bit set when some vertex of the face is > 0.
    """

    pos: np.ndarray
    neg: np.ndarray


def face_signs(ptr: np.ndarray, vid: np.ndarray, values: np.ndarray) -> FaceSigns:
    """OR-reduce the packed signs of each ring's vertices.

    Parameters
    ----------
    ptr, vid : CSR rings (F rings, every ring non-empty).
    values : (V, n) float64
        Pre-activations at every vertex.
    """
    n_faces = len(ptr) - 1
    width = (values.shape[1] + 7) // 8
    words = (width + 7) // 8  # OR 64 bits at a time: pad the packed rows to whole words
    pos_v = np.zeros((len(values), 8 * words), dtype=np.uint8)
    neg_v = np.zeros((len(values), 8 * words), dtype=np.uint8)
    pos_v[:, :width] = pack(values > 0)
    neg_v[:, :width] = pack(values < 0)
    pos_w, neg_w = pos_v.view(np.uint64), neg_v.view(np.uint64)
    pos = np.zeros((n_faces, words), dtype=np.uint64)
    neg = np.zeros((n_faces, words), dtype=np.uint64)
    # whole rings per block, so reduceat never straddles a block
    face = 0
    while face < n_faces:
        stop = int(np.searchsorted(ptr, ptr[face] + _BLOCK_SLOTS, side="right")) - 1
        stop = max(stop, face + 1)
        lo, hi = int(ptr[face]), int(ptr[stop])
        starts = ptr[face:stop] - lo
        block = vid[lo:hi]
        pos[face:stop] = np.bitwise_or.reduceat(pos_w[block], starts, axis=0)
        neg[face:stop] = np.bitwise_or.reduceat(neg_w[block], starts, axis=0)
        face = stop
    return FaceSigns(pos.view(np.uint8)[:, :width], neg.view(np.uint8)[:, :width])


def mixed_pairs(signs: FaceSigns, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(face, neuron) pairs, sorted, whose vertex values take both signs."""
    mixed = signs.pos & signs.neg
    rows = np.flatnonzero(mixed.any(axis=1))
    f, k = np.nonzero(unpack(mixed[rows], size))
    return rows[f], k.astype(np.int64)


@dataclass
class FittedMaps:
    """Affine maps ``z(p) = value + ds * (p_s - ref_s) + dt * (p_t - ref_t)`` per pair.

    Attributes
    ----------
    value, ds, dt : (P,) float64
    residual : (P,) float64
        Largest ``|fit - value|`` over the face's vertices: a bound on the fit's error
        anywhere in the (convex) face.
    """

    value: np.ndarray
    ds: np.ndarray
    dt: np.ndarray
    residual: np.ndarray


def fit_maps(ptr: np.ndarray, vid: np.ndarray, xy: np.ndarray, values: np.ndarray,
             face: np.ndarray, neuron: np.ndarray, ref: np.ndarray) -> FittedMaps:
    """Least-squares affine map of each (face, neuron) pair from its ring's vertex values.

    Parameters
    ----------
    ptr, vid : CSR rings.
    xy : (V, 2) float64 vertex coordinates.
    values : (V, n) float64 pre-activations at the vertices.
    face, neuron : (P,) int64 pairs.
    ref : (F, 2) float64 reference point of each face (its bounding-box centre).
    """
    pair_ptr, slots = gather_rings(ptr, face)
    pair = ring_ids(pair_ptr)
    v = vid[slots]
    d = xy[v] - ref[face[pair]]
    z = values[v, neuron[pair]]
    starts = pair_ptr[:-1]
    if len(face) == 0:
        empty = np.zeros(0)
        return FittedMaps(empty, empty, empty, empty)
    # scale the coordinates per pair so the normal equations are well conditioned
    scale = np.maximum.reduceat(np.abs(d).max(axis=1), starts)
    scale = np.where(scale > 0, scale, 1.0)
    u = d / scale[pair, None]
    count = np.diff(pair_ptr).astype(np.float64)

    def total(x: np.ndarray) -> np.ndarray:
        return np.add.reduceat(x, starts)

    su, sv = total(u[:, 0]), total(u[:, 1])
    normal = np.empty((len(face), 3, 3))
    normal[:, 0, 0] = count
    normal[:, 0, 1] = normal[:, 1, 0] = su
    normal[:, 0, 2] = normal[:, 2, 0] = sv
    normal[:, 1, 1] = total(u[:, 0] ** 2)
    normal[:, 1, 2] = normal[:, 2, 1] = total(u[:, 0] * u[:, 1])
    normal[:, 2, 2] = total(u[:, 1] ** 2)
    rhs = np.stack([total(z), total(z * u[:, 0]), total(z * u[:, 1])], axis=1)
    # faces always have >= 3 non-collinear vertices; lstsq-like guard for slivers
    normal[:, [0, 1, 2], [0, 1, 2]] += 1e-300
    coef = np.linalg.solve(normal, rhs[:, :, None])[:, :, 0]
    value, ds, dt = coef[:, 0], coef[:, 1] / scale, coef[:, 2] / scale
    fit = value[pair] + ds[pair] * d[:, 0] + dt[pair] * d[:, 1]
    residual = np.maximum.reduceat(np.abs(fit - z), starts)
    return FittedMaps(value, ds, dt, residual)
