"""Bit-packed activation patterns (numpy.packbits layout, big-endian bit order)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

#: 64-bit words compared per thread, at least, before xor_popcount splits its pairs.
PARALLEL_WORDS = 1 << 22
#: Number of set bits of each byte value.
POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def pack(bits: np.ndarray) -> np.ndarray:
    """(N, n) bool -> (N, ceil(n/8)) uint8."""
    return np.packbits(bits, axis=1)


def unpack(packed: np.ndarray, size: int) -> np.ndarray:
    """(N, ceil(n/8)) uint8 -> (N, n) bool."""
    return np.unpackbits(packed, axis=1, count=size).astype(bool)


def set_bit(packed: np.ndarray, rows: np.ndarray, bit: np.ndarray) -> None:
    """Set bit ``bit[i]`` of row ``rows[i]`` (in place; repeats allowed)."""
    _change_bits(packed, np.asarray(rows, dtype=np.int64), np.asarray(bit, dtype=np.int64), True)


def clear_bit(packed: np.ndarray, rows: np.ndarray, bit: np.ndarray) -> None:
    """Clear bit ``bit[i]`` of row ``rows[i]`` (in place; repeats allowed)."""
    _change_bits(packed, np.asarray(rows, dtype=np.int64), np.asarray(bit, dtype=np.int64), False)


@numba.njit(cache=True, nogil=True)
def _change_bits(packed: np.ndarray, rows: np.ndarray, bit: np.ndarray, value: bool
                 ) -> None:  # pragma: no cover - compiled
    # a compiled loop: numpy's ufunc.at (the unbuffered in-place form) is ~30x slower on
    # scattered rows
    for i in range(len(rows)):
        b = bit[i]
        mask = np.uint8(128 >> (b & 7))
        if value:
            packed[rows[i], b >> 3] |= mask
        else:
            packed[rows[i], b >> 3] &= ~mask


def bit_at(packed: np.ndarray, rows: np.ndarray, bit: np.ndarray) -> np.ndarray:
    """Value of bit ``bit[i]`` of row ``rows[i]``, (K,) bool."""
    return (packed[rows, bit >> 3] & (128 >> (bit & 7)).astype(np.uint8)) > 0


def xor_popcount(packed: np.ndarray, f: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Number of differing bits between rows ``f[i]`` and ``g[i]``, (E,) int64.

    Rows whose width is a whole number of 64-bit words (every site of 64k neurons) are
    compared a word at a time: neighbouring faces differ in one neuron, so almost every
    word is equal and only the few that are not are counted.
    """
    packed = np.ascontiguousarray(packed)
    f, g = f.astype(np.int64), g.astype(np.int64)
    if packed.shape[1] % 8 == 0 and packed.shape[1] and len(packed):
        words = packed.view(np.uint64)
        # many rows (a wide site's ~10^6 edges): the compiled loop releases the GIL, so
        # one slice of the pairs per core
        threads = min(os.cpu_count() or 1, 8, len(f) * words.shape[1] // PARALLEL_WORDS)
        if threads > 1:
            cuts = np.linspace(0, len(f), threads + 1).astype(np.int64)
            with ThreadPoolExecutor(threads) as pool:
                parts = pool.map(lambda i: _xor_popcount_words(words, f[cuts[i]:cuts[i + 1]],
                                                               g[cuts[i]:cuts[i + 1]]), range(threads))
                return np.concatenate(list(parts))
        return _xor_popcount_words(words, f, g)
    return _xor_popcount(packed, f, g, POPCOUNT)


@numba.njit(cache=True, nogil=True)
def _xor_popcount_words(words: np.ndarray, f: np.ndarray, g: np.ndarray
                        ) -> np.ndarray:  # pragma: no cover - compiled
    out = np.zeros(len(f), dtype=np.int64)
    m1, m2 = np.uint64(0x5555555555555555), np.uint64(0x3333333333333333)
    m4, h01 = np.uint64(0x0F0F0F0F0F0F0F0F), np.uint64(0x0101010101010101)
    one, two, four, top = np.uint64(1), np.uint64(2), np.uint64(4), np.uint64(56)
    for e in range(len(f)):
        a, b = words[f[e]], words[g[e]]
        count = 0
        for w in range(words.shape[1]):
            x = a[w] ^ b[w]
            if x:  # SWAR popcount of the word
                x = x - ((x >> one) & m1)
                x = (x & m2) + ((x >> two) & m2)
                x = (x + (x >> four)) & m4
                count += int((x * h01) >> top)
        out[e] = count
    return out


@numba.njit(cache=True, nogil=True)
def _xor_popcount(packed: np.ndarray, f: np.ndarray, g: np.ndarray, table: np.ndarray
                  ) -> np.ndarray:  # pragma: no cover - compiled
    out = np.zeros(len(f), dtype=np.int64)
    for e in range(len(f)):
        a, b = packed[f[e]], packed[g[e]]
        count = 0
        for byte in range(packed.shape[1]):
            count += table[a[byte] ^ b[byte]]
        out[e] = count
    return out


def differing_bits(patterns: tuple[np.ndarray, ...] | list[np.ndarray], sizes: list[int], left: np.ndarray,
                   right: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every bit that differs between rows ``left[i]`` and ``right[i]`` of per-site patterns.

    Parameters
    ----------
    patterns : sequence of (R, ceil(size/8)) uint8
        One packed array per site.
    sizes : list of int
        Bits per site (the padding bits are ignored).
    left, right : (P,) int64
        Row pairs.

    Returns
    -------
    pair, site, neuron : (K,) int64
        One entry per differing bit, by site, then pair, then neuron (a compiled scan of
        the rows' XOR: pairs of neighbouring regions differ in a few bits of thousands).
    """
    left = np.ascontiguousarray(left, dtype=np.int64)
    right = np.ascontiguousarray(right, dtype=np.int64)
    parts = []
    for site, (packed, size) in enumerate(zip(patterns, sizes, strict=True)):
        pair, neuron = _differing_bits(np.ascontiguousarray(packed), int(size), left, right)
        parts.append((pair, np.full(len(pair), site, dtype=np.int64), neuron))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    pairs, sites, neurons = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return pairs, sites, neurons


@numba.njit(cache=True, nogil=True)
def _differing_bits(packed: np.ndarray, size: int, left: np.ndarray,
                    right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    table = POPCOUNT
    width = packed.shape[1]
    pad = 8 * width - size  # low bits of the last byte past the last neuron
    last_mask = np.uint8((0xFF << pad) & 0xFF)
    count = 0
    for e in range(len(left)):
        a, b = packed[left[e]], packed[right[e]]
        for byte in range(width):
            x = a[byte] ^ b[byte]
            if byte == width - 1:
                x &= last_mask
            count += table[x]
    pair = np.empty(count, np.int64)
    neuron = np.empty(count, np.int64)
    at = 0
    for e in range(len(left)):
        a, b = packed[left[e]], packed[right[e]]
        for byte in range(width):
            x = a[byte] ^ b[byte]
            if byte == width - 1:
                x &= last_mask
            if x == 0:
                continue
            for j in range(8):  # numpy.packbits order: the high bit is the lowest neuron
                if x & (0x80 >> j):
                    pair[at] = e
                    neuron[at] = 8 * byte + j
                    at += 1
    return pair, neuron


@numba.njit(cache=True, nogil=True)
def flood_flip_bits(packed: np.ndarray, roots: np.ndarray, adj_ptr: np.ndarray, adj_row: np.ndarray,
                    adj_group: np.ndarray, group_ptr: np.ndarray, group_bit: np.ndarray
                    ) -> np.ndarray:  # pragma: no cover - compiled
    """Fill rows from their neighbours: a row is its neighbour's with one group of bits flipped.

    Breadth-first from `roots` (rows already filled) over the graph ``adj`` (CSR by row:
    neighbour ``adj_row[e]``, crossing bit group ``adj_group[e]``): each row first reached
    from row ``p`` across edge ``e`` becomes row ``p`` with bits
    ``group_bit[group_ptr[g]:group_ptr[g + 1]]`` flipped (``g = adj_group[e]``).

    Returns
    -------
    (R,) bool
        Which rows were reached (roots included); the others are left as they were.
    """
    n = packed.shape[0]
    reached = np.zeros(n, dtype=np.bool_)
    queue = np.empty(n, dtype=np.int64)
    tail = 0
    for r in roots:
        if not reached[r]:
            reached[r] = True
            queue[tail] = r
            tail += 1
    head = 0
    while head < tail:
        p = queue[head]
        head += 1
        for e in range(adj_ptr[p], adj_ptr[p + 1]):
            q = adj_row[e]
            if reached[q]:
                continue
            reached[q] = True
            packed[q, :] = packed[p, :]
            g = adj_group[e]
            for i in range(group_ptr[g], group_ptr[g + 1]):
                bit = group_bit[i]
                packed[q, bit >> 3] ^= np.uint8(128 >> (bit & 7))
            queue[tail] = q
            tail += 1
    return reached


def varying_columns(packed: np.ndarray, size: int, also: np.ndarray) -> np.ndarray:
    """Sorted bits (neurons) that are not the same in every row, together with `also`.

    Parameters
    ----------
    packed : (R, ceil(size/8)) uint8
    size : int
        Bits per row (the padding bits are ignored).
    also : (K,) int64
        Bits to include whatever the rows hold (a site's chords: the rows do not have
        them yet).

    Returns
    -------
    (C,) int64
    """
    if len(packed):
        # row by row: ``packed ^ packed[:1]`` would be a second copy of the rows
        differs = _differs_from_first(np.ascontiguousarray(packed))[None]
        varying = np.flatnonzero(np.unpackbits(differs, axis=1, count=size)[0])
    else:
        varying = np.zeros(0, dtype=np.int64)
    return np.union1d(varying, np.asarray(also, dtype=np.int64)).astype(np.int64)


@numba.njit(cache=True, nogil=True)
def _differs_from_first(packed: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """(W,) uint8: OR over the rows of `packed` (R >= 1, W) of each row XOR the first."""
    out = np.zeros(packed.shape[1], dtype=np.uint8)
    first = packed[0]
    for r in range(1, packed.shape[0]):
        row = packed[r]
        for b in range(packed.shape[1]):
            out[b] |= row[b] ^ first[b]
    return out


@numba.njit(cache=True, nogil=True)
def gather_columns(packed: np.ndarray, columns: np.ndarray) -> np.ndarray:  # pragma: no cover
    """(R, ceil(C/8)) uint8: bit ``j`` of each row is bit ``columns[j]`` of its row of
    `packed` (R, W)."""
    out = np.zeros((packed.shape[0], (len(columns) + 7) // 8), dtype=np.uint8)
    for r in range(packed.shape[0]):
        for j in range(len(columns)):
            c = columns[j]
            if packed[r, c >> 3] & (128 >> (c & 7)):
                out[r, j >> 3] |= np.uint8(128 >> (j & 7))
    return out


@numba.njit(cache=True, nogil=True)
def expand_columns(packed: np.ndarray, rows: np.ndarray, columns: np.ndarray,
                   reference: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Inverse of :func:`gather_columns` for rows `rows` (N,): (N, len(reference)) uint8,
    each `reference` with bit ``columns[j]`` set where bit ``j`` of its row of `packed` is
    (`reference` holds the bits of every other column, and zero at `columns`)."""
    out = np.empty((len(rows), reference.shape[0]), dtype=np.uint8)
    n = len(columns)
    for i in range(len(rows)):
        out[i, :] = reference
        src = packed[rows[i]]
        for b in range(packed.shape[1]):
            byte = src[b]
            if byte == 0:
                continue
            for t in range(8):
                if byte & (128 >> t) and 8 * b + t < n:
                    c = columns[8 * b + t]
                    out[i, c >> 3] |= np.uint8(128 >> (c & 7))
    return out
