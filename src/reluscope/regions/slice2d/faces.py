"""Faces of the current partition (CSR rings) and the pools pieces are cut into."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from reluscope._kernels.growable import Growable
from reluscope._kernels.rings import copy_rings
from reluscope._kernels.sorting import argsort_int
from reluscope.regions.patterns import PackedPatterns


@dataclass
class Faces:
    """Current faces: CSR rings, edge labels and packed activation patterns per site.

    Attributes
    ----------
    ptr : (F + 1,) int64
        Ring offsets into `vid` and `lab`.
    vid : (sum of ring lengths,) int64
        Vertex ids, counter-clockwise.
    lab : (sum of ring lengths,) int64
        Label of the edge leaving each slot: ``label_offset[site] + neuron`` for an edge
        one neuron created, ``-1 - side`` for the domain's sides.
    patterns : PackedPatterns
        Bit-packed activation pattern of each site cut so far (the pieces a site is cut
        into hold only that site's until they inherit the earlier sites', see the engine).
    parent : (F,) int64 or None
        Face of the previous partition each face lies in (None before the first site).
    """

    ptr: np.ndarray
    vid: np.ndarray
    lab: np.ndarray
    patterns: PackedPatterns = field(default_factory=PackedPatterns)
    parent: np.ndarray | None = None

    @property
    def count(self) -> int:
        return len(self.ptr) - 1


class RingPool:
    """Append-only storage of rings; a ring is addressed by (start, length)."""

    def __init__(self) -> None:
        self.vid = Growable(None, np.int64)
        self.lab = Growable(None, np.int64)

    def add(self, ptr: np.ndarray, vid: np.ndarray, lab: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
        """Store CSR rings; return their (start, length) arrays."""
        first = self.vid.size
        self.vid.extend(vid)
        self.lab.extend(lab)
        return first + ptr[:-1], np.diff(ptr)

    @property
    def size(self) -> int:
        """Slots stored (the dropped rings' included, until :meth:`compact`)."""
        return self.vid.size

    def compact(self, starts: Sequence[np.ndarray], lengths: Sequence[np.ndarray]
                ) -> list[np.ndarray]:
        """Keep only the rings at (``starts[i]``, ``lengths[i]``): every ring still addressed
        (a cut piece's ring is dead once its halves are added). Returns their new starts,
        in the same groups."""
        ptr, vid, lab = self.gather(np.concatenate(starts), np.concatenate(lengths))
        self.vid = Growable(None, np.int64, capacity=max(1024, len(vid)))
        self.lab = Growable(None, np.int64, capacity=max(1024, len(vid)))
        self.vid.extend(vid)
        self.lab.extend(lab)
        del vid, lab
        bounds = np.cumsum([0, *(len(group) for group in starts)])
        return [ptr[a:b] for a, b in itertools.pairwise(bounds)]

    def gather(self, start: np.ndarray, length: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR (ptr, vid, lab) of the rings at (start, length)."""
        return gather_sources([self.source(start, length)])

    def source(self, start: np.ndarray, length: np.ndarray) -> RingSource:
        """The rings at (start, length), as a source of :func:`gather_sources` (valid until
        the next :meth:`add`)."""
        return self.vid.view(), self.lab.view(), start, length


#: Rings of one source: (vid, lab) slot arrays and each ring's (start, length) in them.
RingSource = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def gather_sources(sources: Sequence[RingSource], order: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (ptr, vid, lab) of the rings of `sources`, taken in turn; ring r of the result is
    ring ``order[r]`` of them (None: in turn). Copied ring by ring in place: neither the
    sources concatenated nor a slot-length index is held beside the result (the peak of a
    large site's cut)."""
    lengths = np.concatenate([source[3] for source in sources])
    if order is not None:
        lengths = lengths[order]
    ptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    del lengths
    at = np.arange(len(ptr) - 1, dtype=np.int64)  # output ring of each source ring
    if order is not None:
        at[order] = at.copy()
    vid = np.empty(int(ptr[-1]), dtype=sources[0][0].dtype)
    lab = np.empty(int(ptr[-1]), dtype=sources[0][1].dtype)
    first = 0
    for src_vid, src_lab, start, _ in sources:
        rings = at[first : first + len(start)]
        copy_rings(vid, ptr, rings, src_vid, start)
        copy_rings(lab, ptr, rings, src_lab, start)
        first += len(start)
    return ptr, vid, lab


def merge_faces(parts: Sequence[Faces], rows: np.ndarray) -> Faces:
    """Several sets of faces in one, sorted by parent (siblings contiguous for the next site).

    `rows` holds the pattern rows of this site (one site: the pieces' own) of the first
    set's faces, then the second's, and so on: they stay where they are and the faces point
    at them."""
    assert all(part.parent is not None for part in parts)
    parents = np.concatenate([part.parent for part in parts])
    order = argsort_int(parents)
    ptr, vid, lab = gather_sources([(part.vid, part.lab, part.ptr[:-1], np.diff(part.ptr))
                                    for part in parts], order)
    return Faces(ptr, vid, lab, PackedPatterns([rows], [order]), parents[order])
