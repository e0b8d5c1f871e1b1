"""An open-addressing hash table from non-negative int64 keys to float64 values.

Lookups of millions of (vertex, neuron) keys by binary search miss the cache at every
step; a table with linear probing at most half full costs about one miss per lookup.
"""

from __future__ import annotations

import numba
import numpy as np

_EMPTY = -1
#: Fibonacci hashing multiplier (2^64 / golden ratio), spreads consecutive keys.
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


class KeyTable:
    """Values of distinct non-negative integer keys, looked up in O(1).

    Parameters
    ----------
    keys : (N,) int64, distinct, non-negative
    values : (N,) float64
    """

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        bits = max(4, (2 * max(len(keys), 1) - 1).bit_length())  # at most half full
        self._keys = np.full(1 << bits, _EMPTY, dtype=np.int64)
        self._values = np.zeros(1 << bits)
        self._shift = np.uint64(64 - bits)
        _insert(self._keys, self._values, keys.astype(np.int64), values.astype(np.float64),
                self._shift)

    def __call__(self, keys: np.ndarray) -> np.ndarray:
        """(M,) values of `keys`; a key not in the table raises KeyError."""
        out, missing = _lookup(self._keys, self._values, np.asarray(keys, dtype=np.int64),
                               self._shift)
        if missing >= 0:
            raise KeyError(f"key {int(keys[missing])} is not in the table")
        return out


@numba.njit(cache=True, nogil=True)
def _slot(key: int, shift: np.uint64, mask: int) -> int:  # pragma: no cover - compiled
    return int((np.uint64(key) * _MULTIPLIER) >> shift) & mask


@numba.njit(cache=True, nogil=True)
def _insert(table_keys: np.ndarray, table_values: np.ndarray, keys: np.ndarray,
            values: np.ndarray, shift: np.uint64) -> None:  # pragma: no cover - compiled
    mask = len(table_keys) - 1
    for i in range(len(keys)):
        s = _slot(keys[i], shift, mask)
        while table_keys[s] != _EMPTY and table_keys[s] != keys[i]:
            s = (s + 1) & mask
        table_keys[s] = keys[i]
        table_values[s] = values[i]


@numba.njit(cache=True, nogil=True)
def _lookup(table_keys: np.ndarray, table_values: np.ndarray, keys: np.ndarray,
            shift: np.uint64) -> tuple[np.ndarray, int]:  # pragma: no cover - compiled
    mask = len(table_keys) - 1
    out = np.empty(len(keys))
    for i in range(len(keys)):
        s = _slot(keys[i], shift, mask)
        while table_keys[s] != keys[i]:
            if table_keys[s] == _EMPTY:
                return out, i
            s = (s + 1) & mask
        out[i] = table_values[s]
    return out, -1
