"""Max-pool windows from a pooled site's values (the 2D engine's stage values at vertices)."""

from __future__ import annotations

import numba
import numpy as np


def window_values(rows: np.ndarray, candidates: np.ndarray, stage: int, slope: float,
                  out: np.ndarray) -> None:
    """A max-pool stage's pre-activations, or the pool's output, from the pooled values.

    With ``a = leaky_relu(rows, slope)`` and window ``w``'s candidates ``x_s =
    a[:, candidates[s, w]]``, the running maximum ``m_0 = x_0``, ``m_s = m_{s-1} +
    relu(x_s - m_{s-1})`` (the recorder's operations, in its order: the same values to the
    bit) gives ``out = x_stage - m_{stage-1}`` for ``1 <= stage < K`` and ``out = m_{K-1}``
    for ``stage == K`` (K candidates per window).

    Parameters
    ----------
    rows : (B, size) float64, C-contiguous
        Pre-activations of the pooled site.
    candidates : (K, windows) int64
    stage : int
    slope : float
        The pooled site's negative slope (0: ReLU).
    out : (B, windows) float64
        Written in place.
    """
    _window_values(rows, candidates, int(stage), float(slope), out)


@numba.njit(cache=True, nogil=True)
def _activation(z: float, slope: float) -> float:  # pragma: no cover - compiled
    if z > 0.0:
        return z
    return z * slope if slope != 0.0 else 0.0


@numba.njit(cache=True, nogil=True)
def _window_values(rows: np.ndarray, candidates: np.ndarray, stage: int, slope: float,
                   out: np.ndarray) -> None:  # pragma: no cover - compiled
    window, windows = candidates.shape
    last = min(stage, window)
    for i in range(rows.shape[0]):
        row = rows[i]
        for w in range(windows):
            best = _activation(row[candidates[0, w]], slope)
            for s in range(1, last):
                gap = _activation(row[candidates[s, w]], slope) - best
                best = best + (gap if gap > 0.0 else 0.0)
            if stage < window:
                out[i, w] = _activation(row[candidates[stage, w]], slope) - best
            else:
                out[i, w] = best


def zero_ties(values: np.ndarray, tie: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Set the non-zero entries of `values` with ``|value| <= tie`` to 0, in place.

    One pass, no temporaries the size of `values` (a stage's values at the vertices are
    tens of MB).

    Parameters
    ----------
    values : (V, n) float64, C-contiguous
    tie : float

    Returns
    -------
    rows, columns : (m,) int64
        Where entries were set to 0, in row-major order.
    old : (m,) float64
        Their values before.
    """
    count = _count_ties(values, float(tie))
    rows, cols, old = np.empty(count, np.int64), np.empty(count, np.int64), np.empty(count)
    _zero_ties(values, float(tie), rows, cols, old)
    return rows, cols, old


@numba.njit(cache=True, nogil=True)
def _count_ties(values: np.ndarray, tie: float) -> int:  # pragma: no cover - compiled
    count = 0
    for i in range(values.shape[0]):
        for k in range(values.shape[1]):
            v = values[i, k]
            if v != 0.0 and abs(v) <= tie:
                count += 1
    return count


@numba.njit(cache=True, nogil=True)
def _zero_ties(values: np.ndarray, tie: float, rows: np.ndarray, cols: np.ndarray,
               old: np.ndarray) -> None:  # pragma: no cover - compiled
    at = 0
    for i in range(values.shape[0]):
        for k in range(values.shape[1]):
            v = values[i, k]
            if v != 0.0 and abs(v) <= tie:
                rows[at], cols[at], old[at] = i, k, v
                values[i, k] = 0.0
                at += 1
