"""Split convex rings by a sign pattern on their vertices (one cut per ring).

Private kernel of the 2D engine: inputs are validated by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from reluscope._kernels.rings import expand_slots, gather_rings, next_slot, ring_ids
from reluscope._kernels.sorting import unique_first_inverse


@dataclass
class SplitResult:
    """Outcome of :func:`split_rings` for K input rings.

    Attributes
    ----------
    side : (K,) int8
        +1 / -1 for a ring left whole (the side of the cut it lies on), 0 for a ring cut in two.
    degenerate : (K,) bool
        Rings with mixed signs whose pattern is not a single clean cut (left whole).
    src : (2S,) int64
        Input ring of each half; the first S halves are the positive ones.
    ptr, vid, lab : CSR arrays of the 2S halves.
    """

    side: np.ndarray
    degenerate: np.ndarray
    src: np.ndarray
    positive: np.ndarray
    ptr: np.ndarray
    vid: np.ndarray
    lab: np.ndarray


def _reduce_any(mask: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    if len(mask) == 0:
        return np.zeros(len(ptr) - 1, dtype=bool)
    return np.maximum.reduceat(mask.astype(np.int8), ptr[:-1]).astype(bool)


def split_rings(ptr: np.ndarray, vid: np.ndarray, lab: np.ndarray, sgn: np.ndarray,
                chord_lab: np.ndarray,
                make_vertices: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
                ) -> SplitResult:
    """Cut every ring whose vertex signs are mixed along the zero set of an affine function.

    Parameters
    ----------
    ptr, vid, lab : CSR rings (K rings), vertex ids and edge labels per slot.
    sgn : (nnz,) int8
        Sign of the cutting function at each slot's vertex (0 = on the cut).
    chord_lab : (K,) int64
        Label given to the new edge of each ring that is cut.
    make_vertices : callable
        ``make_vertices(lo, hi, ring) -> ids`` creates the vertices where the cut crosses
        the edges ``(lo, hi)`` (``lo < hi``, unique), using ring ``ring`` for the function.

    Returns
    -------
    SplitResult
    """
    n_rings = len(ptr) - 1
    has_pos = _reduce_any(sgn > 0, ptr)
    has_neg = _reduce_any(sgn < 0, ptr)
    side = np.where(has_pos, 1, -1).astype(np.int8)
    cut = np.flatnonzero(has_pos & has_neg)
    degenerate = np.zeros(n_rings, dtype=bool)
    empty = np.zeros(0, dtype=np.int64)
    if len(cut) == 0:
        return SplitResult(side, degenerate, empty, np.zeros(0, bool), np.zeros(1, np.int64),
                           empty, empty)
    aug_ptr, aug_v, aug_s, aug_l = _insert_crossings(ptr, vid, lab, sgn, cut, make_vertices)
    ok, z1, z2, sum_a, sum_b = _clean_cuts(aug_ptr, aug_s, len(cut))
    degenerate[cut[~ok]] = True
    side[cut[ok]] = 0
    side[cut[~ok]] = np.where(sum_a[~ok] + sum_b[~ok] >= 0, 1, -1)
    good = np.flatnonzero(ok)
    src, positive, half_ptr, out_v, out_l = _halves(aug_ptr, aug_v, aug_l, good, z1, z2, sum_a,
                                                    chord_lab[cut])
    return SplitResult(side, degenerate, cut[src], positive, half_ptr, out_v, out_l)


def _insert_crossings(ptr: np.ndarray, vid: np.ndarray, lab: np.ndarray, sgn: np.ndarray,
                      cut: np.ndarray,
                      make_vertices: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rings `cut` with a new vertex (sign 0) on every edge the cut crosses.

    One new vertex per crossed edge: both rings sharing the edge get the same id.
    Returns their CSR (ptr, vertex, sign, label).
    """
    sub_ptr, slots = gather_rings(ptr, cut)
    s = sgn[slots]
    v = vid[slots]
    nxt = next_slot(sub_ptr)
    crossing = (s.astype(np.int16) * s[nxt]) < 0
    sub_ring = ring_ids(sub_ptr)
    lo = np.minimum(v, v[nxt])[crossing]
    hi = np.maximum(v, v[nxt])[crossing]
    span = int(hi.max()) + 1 if len(hi) else 1
    _, first, inverse = unique_first_inverse(lo * span + hi)
    ids = make_vertices(lo[first], hi[first], cut[sub_ring[np.flatnonzero(crossing)[first]]])
    new_id = np.full(len(s), -1, dtype=np.int64)
    new_id[crossing] = ids[inverse]
    aug_ptr, origin, rank = expand_slots(sub_ptr, crossing.astype(np.int64))
    inserted = rank > 0
    aug_v = np.where(inserted, new_id[origin], v[origin])
    aug_s = np.where(inserted, 0, s[origin]).astype(np.int64)
    return aug_ptr, aug_v, aug_s, lab[slots][origin]


def _clean_cuts(aug_ptr: np.ndarray, aug_s: np.ndarray, n_cut: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which rings are cut cleanly: exactly two zeros (at z1 < z2), one sign strictly
    between them (summing to sum_a) and the other on the rest (sum_b)."""
    zero = np.flatnonzero(aug_s == 0)
    aug_ring = ring_ids(aug_ptr)
    zero_count = np.bincount(aug_ring[zero], minlength=n_cut)
    ok = zero_count == 2
    zpos = np.searchsorted(aug_ring[zero], np.arange(n_cut))
    z1 = np.where(ok, zero[np.minimum(zpos, len(zero) - 1)], 0)
    z2 = np.where(ok, zero[np.minimum(zpos + 1, len(zero) - 1)], 0)
    csum = np.concatenate([[0], np.cumsum(aug_s)])
    length = np.diff(aug_ptr)
    inner_a = z2 - z1 - 1
    inner_b = length - inner_a - 2
    sum_a = csum[z2] - csum[z1 + 1]
    sum_b = csum[aug_ptr[1:]] - csum[aug_ptr[:-1]] - sum_a
    ok &= (inner_a > 0) & (inner_b > 0) & (np.abs(sum_a) == inner_a) & (np.abs(sum_b) == inner_b)
    ok &= np.sign(sum_a) == -np.sign(sum_b)
    return ok, z1, z2, sum_a, sum_b


def _halves(aug_ptr: np.ndarray, aug_v: np.ndarray, aug_l: np.ndarray, good: np.ndarray,
            z1: np.ndarray, z2: np.ndarray, sum_a: np.ndarray, cut_lab: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The two halves of each cleanly cut ring `good`: positive halves first, then the
    negative ones. A runs z1 -> z2, B runs z2 -> z1 (wrapping); both close along the cut,
    whose edge gets the ring's chord label. Returns (ring, positive, ptr, vertex, label)."""
    length = np.diff(aug_ptr)
    start = aug_ptr[:-1][good]
    a0 = z1[good] - start
    b0 = z2[good] - start
    m = length[good]
    len_a = b0 - a0 + 1
    len_b = m - (b0 - a0) + 1
    a_positive = sum_a[good] > 0
    half_len = np.concatenate([np.where(a_positive, len_a, len_b), np.where(a_positive, len_b, len_a)])
    half_first = np.concatenate([np.where(a_positive, a0, b0), np.where(a_positive, b0, a0)])
    half_ring = np.concatenate([good, good])
    half_ptr = np.zeros(len(half_len) + 1, dtype=np.int64)
    np.cumsum(half_len, out=half_ptr[1:])
    offset = np.arange(int(half_ptr[-1]), dtype=np.int64) - np.repeat(half_ptr[:-1], half_len)
    local = (np.repeat(half_first, half_len) + offset) % np.repeat(length[half_ring], half_len)
    src_slot = np.repeat(aug_ptr[:-1][half_ring], half_len) + local
    out_v = aug_v[src_slot]
    out_l = aug_l[src_slot].copy()
    out_l[half_ptr[1:] - 1] = cut_lab[half_ring]
    positive = np.concatenate([np.ones(len(good), bool), np.zeros(len(good), bool)])
    return half_ring, positive, half_ptr, out_v, out_l
