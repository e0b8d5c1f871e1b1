"""Cutting faces by their chords: all at once (an arrangement) or in rounds.

Faces with at least ``arrange_min_chords`` chords (the first site's single face has one
per neuron) are cut by all of them at once, as an arrangement of segments built from ring
order alone (``arrangement``). The others -- and any face whose arrangement is
inconsistent -- are cut in rounds: round ``j`` cuts every piece of a face by its ``j``-th
chord. Signs at vertices on the face's boundary are decided combinatorially (by their
order along the edge, see :meth:`Cutter.signs`), so neighbouring faces stay consistent,
and only vertices created inside the face use its affine map.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from reluscope._kernels.bits import clear_bit, flood_flip_bits, set_bit
from reluscope._kernels.growable import Growable
from reluscope._kernels.rings import (
    batch_bounds,
    gather_rings,
    next_slot,
    ring_boxes,
    ring_ids,
    shoelace,
    vertex_means,
)
from reluscope._kernels.rounds import box_round, scatter_chord_bits
from reluscope._kernels.sorting import argsort_int, unique_first_inverse
from reluscope._validation import message
from reluscope.errors import TooManyRegionsError
from reluscope.nets.sites import Site
from reluscope.regions.options import EngineOptions
from reluscope.regions.patterns import PackedPatterns
from reluscope.regions.slice2d.arrangement import Arrangement, arrange
from reluscope.regions.slice2d.faces import Faces, RingPool, gather_sources
from reluscope.regions.slice2d.pairs import CanonicalValues, Pairs
from reluscope.regions.slice2d.split import split_rings
from reluscope.regions.slice2d.vertices import VertexKind, VertexStore

_PIECE_FIELDS = ("start", "length", "lo", "hi", "above", "parent")


class _Pieces:
    """Pieces being cut in rounds, one row each: their ring in the pool (start, length),
    bounding box (lo, hi, each (P, 2)), the face they lie in, and which of its chords they
    are above (packed, bit j: the face's j-th chord; a few bits, where this site's whole
    pattern would be a row of its width: it is built once, when the rounds are over).

    Rows live in growable buffers: a round appends its new halves in time proportional to
    them, not to every live piece (a face cut by thousands of chords in rounds keeps
    ~10^5 pieces live for thousands of rounds). The attributes are views, valid until the
    next :meth:`extend`.
    """

    def __init__(self, start: np.ndarray, length: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 above: np.ndarray, parent: np.ndarray) -> None:
        self._rows: dict[str, Growable] = {}
        for name, rows in zip(_PIECE_FIELDS, (start, length, lo, hi, above, parent), strict=True):
            grown = Growable(None if rows.ndim == 1 else rows.shape[1], rows.dtype,
                             capacity=max(2 * len(rows), 16))
            grown.extend(rows)
            self._rows[name] = grown

    @property
    def start(self) -> np.ndarray:
        return self._rows["start"].view()

    @property
    def length(self) -> np.ndarray:
        return self._rows["length"].view()

    @property
    def lo(self) -> np.ndarray:
        return self._rows["lo"].view()

    @property
    def hi(self) -> np.ndarray:
        return self._rows["hi"].view()

    @property
    def above(self) -> np.ndarray:
        return self._rows["above"].view()

    @property
    def parent(self) -> np.ndarray:
        return self._rows["parent"].view()

    def take(self, index: np.ndarray) -> _Pieces:
        return _Pieces(*(self._rows[name].view()[index] for name in _PIECE_FIELDS))

    def extend(self, *rows: np.ndarray) -> None:
        """Append pieces given as one array per field (in ``_PIECE_FIELDS`` order)."""
        for name, block in zip(_PIECE_FIELDS, rows, strict=True):
            self._rows[name].extend(block)


@dataclass
class Cut:
    """Pieces of one site's faces before their pattern rows exist.

    Attributes
    ----------
    faces : Faces
        The pieces' rings and parents (no patterns yet).
    fill : callable
        ``fill(out, position)`` writes this site's pattern row of every piece into ``out``, a
        ``(faces.count, width)`` uint8 array (a view into the rows of every piece of the
        site): the rows of a wide site are the largest arrays of a slice, so they are
        written once, in place, rather than built per method and concatenated. Neuron
        ``k``'s bit is bit ``position[k]`` of a row (rows may store a subset of the neurons,
        see :class:`~reluscope.regions.patterns.ColumnSubset`; the base rows the cut was
        given are in that form).
    """

    faces: Faces
    fill: Callable[[np.ndarray, np.ndarray], None]


class Cutter:
    """Cuts the faces of one site by their chords; counts degenerate pieces."""

    def __init__(self, vertices: VertexStore, options: EngineOptions, snap: float,
                 label_offset: np.ndarray, max_regions: int) -> None:
        self.vertices, self.options, self.snap = vertices, options, snap
        self.label_offset, self.max_regions = label_offset, max_regions
        #: pieces left whole because their sign pattern cannot be one straight cut
        self.n_degenerate = 0

    def too_many(self, site: Site, count: int) -> None:
        raise TooManyRegionsError(message(
            "the partition of slice_regions", f"at most max_regions={self.max_regions:,} regions",
            f"more than {count:,} while cutting by site {site.index} (`{site.name}`, "
            f"{site.size:,} neurons)",
            "Use a smaller domain (a smaller margin in Plane.through, or a smaller radius in "
            "Plane.around), or pass a larger max_regions if you have the memory "
            "(roughly 1 KB per region for a 3 x 1024 MLP)."))

    # ------------------------------------------------------------------ rounds
    def cut_rounds(self, faces: Faces, site: Site, chords: Pairs, canonical: CanonicalValues,
                   base: np.ndarray, skip: np.ndarray | None = None) -> Cut:
        """Round j cuts every piece of each face by that face's j-th chord.

        Pieces live in an append-only ring pool, so a round only touches the pieces its
        chords actually cross: a bounding-box test (with the snap margin) settles the
        side of every other piece without looking at its ring. Faces where `skip` is
        True are left out of the result (they are cut elsewhere).
        """
        n_chords = np.bincount(chords.face, minlength=faces.count)
        chord_start = np.concatenate([[0], np.cumsum(n_chords)]).astype(np.int64)
        pool = RingPool()

        def add_faces(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            ptr, slots = gather_rings(faces.ptr, idx)
            return pool.add(ptr, faces.vid[slots], faces.lab[slots])

        keep = np.ones(faces.count, dtype=bool) if skip is None else ~skip
        width = (int(n_chords[keep].max(initial=0)) + 7) // 8
        # faces without chords stay as they are: copied once, at the end, from `faces`
        quiet = np.flatnonzero((n_chords == 0) & keep)
        done: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        parent = np.flatnonzero((n_chords > 0) & keep)
        start, length = add_faces(parent)
        lo, hi = ring_boxes(*pool.gather(start, length)[:2], self.vertices.xy)
        live = _Pieces(start, length, lo, hi, np.zeros((len(parent), width), np.uint8), parent)
        reach = 2.0 * chords.tolerance(np.arange(len(chords.face)), self.snap)
        if chords.slack is not None:
            reach += 2.0 * chords.slack
        j = 0
        last_rounds = set(np.unique(n_chords[parent]).tolist())  # rounds where faces finish
        done_slots = 0
        while len(live.parent):
            live = self._round(live, j, chord_start[live.parent] + j, chords, reach, canonical,
                               pool, self.label_offset[site.index])
            j += 1
            # the pool keeps every cut piece's ring: drop the dead ones once they are most of it
            live_slots = done_slots + int(live.length.sum())
            if pool.size > max(self.options.pool_compact_slots, 2 * live_slots):
                new_starts = pool.compact([live.start, *(d[0] for d in done)],
                                          [live.length, *(d[1] for d in done)])
                live.start[:] = new_starts[0]
                done = [(start, *d[1:]) for start, d in zip(new_starts[1:], done, strict=True)]
            total = len(quiet) + len(live.parent) + sum(len(d[0]) for d in done)
            if total > self.max_regions:
                self.too_many(site, total)
            if j not in last_rounds:
                continue
            finished = n_chords[live.parent] <= j
            if finished.any():
                fin = live.take(np.flatnonzero(finished))
                done.append((fin.start, fin.length, fin.parent, fin.above))
                done_slots += int(fin.length.sum())
                live = live.take(np.flatnonzero(~finished))

        # faces leave sorted by parent, so siblings are contiguous for the next site
        parents = np.concatenate([quiet, *(d[2] for d in done)])
        order = np.argsort(parents, kind="stable")
        parents = parents[order]
        above = np.concatenate([np.zeros((len(quiet), width), np.uint8), *(d[3] for d in done)])[order]
        none = np.zeros(0, np.int64)
        pieces = pool.source(np.concatenate([none, *(d[0] for d in done)]),
                             np.concatenate([none, *(d[1] for d in done)]))
        ptr, vid, lab = gather_sources([(faces.vid, faces.lab, faces.ptr[quiet],
                                         faces.ptr[quiet + 1] - faces.ptr[quiet]), pieces], order)

        def fill(pattern: np.ndarray, position: np.ndarray) -> None:
            # only this site's patterns: the earlier ones are inherited once (see the engine)
            np.take(base, parents, axis=0, out=pattern, mode="clip")  # "raise" buffers: 40x slower
            # one compiled pass: a face cut in rounds by thousands of chords (an arrangement
            # that failed) would otherwise unpack to a byte per piece and chord
            scatter_chord_bits(pattern, above, chord_start[parents], n_chords[parents],
                               position[chords.neuron])

        return Cut(Faces(ptr, vid, lab, PackedPatterns(), parents), fill)

    def _round(self, live: _Pieces, j: int, q: np.ndarray, chords: Pairs, reach: np.ndarray,
               canonical: CanonicalValues, pool: RingPool, label0: int) -> _Pieces:
        """Cut each live piece by chord ``q[i]`` (its face's `j`-th): a box test settles most,
        the rest are split. ``reach`` (P,): each chord's margin of the box test (twice the
        snap distance in value, plus twice the bound on its map's error)."""
        cross = box_round(live.lo, live.hi, q, chords.ref, chords.value, chords.ds, chords.dt,
                          reach, live.above, j)
        byte, bit = j >> 3, np.uint8(128 >> (j & 7))
        if not len(cross):
            return live
        ptr, vid, lab = pool.gather(live.start[cross], live.length[cross])
        pair = q[cross]
        sign = self.signs(ptr, vid, pair, chords, canonical)

        def make(a: np.ndarray, b: np.ndarray, ring: np.ndarray) -> np.ndarray:
            return self._interior_vertices(a, b, pair[ring], chords)

        res = split_rings(ptr, vid, lab, sign, label0 + chords.neuron[pair], make)
        self.n_degenerate += int(res.degenerate.sum())
        live.above[cross[res.side > 0], byte] |= bit
        src = cross[res.src]
        h_start, h_length = pool.add(res.ptr, res.vid, res.lab)
        h_lo, h_hi = ring_boxes(res.ptr, res.vid, self.vertices.xy)
        h_above = live.above[src]
        h_above[res.positive, byte] |= bit
        # the positive half takes the cut piece's row; the negative half is appended
        n_half = len(src) // 2
        cut = src[:n_half]
        live.start[cut], live.length[cut] = h_start[:n_half], h_length[:n_half]
        live.lo[cut], live.hi[cut], live.above[cut] = h_lo[:n_half], h_hi[:n_half], h_above[:n_half]
        rest = slice(n_half, len(src))
        live.extend(h_start[rest], h_length[rest], h_lo[rest], h_hi[rest], h_above[rest],
                    live.parent[src[rest]])
        return live

    # ------------------------------------------------------------------ all at once
    def arrange_batches(self, faces: Faces, site: Site, chords: Pairs,
                        canonical: CanonicalValues, base: np.ndarray, busy: np.ndarray
                        ) -> tuple[list[Cut], np.ndarray]:
        """Faces `busy` (sorted) cut by all their chords at once, in batches of about
        ``arrange_batch_chords`` chords (`chords` sorted by face, as the engine makes them).

        Returns the pieces of each batch whose arrangement is consistent, and a (F,) mask of
        the faces they cover; the other batches' faces are left to rounds.
        """
        n_chords = np.bincount(chords.face, minlength=faces.count)
        chord_ptr = np.zeros(faces.count + 1, dtype=np.int64)
        np.cumsum(n_chords, out=chord_ptr[1:])
        # batch b holds the faces whose chords end in [b, b + 1) * budget: a face with more
        # chords than the budget is a batch of its own
        batch = (np.cumsum(n_chords[busy]) - 1) // self.options.arrange_batch_chords
        bounds = np.flatnonzero(np.diff(batch)) + 1
        cuts: list[Cut] = []
        covered = np.zeros(faces.count, dtype=bool)
        total = 0
        for group in np.split(busy, bounds):
            cut = self.arrange_faces(faces, site, chords.take(gather_rings(chord_ptr, group)[1]),
                                     canonical, base, group)
            if cut is None:
                continue
            total += cut.faces.count
            if total > self.max_regions:
                self.too_many(site, total)
            cuts.append(cut)
            covered[group] = True
        return cuts, covered

    def arrange_faces(self, faces: Faces, site: Site, chords: Pairs, canonical: CanonicalValues,
                      base: np.ndarray, busy: np.ndarray) -> Cut | None:
        """Faces `busy` (sorted) cut by all their chords (`chords`: those of these faces
        only) at once (see ``arrangement``).

        Returns their pieces only, or None (forgetting any vertex it made) when an
        arrangement is not consistent; the caller then cuts piece by piece.
        """
        local_face = np.searchsorted(busy, chords.face)
        n_chords = np.bincount(local_face, minlength=len(busy))
        sub_ptr, sub_slots = gather_rings(faces.ptr, busy)
        sub_vid, sub_lab = faces.vid[sub_slots], faces.lab[sub_slots]
        # each chord's signs on its face's ring (chord-major): chords x ring slots entries
        # (a face of thousands of chords has millions), a batch of chords at a time
        ring = np.diff(sub_ptr)[local_face]
        sign = np.empty(int(ring.sum()), dtype=np.int8)
        at = 0
        for c0, c1 in itertools.pairwise(batch_bounds(ring, self.options.slot_batch)):
            ring_ptr, slots = gather_rings(sub_ptr, local_face[c0:c1])
            sign[at : at + len(slots)] = self.signs(ring_ptr, sub_vid[slots], np.arange(c0, c1),
                                                    chords, canonical)
            at += len(slots)
        del ring

        def make(points: np.ndarray, a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
            return self.vertices.add(points, VertexKind.INSIDE, a, b, t)

        first_vertex = self.vertices.size
        whole = shoelace(sub_ptr, sub_vid, self.vertices.xy)
        arr = None
        # crossings closer than the snap distance along one chord are one vertex; near a ring
        # vertex two chords share, that can leave both chords on one edge (a digon): the
        # retry keeps such crossings apart (their piece is a real, tiny one)
        for snap in (self.snap, self.snap * self.options.arrange_retry_snap):
            arr = arrange(sub_ptr, sub_vid, sub_lab, self.vertices.xy, local_face,
                          self.label_offset[site.index] + chords.neuron, sign.astype(np.int8),
                          chords.evaluate, snap, make, self.options.arrangement_max_pairs)
            if arr is not None:
                area = shoelace(arr.ptr, arr.vid, self.vertices.xy)
                covered = np.bincount(arr.face, weights=area, minlength=len(busy))
                if (area > 0).all() and (np.abs(covered - whole) <= 1e-9 * whole).all():
                    break
                arr = None
            self.vertices.truncate(first_vertex)
        if arr is None:
            return None
        parent = busy[arr.face]

        def fill(pattern: np.ndarray, position: np.ndarray) -> None:
            np.take(base, parent, axis=0, out=pattern, mode="clip")
            bit = position[chords.neuron]  # each chord's bit in a row
            # chord bits: the side of each chord of its face the piece's vertex mean is on ...
            self._chord_bits(pattern, arr, area, n_chords, chords, bit)
            # ... except for the chords it borders: it lies left of its counter-clockwise
            # edges (coordinates read now: later cuts may have moved the vertex store)
            xy = self.vertices.xy
            slot = np.flatnonzero(arr.chord_of_edge >= 0)
            chord = arr.chord_of_edge[slot]
            edge_piece = ring_ids(arr.ptr)[slot]
            d = xy[arr.chord_end[chord]] - xy[arr.chord_start[chord]]
            d *= np.where(arr.forward[slot], 1.0, -1.0)[:, None]
            positive = chords.ds[chord] * -d[:, 1] + chords.dt[chord] * d[:, 0] > 0
            clear_bit(pattern, edge_piece, bit[chord])
            set_bit(pattern, edge_piece[positive], bit[chord][positive])

        return Cut(Faces(arr.ptr, arr.vid, arr.lab, PackedPatterns(), parent), fill)

    def _chord_bits(self, pattern: np.ndarray, arr: Arrangement, area: np.ndarray,
                    n_chords: np.ndarray, chords: Pairs, bit: np.ndarray) -> None:
        """Set the bits of the chords of each piece's face where the piece is above them.

        Faces with few chords: each piece evaluates its face's chords at its vertex mean.
        Faces with many (the first site's single face has one per neuron: evaluating them
        all at every piece is pieces x chords work): one piece per face, the largest, is
        evaluated, and every other piece takes the row of a neighbour across a chord edge
        with that chord's bit flipped (with the bits of the chords coincident with it: they
        are drawn once). Neighbours across a chord's edge differ in exactly its side, so
        the rows are exact by construction; a piece the flood does not reach is evaluated.

        ``area`` (K,) is each piece's area (the arrangement's check computed it);
        ``n_chords`` counts the chords of each face of the arrangement (in its order);
        ``bit`` (C,) is each chord's bit in a row.
        """
        xy = self.vertices.xy
        mean = vertex_means(arr.ptr, arr.vid, xy)
        chord_start = np.concatenate([[0], np.cumsum(n_chords)]).astype(np.int64)
        parent = arr.face
        flooded = n_chords[parent] >= self.options.dense_chords
        if not flooded.any():
            self._evaluated_bits(pattern, np.arange(len(parent)), mean, parent, chord_start, chords, bit)
            return
        # the root of each flooded face: its largest piece
        by_area = np.lexsort((-area, parent))
        first = np.r_[True, parent[by_area][1:] != parent[by_area][:-1]]
        roots = by_area[first & flooded[by_area]]
        self._evaluated_bits(pattern, np.concatenate([np.flatnonzero(~flooded), roots]), mean,
                             parent, chord_start, chords, bit)
        # chord edges: the two pieces of each, and the group of coincident chords it flips
        slot = np.flatnonzero((arr.chord_of_edge >= 0) & flooded[ring_ids(arr.ptr)])
        u, v = arr.vid[slot], arr.vid[next_slot(arr.ptr)[slot]]
        span = int(arr.vid.max()) + 1
        key = np.minimum(u, v) * span + np.maximum(u, v)
        order = argsort_int(key)
        key, slot = key[order], slot[order]
        twin = np.flatnonzero((key[1:] == key[:-1])
                              & np.r_[True, key[1:-1] != key[:-2]] & np.r_[key[2:] != key[1:-1], True])
        piece = ring_ids(arr.ptr)
        a, b = piece[slot[twin]], piece[slot[twin + 1]]
        _, _, group = unique_first_inverse(arr.chord_start * span + arr.chord_end)
        members = np.argsort(group, kind="stable")
        group_ptr = np.zeros(int(group.max()) + 2, dtype=np.int64)
        np.cumsum(np.bincount(group), out=group_ptr[1:])
        g = group[arr.chord_of_edge[slot[twin]]]
        src, dst, via = np.r_[a, b], np.r_[b, a], np.r_[g, g]
        by_src = argsort_int(src)
        adj_ptr = np.zeros(len(parent) + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=len(parent)), out=adj_ptr[1:])
        reached = flood_flip_bits(pattern, roots, adj_ptr, dst[by_src], via[by_src], group_ptr,
                                  bit[members].astype(np.int64))
        missed = np.flatnonzero(~reached & flooded)
        if len(missed):  # not expected: evaluate them (slow but exact)
            pattern[missed] = 0
            self._evaluated_bits(pattern, missed, mean, parent, chord_start, chords, bit)

    def _evaluated_bits(self, pattern: np.ndarray, pieces: np.ndarray, mean: np.ndarray,
                        parent: np.ndarray, chord_start: np.ndarray, chords: Pairs,
                        bit: np.ndarray) -> None:
        """Set the chord bits of `pieces` where their face's chord is positive at their vertex
        mean (pieces x chords evaluations, in blocks of ~2^22)."""
        count = chord_start[parent[pieces] + 1] - chord_start[parent[pieces]]
        ends = np.cumsum(count)
        lo = 0
        while lo < len(pieces):
            hi = max(lo + 1, int(np.searchsorted(ends, (ends[lo] - count[lo]) + (1 << 22), "right")))
            block, c = pieces[lo:hi], count[lo:hi]
            piece = np.repeat(block, c)
            pair = np.repeat(chord_start[parent[block]] - np.cumsum(c) + c, c) + np.arange(int(c.sum()))
            above = chords.evaluate(pair, mean[piece]) > 0
            set_bit(pattern, piece[above], bit[pair[above]])
            lo = hi

    # ------------------------------------------------------------------ signs and vertices
    def signs(self, ptr: np.ndarray, vid: np.ndarray, pair_of_ring: np.ndarray, chords: Pairs,
              canonical: CanonicalValues) -> np.ndarray:
        """Sign of each slot's vertex for its ring's chord, by the vertex's kind.

        OLD vertices have canonical values; ON_EDGE ones are placed by their order along
        their edge relative to where the chord crosses it (so both faces of the edge agree);
        only INSIDE ones use the face's affine map.
        """
        xy = self.vertices.xy
        pair = pair_of_ring[ring_ids(ptr)]
        k = chords.neuron[pair]
        kind = self.vertices.kind[vid]
        sign = np.zeros(len(vid), dtype=np.int8)

        old = kind == VertexKind.OLD
        sign[old] = np.sign(canonical(vid[old], k[old]))

        on_edge = np.flatnonzero(kind == VertexKind.ON_EDGE)
        va, vb, vt = self.vertices.segments()
        # the snap distance as a fraction of each vertex's edge: per vertex of the store
        # when there are more entries than vertices (an arrangement of thousands of chords)
        reach_of = self.snap / np.maximum(np.hypot(*(xy[vb] - xy[va]).T), 1e-300) \
            if len(on_edge) > len(va) else None
        # in blocks: an arrangement's entries (chords x ring slots) run to 10^7, each with a
        # dozen float64 temporaries
        step = self.options.sign_batch
        for lo in range(0, len(on_edge), step):
            here = on_edge[lo : lo + step]
            v = vid[here]
            a, b, t = va[v], vb[v], vt[v]
            kk = k[here]
            za, zb = canonical(a, kk), canonical(b, kk)
            crosses = np.sign(za) * np.sign(zb) < 0
            with np.errstate(divide="ignore", invalid="ignore"):
                tk = np.where(crosses, za / np.where(crosses, za - zb, 1.0), 0.0)
            # a crossing within the snap distance shares the vertex (see crossings.py)
            reach = reach_of[v] if reach_of is not None \
                else self.snap / np.maximum(np.hypot(*(xy[b] - xy[a]).T), 1e-300)
            gap = t - tk
            gap[np.abs(gap) <= reach] = 0.0
            by_order = np.sign(gap) * np.sign(zb - za)
            fixed = np.where(za != 0, np.sign(za), np.sign(zb))
            sign[here] = np.where(crosses, by_order, fixed)

        inner = np.flatnonzero(kind == VertexKind.INSIDE)
        if len(inner):
            p = pair[inner]
            z = chords.evaluate(p, xy[vid[inner]])
            z[np.abs(z) <= chords.tolerance(p, self.snap)] = 0.0
            sign[inner] = np.sign(z)
        return sign

    def _interior_vertices(self, lo: np.ndarray, hi: np.ndarray, pair: np.ndarray,
                           chords: Pairs) -> np.ndarray:
        """Vertices where chords ``pair`` cross the segments (lo, hi) inside their faces."""
        xy = self.vertices.xy
        za = chords.evaluate(pair, xy[lo])
        zb = chords.evaluate(pair, xy[hi])
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.clip(za / (za - zb), 0.0, 1.0)
        t = np.nan_to_num(t, nan=0.5)
        points = xy[lo] + t[:, None] * (xy[hi] - xy[lo])
        return self.vertices.add(points, VertexKind.INSIDE, lo, hi, t)

