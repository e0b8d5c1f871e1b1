"""Bit-packed activation patterns (numpy.packbits layout, big-endian bit order)."""

from __future__ import annotations

import numpy as np

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
#: Bytes of packed patterns handled per block (bounds the temporary arrays).
_BLOCK_BYTES = 1 << 24


def pack(bits: np.ndarray) -> np.ndarray:
    """(N, n) bool -> (N, ceil(n/8)) uint8."""
    return np.packbits(bits, axis=1)


def unpack(packed: np.ndarray, size: int) -> np.ndarray:
    """(N, ceil(n/8)) uint8 -> (N, n) bool."""
    return np.unpackbits(packed, axis=1, count=size).astype(bool)


def set_bit(packed: np.ndarray, rows: np.ndarray, bit: np.ndarray) -> None:
    """Set bit ``bit[i]`` of row ``rows[i]`` (in place)."""
    np.bitwise_or.at(packed, (rows, bit >> 3), (128 >> (bit & 7)).astype(np.uint8))


def clear_bit(packed: np.ndarray, rows: np.ndarray, bit: np.ndarray) -> None:
    """Clear bit ``bit[i]`` of row ``rows[i]`` (in place)."""
    np.bitwise_and.at(packed, (rows, bit >> 3), ~(128 >> (bit & 7)).astype(np.uint8))


def bit_at(packed: np.ndarray, rows: np.ndarray, bit: np.ndarray) -> np.ndarray:
    """Value of bit ``bit[i]`` of row ``rows[i]``, (K,) bool."""
    return (packed[rows, bit >> 3] & (128 >> (bit & 7)).astype(np.uint8)) > 0


def xor_popcount(packed: np.ndarray, f: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Number of differing bits between rows ``f[i]`` and ``g[i]``, (E,) int64."""
    out = np.zeros(len(f), dtype=np.int64)
    rows = max(1, _BLOCK_BYTES // max(packed.shape[1], 1))
    for lo in range(0, len(f), rows):
        sl = slice(lo, lo + rows)
        out[sl] = _POPCOUNT[packed[f[sl]] ^ packed[g[sl]]].sum(axis=1, dtype=np.int64)
    return out
