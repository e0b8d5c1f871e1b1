"""Values at vertices made on segments, interpolated in place (the 2D engine's vertex rows)."""

from __future__ import annotations

import numba
import numpy as np


def interpolate_rows(rows: np.ndarray, a: np.ndarray, b: np.ndarray, t: np.ndarray,
                     start: int, stop: int) -> None:
    """Set ``rows[v] = rows[a[v]] + t[v] * (rows[b[v]] - rows[a[v]])`` for ``start <= v < stop``,
    in increasing ``v``, in place.

    The same operations in the same order as numpy's ``(b - a) * t + a``, so the same
    values to the bit; one pass over the rows, no gathered copies (a wide site's rows are
    thousands of values each).

    Parameters
    ----------
    rows : (V, n) float64, C-contiguous
    a, b : (>= stop,) int64
        Segment ends of each vertex: earlier vertices (``a[v], b[v] < v``), so rows filled
        in increasing order read only finished rows.
    t : (>= stop,) float64
        Position of each vertex along its segment.
    start, stop : int
    """
    _interpolate(rows, a, b, t, int(start), int(stop))


@numba.njit(cache=True, nogil=True)
def _interpolate(rows: np.ndarray, a: np.ndarray, b: np.ndarray, t: np.ndarray,
                 start: int, stop: int) -> None:  # pragma: no cover - compiled
    n = rows.shape[1]
    for v in range(start, stop):
        ra, rb, tv = a[v], b[v], t[v]
        for k in range(n):
            lo = rows[ra, k]
            rows[v, k] = (rows[rb, k] - lo) * tv + lo
