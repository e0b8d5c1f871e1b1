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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from reluscope._kernels.bits import POPCOUNT, bit_at, differing_bits, xor_popcount
from reluscope._validation import message
from reluscope.errors import InputValueError


class PackedPatterns(Sequence[np.ndarray]):
    """Per-site bit-packed patterns (``numpy.packbits`` layout), rows shared by reference.

    Parameters
    ----------
    rows : sequence of (U_s, ceil(size_s / 8)) uint8
        The rows of site ``s``.
    owner : sequence of (F,) int64 or None, optional
        Row of each face for site ``s``; None (or no `owner` at all) when face ``f`` has
        row ``f``.
    """

    def __init__(self, rows: Sequence[np.ndarray] = (),
                 owner: Sequence[np.ndarray | None] | None = None) -> None:
        self.rows: list[np.ndarray] = list(rows)
        self.owner: list[np.ndarray | None] = \
            list(owner) if owner is not None else [None] * len(self.rows)
        if len(self.owner) != len(self.rows):
            raise InputValueError(message(
                "`owner` of PackedPatterns", f"one entry (array or None) per site: {len(self.rows)}",
                f"{len(self.owner)} entries", "Pass None for a site whose faces have their own rows."))

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
        if faces is None:
            owner = self.owner[site]
            return self.rows[site] if owner is None else self.rows[site][owner]
        return self.rows[site][self.rows_of(site, faces)]

    def take(self, faces: np.ndarray) -> PackedPatterns:
        """The patterns of `faces` (F',) only; rows stay shared."""
        return PackedPatterns(self.rows, [faces if o is None else o[faces] for o in self.owner])

    def inherit(self, parent: np.ndarray, new: PackedPatterns) -> PackedPatterns:
        """Patterns of faces cut from faces `parent` (F',), followed by the sites of `new`
        (the pieces' own, one per piece)."""
        taken = self.take(parent)
        return PackedPatterns(taken.rows + new.rows, taken.owner + new.owner)

    def popcounts(self, site: int) -> np.ndarray:
        """(F,) int64 active neurons of `site` on each face."""
        per_row = POPCOUNT[self.rows[site]].sum(axis=1, dtype=np.int64)
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
        return bit_at(self.rows[site], self.rows_of(site, faces), neuron)

    def differing(self, sizes: list[int], left: np.ndarray, right: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every neuron that differs between faces ``left[i]`` and ``right[i]``: (pair, site,
        neuron), as :func:`reluscope._kernels.bits.differing_bits`."""
        parts = []
        for site, size in enumerate(sizes):
            pair, _, neuron = differing_bits([self.rows[site]], [size], self.rows_of(site, left),
                                             self.rows_of(site, right))
            parts.append((pair, np.full(len(pair), site, dtype=np.int64), neuron))
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        pair, site_of, neuron = (np.concatenate([p[i] for p in parts]) for i in range(3))
        return pair, site_of, neuron
