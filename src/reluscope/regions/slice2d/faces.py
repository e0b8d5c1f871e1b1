"""Faces of the current partition (CSR rings) and the pools pieces are cut into."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reluscope._kernels.bits import concat_rows
from reluscope._kernels.growable import Growable
from reluscope._kernels.sorting import argsort_int


class Patterns:
    """Bit-packed activation patterns of the sites cut so far, stored by reference.

    The pieces cut from one face share that face's patterns of the earlier sites, so each
    site keeps its rows once and every face points at its row: cutting a site copies one
    index per face and site, not the (faces, ceil(size / 8)) blocks (1.5 kB per face for
    a 12,544-neuron conv layer).

    Parameters
    ----------
    rows : list of (U_s, ceil(size_s / 8)) uint8
        The distinct rows of site ``s``.
    owner : list of (F,) int64 or None
        Row of each face for site ``s``; None when face ``f`` has row ``f``.
    """

    def __init__(self, rows: list[np.ndarray] | None = None,
                 owner: list[np.ndarray | None] | None = None) -> None:
        self.rows = list(rows or [])
        self.owner = list(owner) if owner is not None else [None] * len(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def owners(self, site: int) -> np.ndarray:
        """(F,) int64 row of each face for `site`."""
        owner = self.owner[site]
        return np.arange(len(self.rows[site]), dtype=np.int64) if owner is None else owner

    def of(self, site: int, faces: np.ndarray | None = None) -> np.ndarray:
        """(len(faces), ceil(size / 8)) uint8 patterns of `site` on `faces` (all if None)."""
        owner = self.owner[site]
        if faces is None:
            return self.rows[site] if owner is None else self.rows[site][owner]
        return self.rows[site][faces if owner is None else owner[faces]]

    def inherit(self, parent: np.ndarray, new: list[np.ndarray]) -> Patterns:
        """Patterns of faces cut from faces `parent` (F',), plus the new site's own rows `new`."""
        owner: list[np.ndarray | None] = [parent if o is None else o[parent] for o in self.owner]
        return Patterns(self.rows + new, owner + [None] * len(new))

    def dense(self) -> list[np.ndarray]:
        """One (F, ceil(size / 8)) array per site."""
        return [self.of(s) for s in range(len(self))]


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
    patterns : Patterns
        Bit-packed activation pattern of each site cut so far (the pieces a site is cut
        into hold only that site's until they inherit the earlier sites', see the engine).
    parent : (F,) int64 or None
        Face of the previous partition each face lies in (None before the first site).
    """

    ptr: np.ndarray
    vid: np.ndarray
    lab: np.ndarray
    patterns: Patterns = field(default_factory=Patterns)
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

    def gather(self, start: np.ndarray, length: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR (ptr, vid, lab) of the rings at (start, length)."""
        ptr = np.zeros(len(start) + 1, dtype=np.int64)
        np.cumsum(length, out=ptr[1:])
        slots = np.repeat(start - ptr[:-1], length) + np.arange(int(ptr[-1]), dtype=np.int64)
        return ptr, self.vid.view()[slots], self.lab.view()[slots]


def merge_faces(first: Faces, second: Faces) -> Faces:
    """Both sets of faces in one, sorted by parent (siblings contiguous for the next site)."""
    assert first.parent is not None and second.parent is not None
    parents = np.concatenate([first.parent, second.parent])
    order = argsort_int(parents)
    lengths = np.concatenate([np.diff(first.ptr), np.diff(second.ptr)])[order]
    starts = np.concatenate([first.ptr[:-1], len(first.vid) + second.ptr[:-1]])[order]
    ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    take = np.repeat(starts - ptr[:-1], lengths) + np.arange(int(ptr[-1]))
    vid = np.concatenate([first.vid, second.vid])[take]
    lab = np.concatenate([first.lab, second.lab])[take]
    patterns = [concat_rows(first.patterns.of(s), second.patterns.of(s), order)
                for s in range(len(first.patterns))]
    return Faces(ptr, vid, lab, Patterns(patterns), parents[order])
