"""Affine maps of one wide site on every face, walked depth-first with one running map.

Private compiled kernel of the 2D engine (inputs validated by the caller). Only used for
*chain* links: the pre-activation of site ``l`` is ``A_l a_{l-1} + b_l``.

Two faces sharing an edge differ in exactly the neuron that created the edge, so their
maps of site ``l`` (origin form: value at the plane's origin, slope along s, along t)
differ by a rank-1 term ``s * v (x) g``, with ``s = gate_after - gate_before`` of that
neuron (``+-(1 - negative_slope)``) and ``g`` the neuron's own map where it cuts:

* edge of site ``l-1`` (neuron k, inside one face of the partition before site l-1):
  ``v = A_l[:, k]``;
* edge of site ``l-2`` (neuron j, inside a face two levels up):
  ``v = A_l (gate_{l-1} * A_{l-1}[:, j])``. The gates of site l-1 are the same on both
  sides. Along neuron j's zero line they change only where a line of site l-1 crosses
  it, so ``v`` is kept per neuron j and updated by one column of ``A_l`` per changed gate
  (recomputed in full when that is cheaper, and every ``walk_line_refresh`` updates).

A depth-first walk over the faces carries one running map: stepping across an edge adds
the edge's term, stepping back subtracts it, and every face is screened when first
reached. Rounding therefore accumulates along the walk, so the running map is replaced
by an exact one (computed by the caller through the links) every ``walk_anchor_steps``
steps: every map used is at most that many rank-1 terms from an exact one.

Screening: neuron j's range over a face's bounding box (grown by the caller's band) is
``value +- (|ds| * half_s + |dt| * half_t)`` around the box centre. Positive everywhere
sets the neuron's bit in the face's base pattern; a range reaching zero makes the pair a
candidate (checked exactly at the face's vertices by the caller).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from reluscope._kernels.bits import POPCOUNT
from reluscope.nets.links import SparseColumns
from reluscope.regions.options import EngineOptions
from reluscope.regions.patterns import plain_gate_map

_DONE, _NEED_ROOT, _ANCHOR, _FULL = 0, 1, 2, 3
#: Multiplier gathering the low bits of 8 bytes into the top byte (first byte on top).
_PACK_BITS = np.uint64(0x8040201008040201)


@dataclass
class WalkGraph:
    """Usable edges between the faces, CSR by source face, with their rank-1 terms.

    ``kind`` 0: edge of site l-1 (``col`` = k, term ``c (x) A_l[:, k]``); 1: edge of site
    l-2 (``col`` = j, term ``c (x) v_j``). The coefficient ``c`` (3,) is the gate step
    ``s = sign * gain[kind]`` times the origin-form map of the chord that made the edge:
    row ``chord`` of ``rows[kind]`` (the chord tables are shared, not copied per edge: 13
    bytes per directed edge instead of 41).
    """

    ptr: np.ndarray  # (F + 1,) int64
    dst: np.ndarray  # (E,) int32
    kind: np.ndarray  # (E,) int8
    col: np.ndarray  # (E,) int32
    chord: np.ndarray  # (E,) int32: row of the edge's chord in near_rows (kind 0) or far_rows
    sign: np.ndarray  # (E,) int8: +-1
    near_rows: np.ndarray  # (P, 3) float64: chord maps of site l-1
    far_rows: np.ndarray  # (Q, 3) float64: chord maps of site l-2
    gain: np.ndarray  # (2,) float64: 1 - negative slope of sites l-1 and l-2


@dataclass
class WalkResult:
    """Candidate pairs (value and slopes at each face's box centre) and base patterns."""

    face: np.ndarray
    neuron: np.ndarray
    value: np.ndarray
    ds: np.ndarray
    dt: np.ndarray
    base: np.ndarray  # (F, ceil(n / 8)) uint8: neurons positive on the whole face


@numba.njit(cache=True, nogil=True)
def _screen(face: int, z: np.ndarray, ref: np.ndarray, half: np.ndarray, base: np.ndarray,
            out_face: np.ndarray, out_neuron: np.ndarray, out_value: np.ndarray,
            out_ds: np.ndarray, out_dt: np.ndarray, count: int, positive: np.ndarray,
            near: np.ndarray) -> int:  # pragma: no cover
    """Screen face `face` with map `z` (3, n); append its candidates; return the count.

    `positive` and `near` are (8 * ceil(n / 8),) uint8 scratch arrays, zero past n. The
    first loop has no branches (it vectorises); bits are packed 8 at a time, and the
    rare candidates are found one 8-neuron word at a time. Returns -1, writing nothing,
    when the face's candidates do not fit in the buffers after `count` (the caller screens
    the face again with room).
    """
    rx, ry = ref[face, 0], ref[face, 1]
    hx, hy = half[face, 0], half[face, 1]
    z0, z1, z2 = z[0], z[1], z[2]
    found = 0
    for j in range(z.shape[1]):
        value = z0[j] + z1[j] * rx + z2[j] * ry
        margin = abs(z1[j]) * hx + abs(z2[j]) * hy
        positive[j] = value > margin
        near[j] = abs(value) <= margin
        found += near[j]
    if count + found > out_face.shape[0]:
        return -1
    words = positive.view(np.uint64)
    near_words = near.view(np.uint64)
    for w in range(words.shape[0]):
        # byte t of the word (little-endian) is neuron 8w + t; packbits puts it at bit 7 - t
        base[face, w] = np.uint8((words[w] * _PACK_BITS) >> np.uint64(56))
        if near_words[w]:
            for t in range(8):
                j = 8 * w + t
                if near[j]:
                    out_face[count] = face
                    out_neuron[count] = j
                    out_value[count] = z0[j] + z1[j] * rx + z2[j] * ry
                    out_ds[count] = z1[j]
                    out_dt[count] = z2[j]
                    count += 1
    return count


@numba.njit(cache=True, nogil=True)
def _gate_on(gates: np.ndarray, face_row: int, k: int, position: np.ndarray,
             reference: np.ndarray) -> bool:  # pragma: no cover - compiled
    """Is neuron k of site l-1 active on row `face_row` (see ``PackedPatterns.gates``)?"""
    p = position[k]
    if p < 0:
        return (reference[k >> 3] & (128 >> (k & 7))) != 0
    return (gates[face_row, p >> 3] & (128 >> (p & 7))) != 0


@numba.njit(cache=True, nogil=True)
def _line_vector(j: int, r: int, face_row: int, gates: np.ndarray, gate_map: tuple, slope: float,
                 at_rows: np.ndarray, prev_rows: np.ndarray, lines: np.ndarray,
                 line_gates: np.ndarray, line_age: np.ndarray, refresh: int
                 ) -> None:  # pragma: no cover
    """Bring ``lines[r] = A_l (gate_{l-1}(face_row) * A_{l-1}[:, j])`` up to date (`r`: the
    row neuron j's line has). `gate_map`: ``(columns, position, reference)`` of the stored
    rows `gates` (``PackedPatterns.gates``); neurons not stored never change."""
    columns, position, reference = gate_map
    n_bytes = gates.shape[1]
    m = at_rows.shape[0]
    if line_age[r] >= 0:
        changed = 0
        for b in range(n_bytes):
            changed += POPCOUNT[gates[face_row, b] ^ line_gates[r, b]]
        if 4 * changed <= m and line_age[r] + changed <= refresh:
            if changed == 0:
                return
            vec = lines[r]
            for b in range(n_bytes):
                diff = gates[face_row, b] ^ line_gates[r, b]
                if diff == 0:
                    continue
                for t in range(8):
                    bit = 128 >> t
                    if diff & bit:
                        k = columns[8 * b + t]
                        w = (1.0 - slope) * prev_rows[j, k]
                        if not gates[face_row, b] & bit:
                            w = -w
                        row = at_rows[k]
                        for i in range(vec.shape[0]):
                            vec[i] += w * row[i]
                line_gates[r, b] = gates[face_row, b]
            line_age[r] += changed
            return
    vec = lines[r]
    vec[:] = 0.0
    for k in range(m):
        gate = 1.0 if _gate_on(gates, face_row, k, position, reference) else slope
        w = gate * prev_rows[j, k]
        if w != 0.0:
            row = at_rows[k]
            for i in range(vec.shape[0]):
                vec[i] += w * row[i]
    line_gates[r, :] = gates[face_row, :]
    line_age[r] = 0


@numba.njit(cache=True, nogil=True)
def _line_vector_sparse(j: int, r: int, face_row: int, gates: np.ndarray, gate_map: tuple,
                        slope: float, at_ptr: np.ndarray,
                        at_idx: np.ndarray, at_val: np.ndarray, prev_ptr: np.ndarray,
                        prev_idx: np.ndarray, prev_val: np.ndarray, lines: np.ndarray,
                        line_gates: np.ndarray, line_age: np.ndarray, refresh: int
                        ) -> None:  # pragma: no cover
    """:func:`_line_vector` for sparse links: both ``A`` in CSC form (column j of ``A_{l-1}``
    lists the site l-1 neurons k it reaches; only their gates matter)."""
    _, position, reference = gate_map
    lo, hi = prev_ptr[j], prev_ptr[j + 1]
    vec = lines[r]
    if line_age[r] >= 0:
        changed = 0
        for q in range(lo, hi):
            p = position[prev_idx[q]]
            if p >= 0 and (gates[face_row, p >> 3] ^ line_gates[r, p >> 3]) & (128 >> (p & 7)):
                changed += 1
        if 4 * changed <= hi - lo and line_age[r] + changed <= refresh:
            if changed == 0:
                return
            for q in range(lo, hi):
                k = prev_idx[q]
                p = position[k]
                if p < 0:
                    continue
                b, bit = p >> 3, 128 >> (p & 7)
                if (gates[face_row, b] ^ line_gates[r, b]) & bit:
                    w = (1.0 - slope) * prev_val[q]
                    if not gates[face_row, b] & bit:
                        w = -w
                    for e in range(at_ptr[k], at_ptr[k + 1]):
                        vec[at_idx[e]] += w * at_val[e]
            for q in range(lo, hi):  # only the bits of column j are ever read
                p = position[prev_idx[q]]
                if p >= 0:
                    line_gates[r, p >> 3] = gates[face_row, p >> 3]
            line_age[r] += changed
            return
    vec[:] = 0.0
    for q in range(lo, hi):
        k = prev_idx[q]
        gate = 1.0 if _gate_on(gates, face_row, k, position, reference) else slope
        w = gate * prev_val[q]
        if w != 0.0:
            for e in range(at_ptr[k], at_ptr[k + 1]):
                vec[at_idx[e]] += w * at_val[e]
    for q in range(lo, hi):
        p = position[prev_idx[q]]
        if p >= 0:
            line_gates[r, p >> 3] = gates[face_row, p >> 3]
    line_age[r] = 0


@numba.njit(cache=True, nogil=True)
def _step(edge: int, sign: float, face_row: int, z: np.ndarray, kind: np.ndarray, col: np.ndarray,
          chord: np.ndarray, step: np.ndarray, terms: tuple, links: tuple, gates: np.ndarray,
          gate_map: tuple, slope: float,
          line_slot: np.ndarray, lines: np.ndarray, line_gates: np.ndarray, line_age: np.ndarray,
          refresh: int) -> None:  # pragma: no cover
    """Add ``sign`` times edge `edge`'s rank-1 term to the running map `z`.

    `face_row` is the row of `gates` of the face the edge leads to (patterns by reference);
    `line_slot[j]` is the row of `lines` of neuron j of site l-2. `chord`, `step` and
    `terms` = ``(near_rows, far_rows, gain)``: the edge's coefficient (see :class:`WalkGraph`).

    `links`: ``(sparse, at_rows, prev_rows, at_ptr, at_idx, at_val, prev_ptr, prev_idx,
    prev_val)``: dense ``A`` transposed, or both links' CSC columns when `sparse`.
    """
    sparse, at_rows, prev_rows, at_ptr, at_idx, at_val, prev_ptr, prev_idx, prev_val = links
    j = col[edge]
    near_rows, far_rows, gain = terms
    rows = near_rows if kind[edge] == 0 else far_rows
    r = chord[edge]
    s = sign * step[edge] * gain[kind[edge]]
    c0 = s * rows[r, 0]
    c1 = s * rows[r, 1]
    c2 = s * rows[r, 2]
    if kind[edge] == 0 and sparse:
        for q in range(at_ptr[j], at_ptr[j + 1]):
            i = at_idx[q]
            v = at_val[q]
            z[0, i] += c0 * v
            z[1, i] += c1 * v
            z[2, i] += c2 * v
        return
    if kind[edge] == 0:
        vec = at_rows[j]
    elif sparse:
        r = line_slot[j]
        _line_vector_sparse(j, r, face_row, gates, gate_map, slope, at_ptr, at_idx, at_val, prev_ptr,
                            prev_idx, prev_val, lines, line_gates, line_age, refresh)
        vec = lines[r]
    else:
        r = line_slot[j]
        _line_vector(j, r, face_row, gates, gate_map, slope, at_rows, prev_rows, lines, line_gates,
                     line_age, refresh)
        vec = lines[r]
    for i in range(vec.shape[0]):
        v = vec[i]
        z[0, i] += c0 * v
        z[1, i] += c1 * v
        z[2, i] += c2 * v


class _Shared(NamedTuple):
    """The walk's read-only inputs, shared by every walker: the first arguments of
    :func:`_walk` in order (a compiled kernel takes flat arrays; this names them)."""

    ptr: np.ndarray
    dst: np.ndarray
    kind: np.ndarray
    col: np.ndarray
    chord: np.ndarray
    step: np.ndarray  # the edges' signs
    terms: tuple  # (near_rows, far_rows, gain), see _step
    links: tuple  # see _step
    gates: np.ndarray
    gate_map: tuple  # (columns, position, reference) of the rows `gates` (see _line_vector)
    gate_row: np.ndarray  # row of `gates` of each face (patterns by reference)
    slope: float
    line_slot: np.ndarray  # row of a walker's `lines` of each neuron of site l-2 (-1: no edge)


@numba.njit(cache=True, nogil=True)
def _walk(ptr: np.ndarray, dst: np.ndarray, kind: np.ndarray, col: np.ndarray, chord: np.ndarray,
          step: np.ndarray, terms: tuple, links: tuple, gates: np.ndarray, gate_map: tuple,
          gate_row: np.ndarray, slope: float,
          line_slot: np.ndarray, lines: np.ndarray, line_gates: np.ndarray, line_age: np.ndarray,
          refresh: int,
          ref: np.ndarray, half: np.ndarray, z: np.ndarray, visited: np.ndarray,
          stack_face: np.ndarray, stack_edge: np.ndarray, stack_cursor: np.ndarray,
          state: np.ndarray, base: np.ndarray, out_face: np.ndarray, out_neuron: np.ndarray,
          out_value: np.ndarray, out_ds: np.ndarray, out_dt: np.ndarray, max_steps: int,
          positive: np.ndarray, near: np.ndarray) -> tuple[int, int]:  # pragma: no cover
    """Walk until done, a root is needed, an anchor is due, or the buffer is full.

    ``state``: [depth, next root candidate, 1 if the top face is still to be screened (a
    root just anchored, or a face whose candidates did not fit), steps since the last
    anchor]. The steps carry over a full buffer, so where anchors fall (and so every value)
    does not depend on the buffers' size. Returns (pairs written, status).
    """
    n_faces = ptr.shape[0] - 1
    count = 0
    steps = state[3]
    depth = state[0]
    if state[2] == 1:
        count = _screen(stack_face[depth - 1], z, ref, half, base, out_face, out_neuron,
                        out_value, out_ds, out_dt, count, positive, near)
        if count < 0:  # an empty buffer too small for one face: the caller grows it
            return 0, _FULL
        state[2] = 0
        if steps >= max_steps and depth > 0:  # the anchor due after that face's step
            state[3] = 0
            return count, _ANCHOR
    while True:
        if depth == 0:
            root = state[1]
            while root < n_faces and visited[root]:
                root += 1
            state[0] = 0
            state[1] = root
            state[3] = 0
            return count, (_DONE if root == n_faces else _NEED_ROOT)
        top = stack_face[depth - 1]
        edge = stack_cursor[depth - 1]
        end = ptr[top + 1]
        while edge < end and visited[dst[edge]]:
            edge += 1
        if edge < end:
            face = dst[edge]
            _step(edge, 1.0, gate_row[face], z, kind, col, chord, step, terms, links, gates, gate_map, slope,
                  line_slot, lines, line_gates, line_age, refresh)
            visited[face] = True
            stack_cursor[depth - 1] = edge + 1
            stack_face[depth] = face
            stack_edge[depth] = edge
            stack_cursor[depth] = ptr[face]
            depth += 1
            screened = _screen(face, z, ref, half, base, out_face, out_neuron, out_value, out_ds,
                               out_dt, count, positive, near)
            if screened < 0:  # full: the face is screened again on the next call
                state[0], state[2], state[3] = depth, 1, steps + 1
                return count, _FULL
            count = screened
        else:
            stack_cursor[depth - 1] = end
            depth -= 1
            if depth > 0:
                _step(stack_edge[depth], -1.0, gate_row[stack_face[depth]], z, kind, col, chord, step,
                      terms, links, gates, gate_map, slope, line_slot, lines, line_gates, line_age,
                      refresh)
        steps += 1
        if steps >= max_steps and depth > 0:
            state[0] = depth
            state[3] = 0
            return count, _ANCHOR


def walk_candidates(graph: WalkGraph, at_rows: np.ndarray | SparseColumns,
                    prev_rows: np.ndarray | SparseColumns | None, gates: np.ndarray, slope: float,
                    ref: np.ndarray, half: np.ndarray,
                    exact_maps: Callable[[int], np.ndarray], options: EngineOptions | None = None,
                    exact_batch: Callable[[np.ndarray], np.ndarray] | None = None,
                    gate_row: np.ndarray | None = None,
                    gate_map: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> WalkResult:
    """Screen every face's map of one site, walking the faces (see module docstring).

    Parameters
    ----------
    graph : WalkGraph
    at_rows : (size_{l-1}, size_l) float64, or SparseColumns
        ``A_l`` transposed (row k is column k), or its columns in CSC form (a sparse link:
        a conv net; each rank-1 term then costs its column's non-zeros, not size_l).
    prev_rows : (size_{l-2}, size_{l-1}) float64, SparseColumns, or None
        ``A_{l-1}`` the same way; None when the graph has no edges of site l-2. If either
        link is sparse, both are used in CSC form.
    gates : (F, ceil(size_{l-1} / 8)) uint8
        Packed patterns of site l-1 on the faces (or their distinct rows, with `gate_row`).
    slope : float
        Negative slope of site l-1 (0 for ReLU).
    ref, half : (F, 2) float64
        Centre and half-extent (grown by the band) of each face's bounding box.
    exact_maps : callable
        ``exact_maps(face)`` -> (3, size_l) exact origin-form map on that face.
    exact_batch : callable, optional
        ``exact_batch(faces (R,))`` -> (3, R, size_l): the same for many faces in one pass.
        With it, the maps at the walkers' component roots are computed ``walk_root_batch``
        at a time, as the walkers reach them (see :class:`_RootMaps`).
    gate_row : (F,) int64, optional
        Row of `gates` of each face (default: face ``f`` has row ``f``).
    gate_map : (columns, position, reference), optional
        The neurons `gates` stores (``PackedPatterns.gates``: rows of a column subset);
        default: every neuron, at its own bit.
    options : EngineOptions, optional
        Its ``walk_*`` fields: anchor spacing, line refresh, buffer size, and threads. Walks
        run side by side, each over one vertical strip of the faces (edges between strips
        are not walked): one per CPU core (at most ``walk_max_threads``) for sites of at
        least ``walk_parallel_faces`` faces.

    Returns
    -------
    WalkResult
        Candidate pairs grouped by walker, in walk order (sort by face for face order).
    """
    options = options or EngineOptions()
    n_faces = len(graph.ptr) - 1
    threads = min(os.cpu_count() or 1, options.walk_max_threads) \
        if n_faces >= options.walk_parallel_faces else 1
    threads = max(1, min(threads, n_faces))
    links, size = _link_arrays(at_rows, prev_rows)
    base = np.zeros((n_faces, (size + 7) // 8), dtype=np.uint8)
    rows = np.arange(n_faces, dtype=np.int64) if gate_row is None else gate_row.astype(np.int64)
    if gate_map is None:
        gate_map = plain_gate_map(gates.shape[1], 8 * gates.shape[1])
    terms = (np.ascontiguousarray(graph.near_rows, dtype=np.float64),
             np.ascontiguousarray(graph.far_rows, dtype=np.float64),
             np.asarray(graph.gain, dtype=np.float64))
    shared = _Shared(graph.ptr, graph.dst, graph.kind, graph.col, graph.chord, graph.sign, terms, links,
                     np.ascontiguousarray(gates), gate_map, rows, slope, _line_slots(graph, links))
    lock = threading.Lock()
    strip = np.zeros(n_faces, dtype=np.int64)
    if threads > 1:
        edges = np.quantile(ref[:, 0], np.arange(1, threads) / threads)
        strip = np.searchsorted(edges, ref[:, 0], side="right")
    roots = component_roots(graph, strip) if exact_batch is not None else None
    exact = _RootMaps(exact_maps, exact_batch, roots, None if roots is None else strip[roots],
                      options.walk_root_batch, lock)
    walkers = [_Walker(shared, size, ref, half, base, strip != t, exact, options)
               for t in range(threads)]
    if threads == 1:
        walkers[0].run()
    else:
        with ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(w.run) for w in walkers]:
                future.result()
    face, neuron, value, ds, dt = (np.concatenate([p for w in walkers for p in w.parts[i]])
                                   for i in range(5))
    return WalkResult(face, neuron, value, ds, dt, base)


class _RootMaps:
    """Exact maps for the walkers: one face at a time, except at component roots, whose
    maps come ``batch`` at a time in one pass (the roots of the asking walker's strip it has
    not reached yet, from the one asked for on: a walker asks for its roots in increasing
    order), so a pass's fixed cost is shared while at most one batch per walker is held.

    Parameters
    ----------
    one : callable
        ``one(face)`` -> (3, size) exact origin-form map.
    many : callable or None
        ``many(faces (R,))`` -> (3, R, size); None: every map by `one`.
    roots : (K,) int64 sorted, or None
        The faces walkers start their components from (:func:`component_roots`).
    strips : (K,) int64, or None
        The strip (walker) of each root.
    batch : int
    lock : threading.Lock
        Held while the model runs (its own state is single-threaded).
    """

    def __init__(self, one: Callable[[int], np.ndarray],
                 many: Callable[[np.ndarray], np.ndarray] | None, roots: np.ndarray | None,
                 strips: np.ndarray | None, batch: int, lock: threading.Lock) -> None:
        self.one, self.many, self.batch, self.lock = one, many, max(1, batch), lock
        self.roots = np.zeros(0, np.int64) if roots is None or many is None else roots
        self.strips = np.zeros(len(self.roots), np.int64) if strips is None else strips
        self.pending = np.ones(len(self.roots), dtype=bool)  # not yet computed
        self.ready: dict[int, np.ndarray] = {}

    def __call__(self, face: int) -> np.ndarray:
        with self.lock:
            found = self.ready.pop(face, None)
            if found is not None:
                return found
            at = int(np.searchsorted(self.roots, face))
            if self.many is None or at == len(self.roots) or self.roots[at] != face \
                    or not self.pending[at]:
                return self.one(face)
            mine = self.pending[at:] & (self.strips[at:] == self.strips[at])
            todo = at + np.flatnonzero(mine)[: self.batch]
            self.pending[todo] = False
            if len(todo) == 1:
                return self.one(face)
            maps = self.many(self.roots[todo])
            self.ready.update({int(f): maps[:, i].copy() for i, f in enumerate(self.roots[todo])})
            return self.ready.pop(face)


def _line_slots(graph: WalkGraph, links: tuple) -> np.ndarray:
    """Row of a walker's line vectors of each neuron of site l-2: only the neurons that
    have an edge here get one (a small slice of a conv net crosses few of its 12k lines)."""
    sparse, prev_rows, prev_ptr = links[0], links[2], links[6]
    n_lines = len(prev_ptr) - 1 if sparse else prev_rows.shape[0]
    slot = np.full(max(n_lines, 1), -1, dtype=np.int64)
    used = np.unique(graph.col[graph.kind == 1])
    slot[used] = np.arange(len(used))
    return slot


def _link_arrays(at_rows: np.ndarray | SparseColumns, prev_rows: np.ndarray | SparseColumns | None
                 ) -> tuple[tuple, int]:
    """The kernel's ``links`` tuple (see :func:`_step`) and size_l."""
    empty_f, empty_i = np.zeros(0), np.zeros(1, dtype=np.int64)
    sparse = isinstance(at_rows, SparseColumns) or isinstance(prev_rows, SparseColumns)
    if not sparse:
        assert isinstance(at_rows, np.ndarray)
        prev = np.zeros((1, at_rows.shape[0])) if prev_rows is None else prev_rows
        return (False, at_rows, prev, empty_i, empty_i, empty_f, empty_i, empty_i, empty_f), \
            at_rows.shape[1]
    at = at_rows if isinstance(at_rows, SparseColumns) else SparseColumns.from_dense(at_rows.T)
    if prev_rows is None:
        prev = SparseColumns(np.zeros(1, dtype=np.int64), empty_i[:0], empty_f, len(at.ptr) - 1)
    else:
        prev = prev_rows if isinstance(prev_rows, SparseColumns) else SparseColumns.from_dense(prev_rows.T)
    dummy = np.zeros((1, 1))
    return (True, dummy, dummy, at.ptr, at.rows, at.values, prev.ptr, prev.rows, prev.values), at.size_out


def component_roots(graph: WalkGraph, strip: np.ndarray) -> np.ndarray:
    """The faces the walkers start from: the lowest face of each connected component of the
    graph restricted to one strip (a walker takes the first unvisited face as its next root
    and walks its whole component), in increasing order."""
    return np.flatnonzero(_lowest_of_component(graph.ptr, graph.dst, strip) == np.arange(len(strip)))


@numba.njit(cache=True, nogil=True)
def _lowest_of_component(ptr: np.ndarray, dst: np.ndarray, strip: np.ndarray
                         ) -> np.ndarray:  # pragma: no cover - compiled
    """(F,) int64: the lowest face of each face's component (edges within a strip only), by
    union-find that keeps the lower face as a set's root (one array; a sparse matrix and a
    graph search would hold several edge-sized ones)."""
    n = len(ptr) - 1
    root = np.arange(n)
    for f in range(n):
        for e in range(ptr[f], ptr[f + 1]):
            g = dst[e]
            if strip[g] != strip[f]:
                continue
            a, b = f, g
            while root[a] != a:  # find, halving the path
                root[a] = root[root[a]]
                a = root[a]
            while root[b] != b:
                root[b] = root[root[b]]
                b = root[b]
            if a < b:
                root[b] = a
            elif b < a:
                root[a] = b
    for f in range(n):  # every face to its set's root (roots are lower, so already final)
        root[f] = root[root[f]]
    return root


class _Walker:
    """One depth-first walk over the faces not marked `skip` (its own running map)."""

    def __init__(self, shared: _Shared, size: int, ref: np.ndarray, half: np.ndarray,
                 base: np.ndarray, skip: np.ndarray, exact_maps: Callable[[int], np.ndarray],
                 options: EngineOptions) -> None:
        self.shared, self.ref, self.half, self.base = shared, ref, half, base
        self.anchor_steps, self.line_refresh = options.walk_anchor_steps, options.walk_line_refresh
        self.exact_maps = exact_maps
        ptr, gates = shared.ptr, shared.gates
        n_faces, n = len(ptr) - 1, size
        # one line vector per neuron of site l-2 with an edge here (edges two sites back)
        # (none when no edge here is two sites back: a wide site's row is not small)
        self.lines = np.zeros((int(shared.line_slot.max()) + 1, n))
        self.line_gates = np.zeros((len(self.lines), gates.shape[1]), dtype=np.uint8)
        self.line_age = np.full(len(self.lines), -1, dtype=np.int64)
        self.z = np.zeros((3, n))
        self.visited = skip.copy()  # faces of other walkers count as visited
        # face, edge, cursor: a depth-first stack holds each of the walker's faces at most once
        depth = n_faces - int(np.count_nonzero(skip)) + 1
        self.stack = [np.zeros(depth, dtype=np.int64) for _ in range(3)]
        self.state = np.zeros(4, dtype=np.int64)
        # a face may add a pair per neuron, so the largest buffers hold one face's worth at
        # least; small slices find few pairs, so the buffers start at 1/16 of the largest
        # size (whatever the site's width) and grow when a face's candidates do not fit
        self.most_pairs = max(options.walk_buffer_pairs, n)
        self.buffers = self._buffers(max(options.walk_buffer_pairs // 16, 1))
        self.parts: list[list[np.ndarray]] = [[] for _ in self.buffers]
        self.scratch = (np.zeros(8 * base.shape[1], dtype=np.uint8),
                        np.zeros(8 * base.shape[1], dtype=np.uint8))

    @staticmethod
    def _buffers(capacity: int) -> tuple[np.ndarray, ...]:
        """Empty pair buffers (face, neuron, value, ds, dt) of `capacity` pairs."""
        return (np.empty(capacity, np.int64), np.empty(capacity, np.int64),
                np.empty(capacity), np.empty(capacity), np.empty(capacity))

    def run(self) -> None:
        ptr = self.shared.ptr
        stack_face, _, stack_cursor = self.stack
        while True:
            count, status = _walk(  # type: ignore[call-arg]
                *self.shared, self.lines, self.line_gates, self.line_age, self.line_refresh, self.ref,
                self.half, self.z, self.visited, *self.stack, self.state, self.base,  # type: ignore[arg-type]
                *self.buffers, self.anchor_steps, *self.scratch)
            for part, buffer in zip(self.parts, self.buffers, strict=True):
                part.append(buffer[:count].copy())
            if status == _DONE:
                return
            if status == _NEED_ROOT:
                root = int(self.state[1])
                self.visited[root] = True
                stack_face[0], stack_cursor[0] = root, ptr[root]
                self.state[0], self.state[2] = 1, 1
                self.z[:] = self.exact_maps(root)
            elif status == _ANCHOR:
                self.z[:] = self.exact_maps(int(stack_face[self.state[0] - 1]))
            elif len(self.buffers[0]) < self.most_pairs:  # full: a larger buffer next time
                self.buffers = self._buffers(min(4 * len(self.buffers[0]), self.most_pairs))
