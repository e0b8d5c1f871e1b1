"""Compiled steps of cutting faces in rounds (the 2D engine's ``cutting``).

A face cut in rounds by thousands of chords keeps ~10^5 pieces live for thousands of
rounds: each round's box test and the final scatter of the chord bits into pattern rows
are single passes here, with no temporaries the size of the live pieces.
"""

from __future__ import annotations

import numba
import numpy as np


def box_round(lo: np.ndarray, hi: np.ndarray, q: np.ndarray, ref: np.ndarray, value: np.ndarray,
              ds: np.ndarray, dt: np.ndarray, reach: np.ndarray, above: np.ndarray, j: int
              ) -> np.ndarray:
    """Box test of round `j`: which pieces may cross their chord.

    Piece ``i`` is tested against chord ``k = q[i]``, whose map is ``value[k] + ds[k] (s -
    ref[k, 0]) + dt[k] (t - ref[k, 1])``: over the piece's bounding box the map lies within
    ``|ds| hs + |dt| ht + reach[k]`` of its value at the box centre (``hs, ht``: the box's
    half sides). Pieces wholly above get bit `j` of their ``above`` row set (in place);
    pieces wholly below are left alone.

    Parameters
    ----------
    lo, hi : (N, 2) float64
        Bounding boxes of the live pieces.
    q : (N,) int64
        Each piece's chord this round.
    ref : (P, 2) float64
    value, ds, dt, reach : (P,) float64
        The chords' maps and the margin of the test (snap distance and fit error).
    above : (N, width) uint8
        Packed chord bits (bit ``j``: byte ``j >> 3``, mask ``128 >> (j & 7)``).
    j : int

    Returns
    -------
    (C,) int64
        The pieces the test does not settle, increasing.
    """
    return _box_round(lo, hi, q, ref, value, ds, dt, reach, above, int(j))


@numba.njit(cache=True, nogil=True)
def _box_round(lo: np.ndarray, hi: np.ndarray, q: np.ndarray, ref: np.ndarray, value: np.ndarray,
               ds: np.ndarray, dt: np.ndarray, reach: np.ndarray, above: np.ndarray,
               j: int) -> np.ndarray:  # pragma: no cover - compiled
    cross = np.empty(len(q), dtype=np.int64)
    count = 0
    byte, mask = j >> 3, np.uint8(128 >> (j & 7))
    for i in range(len(q)):
        k = q[i]
        os_ = 0.5 * (lo[i, 0] + hi[i, 0]) - ref[k, 0]
        ot = 0.5 * (lo[i, 1] + hi[i, 1]) - ref[k, 1]
        centre = value[k] + ds[k] * os_ + dt[k] * ot
        spread = (abs(ds[k]) * (0.5 * (hi[i, 0] - lo[i, 0])) + abs(dt[k]) * (0.5 * (hi[i, 1] - lo[i, 1]))
                  + reach[k])
        if centre > spread:
            above[i, byte] |= mask
        elif abs(centre) <= spread:
            cross[count] = i
            count += 1
    return cross[:count]


def scatter_chord_bits(pattern: np.ndarray, above: np.ndarray, first: np.ndarray,
                       count: np.ndarray, position: np.ndarray) -> None:
    """Set, in each pattern row, the bits of the chords the row's piece lies above.

    Row ``r`` lies above chord ``first[r] + j`` when bit ``j`` (``j < count[r]``) of
    ``above[r]`` is set; that chord's bit in the pattern row is ``position[first[r] + j]``.

    Parameters
    ----------
    pattern : (R, bytes) uint8, written in place
    above : (R, width) uint8
    first, count : (R,) int64
        Each row's face's first chord and number of chords.
    position : (P,) int64
        Each chord's bit in a pattern row.
    """
    _scatter_chord_bits(pattern, above, first, count, position)


@numba.njit(cache=True, nogil=True)
def _scatter_chord_bits(pattern: np.ndarray, above: np.ndarray, first: np.ndarray,
                        count: np.ndarray, position: np.ndarray) -> None:  # pragma: no cover - compiled
    for r in range(len(first)):
        base, n = first[r], count[r]
        for byte in range((n + 7) >> 3):
            bits = above[r, byte]
            if bits == 0:
                continue
            for b in range(8):
                jj = 8 * byte + b
                if jj < n and bits & (128 >> b):
                    p = position[base + jj]
                    pattern[r, p >> 3] |= np.uint8(128 >> (p & 7))
