"""Bit-packed activation patterns of a partition's regions, stored by reference.

The regions cut from one face share that face's patterns of the earlier sites, so each
site keeps its distinct rows once and every region points at its row. A SmallCNN region
would otherwise carry 2.4 kB of patterns (12,544 + 6,272 + 256 neurons) where an MLP's
carries 96 B; by reference it carries one index per site, and a site's rows are as many as
the faces of the partition that site cut (far fewer than the final regions for the early,
wide sites).

Reading ``patterns[s]`` gives the dense ``(F, ceil(size / 8))`` array of site ``s``, so a
:class:`PackedPatterns` reads like the tuple of arrays it replaces; the methods below work
on the shared rows without forming it.

A site's rows may also store only some of its neurons (a :class:`ColumnSubset`): on a
slice of a conv net most neurons have the same sign on the whole domain (on a SmallCNN
square around three MNIST images, 1,106 of the first site's 12,544 and 642 of the second
site's 6,272 vary), so a row keeps the bits of the neurons that vary and one reference row
holds the others. Every method below reads either form; ``patterns[s]`` and :meth:`of`
give full rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from reluscope._kernels.bits import (
    POPCOUNT,
    bit_at,
    differing_bits,
    expand_columns,
    gather_columns,
    varying_columns,
    xor_popcount,
)
from reluscope._validation import message
from reluscope.errors import InputValueError


@dataclass(frozen=True, eq=False)
class ColumnSubset:
    """The neurons a site's stored rows hold; every other neuron has one value on all faces.

    Attributes
    ----------
    columns : (C,) int64
        Sorted neurons kept: bit ``j`` of a stored row is neuron ``columns[j]``.
    reference : (ceil(size / 8),) uint8
        Full packed row with the value of every other neuron (and zero at `columns`).
    """

    columns: np.ndarray
    reference: np.ndarray

    @classmethod
    def of(cls, rows: np.ndarray, size: int, also: np.ndarray) -> ColumnSubset:
        """The neurons that vary over `rows` (R, ceil(size / 8)), plus `also` (a site's
        chords, which the rows do not hold yet); needs R >= 1."""
        columns = varying_columns(rows, size, also)
        stored = np.zeros(8 * rows.shape[1], dtype=bool)
        stored[columns] = True
        return cls(columns, rows[0] & ~np.packbits(stored))

    @property
    def width(self) -> int:
        """Bytes per stored row."""
        return (len(self.columns) + 7) // 8

    @cached_property
    def position(self) -> np.ndarray:
        """(8 * len(reference),) int64: bit of each neuron in a stored row (-1: not stored)."""
        out = np.full(8 * len(self.reference), -1, dtype=np.int64)
        out[self.columns] = np.arange(len(self.columns))
        return out

    @cached_property
    def reference_count(self) -> int:
        """Active neurons of the reference row (none of `columns`)."""
        return int(POPCOUNT[self.reference].sum())

    def gather(self, full: np.ndarray) -> np.ndarray:
        """(R, width) stored form of full rows `full` (R, ceil(size / 8))."""
        return gather_columns(np.ascontiguousarray(full), self.columns)

    def expand(self, stored: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(len(rows), ceil(size / 8)) full rows of stored rows ``stored[rows]``."""
        return expand_columns(np.ascontiguousarray(stored), np.asarray(rows, dtype=np.int64),
                              self.columns, self.reference)


def plain_gate_map(width: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(columns (size,), position (8 * width,), reference (width,)) of full rows of `width`
    bytes: every neuron stored at its own bit (the form :meth:`PackedPatterns.gates` gives)."""
    identity = np.arange(8 * width, dtype=np.int64)
    return identity[:size], identity, np.zeros(width, np.uint8)


class PackedPatterns(Sequence[np.ndarray]):
    """Per-site bit-packed patterns (``numpy.packbits`` layout), rows shared by reference.

    Parameters
    ----------
    rows : sequence of (U_s, ceil(size_s / 8)) uint8
        The rows of site ``s``.
        (stored rows: ``(U_s, subset.width)`` where the site has a column subset).
    owner : sequence of (F,) int64 or None, optional
        Row of each face for site ``s``; None (or no `owner` at all) when face ``f`` has
        row ``f``.
    subset : sequence of ColumnSubset or None, optional
        The neurons each site's rows store; None (or no `subset`) for full rows.
    """

    def __init__(self, rows: Sequence[np.ndarray] = (),
                 owner: Sequence[np.ndarray | None] | None = None,
                 subset: Sequence[ColumnSubset | None] | None = None) -> None:
        self.rows: list[np.ndarray] = list(rows)
        self.owner: list[np.ndarray | None] = \
            list(owner) if owner is not None else [None] * len(self.rows)
        self.subset: list[ColumnSubset | None] = \
            list(subset) if subset is not None else [None] * len(self.rows)
        for name, entries in (("owner", self.owner), ("subset", self.subset)):
            if len(entries) != len(self.rows):
                raise InputValueError(message(
                    f"`{name}` of PackedPatterns", f"one entry (or None) per site: {len(self.rows)}",
                    f"{len(entries)} entries", "Pass None for a site with plain rows."))
        for site, (stored, columns) in enumerate(zip(self.rows, self.subset, strict=True)):
            # a stored row of the wrong width would be read at the wrong bits
            if columns is not None and (stored.ndim != 2 or stored.shape[1] != columns.width):
                raise InputValueError(message(
                    f"rows of site {site} of PackedPatterns",
                    f"(rows, {columns.width}) bytes: the {len(columns.columns)} neurons its "
                    "ColumnSubset stores", f"shape {stored.shape}",
                    "Gather full rows with subset.gather(rows), or pass None as its subset."))

    @classmethod
    def wrap(cls, patterns: Sequence[np.ndarray]) -> PackedPatterns:
        """`patterns` itself if it is one, else dense per-site arrays wrapped (no copy)."""
        return patterns if isinstance(patterns, PackedPatterns) else cls(list(patterns))

    # ------------------------------------------------------------------ sequence
    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, site):  # type: ignore[no-untyped-def]
        if isinstance(site, slice):
            return [self.of(s) for s in range(len(self))[site]]
        index = int(site) + len(self) if int(site) < 0 else int(site)
        if not 0 <= index < len(self):
            raise IndexError(f"site {site} of patterns for {len(self)} sites")
        return self.of(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.of(s) for s in range(len(self)))

    # ------------------------------------------------------------------ by reference
    def owners(self, site: int) -> np.ndarray:
        """(F,) int64 row of each face for `site`."""
        owner = self.owner[site]
        return np.arange(len(self.rows[site]), dtype=np.int64) if owner is None else owner

    def rows_of(self, site: int, faces: np.ndarray) -> np.ndarray:
        """(len(faces),) int64 row of `site` of each of `faces` (no index built when faces
        have their own rows)."""
        owner = self.owner[site]
        return faces if owner is None else owner[faces]

    def of(self, site: int, faces: np.ndarray | None = None) -> np.ndarray:
        """(len(faces), ceil(size / 8)) uint8 patterns of `site` on `faces` (all if None)."""
        subset = self.subset[site]
        if subset is not None:
            rows = self.owners(site) if faces is None else self.rows_of(site, faces)
            return subset.expand(self.rows[site], rows)
        if faces is None:
            owner = self.owner[site]
            return self.rows[site] if owner is None else self.rows[site][owner]
        return self.rows[site][self.rows_of(site, faces)]

    def distinct(self, site: int) -> np.ndarray:
        """(U, ceil(size / 8)) uint8: the full form of each stored row of `site`."""
        subset = self.subset[site]
        rows = self.rows[site]
        return rows if subset is None else subset.expand(rows, np.arange(len(rows)))

    def gates(self, site: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """What a compiled reader of single bits takes: (stored rows, columns (C,),
        position (>= size,), reference (W,)); bit ``k`` of row ``r`` is
        ``rows[r]`` bit ``position[k]`` where that is >= 0, else bit ``k`` of `reference`
        (plain rows: every neuron is stored at its own position)."""
        subset = self.subset[site]
        if subset is not None:
            return self.rows[site], subset.columns, subset.position, subset.reference
        return (self.rows[site], *plain_gate_map(self.rows[site].shape[1], size))

    @property
    def nbytes(self) -> int:
        """Bytes held: stored rows, face-to-row indices and column subsets."""
        total = sum(r.nbytes for r in self.rows) + sum(o.nbytes for o in self.owner if o is not None)
        return total + sum(c.columns.nbytes + c.reference.nbytes for c in self.subset if c is not None)

    def take(self, faces: np.ndarray) -> PackedPatterns:
        """The patterns of `faces` (F',) only; rows stay shared."""
        return PackedPatterns(self.rows, [faces if o is None else o[faces] for o in self.owner],
                              self.subset)

    def inherit(self, parent: np.ndarray, new: PackedPatterns) -> PackedPatterns:
        """Patterns of faces cut from faces `parent` (F',), followed by the sites of `new`
        (the pieces' own, one per piece)."""
        taken = self.take(parent)
        return PackedPatterns(taken.rows + new.rows, taken.owner + new.owner,
                              taken.subset + new.subset)

    def popcounts(self, site: int) -> np.ndarray:
        """(F,) int64 active neurons of `site` on each face."""
        per_row = POPCOUNT[self.rows[site]].sum(axis=1, dtype=np.int64)
        subset = self.subset[site]
        if subset is not None:
            per_row += subset.reference_count
        owner = self.owner[site]
        return per_row if owner is None else per_row[owner]

    def flips(self, site: int, f: np.ndarray, g: np.ndarray) -> np.ndarray:
        """(E,) int64 neurons of `site` that differ between faces ``f[i]`` and ``g[i]``."""
        rf, rg = self.rows_of(site, f), self.rows_of(site, g)
        out = np.zeros(len(f), dtype=np.int64)
        differ = np.flatnonzero(rf != rg)  # faces cut from one face share its row
        out[differ] = xor_popcount(self.rows[site], rf[differ], rg[differ])
        return out

    def bits(self, site: int, faces: np.ndarray, neuron: np.ndarray) -> np.ndarray:
        """(K,) bool: is neuron ``neuron[i]`` of `site` active on face ``faces[i]``?"""
        subset = self.subset[site]
        if subset is None:
            return bit_at(self.rows[site], self.rows_of(site, faces), neuron)
        neuron = np.asarray(neuron, dtype=np.int64)
        position = subset.position[neuron]
        out = bit_at(subset.reference[None], np.zeros(len(neuron), dtype=np.int64), neuron)
        kept = np.flatnonzero(position >= 0)
        out[kept] = bit_at(self.rows[site], self.rows_of(site, np.asarray(faces)[kept]), position[kept])
        return out

    def differing(self, sizes: list[int], left: np.ndarray, right: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every neuron that differs between faces ``left[i]`` and ``right[i]``: (pair, site,
        neuron), as :func:`reluscope._kernels.bits.differing_bits`."""
        parts = []
        for site, size in enumerate(sizes):
            subset = self.subset[site]
            stored = size if subset is None else len(subset.columns)
            pair, _, neuron = differing_bits([self.rows[site]], [stored], self.rows_of(site, left),
                                             self.rows_of(site, right))
            if subset is not None:  # the other neurons are equal on every face
                neuron = subset.columns[neuron]
            parts.append((pair, np.full(len(pair), site, dtype=np.int64), neuron))
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        pair, site_of, neuron = (np.concatenate([p[i] for p in parts]) for i in range(3))
        return pair, site_of, neuron
