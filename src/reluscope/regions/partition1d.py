"""`Partition1D`: exact linear regions along a batch of paths, as flat arrays.

Layout (pieces of all paths, in path order, then segment order, then along the segment):

* ``piece_offsets (S+1,)``: pieces of segment ``s`` are ``piece_offsets[s]:piece_offsets[s+1]``
  (segments are numbered over all paths; ``segment_offsets`` maps paths to segments);
* ``t0, t1 (n,)``: the piece in the segment's parameter, ``x(t) = start + t * direction``;
* ``boundary_site, boundary_neuron, boundary_count (n,)``: at the piece's start, the site
  and (first) neuron that switch, and how many neurons of that site switch there;
  ``-1`` where the piece starts a segment;
* ``patterns``: one ``(n, ceil(size/8))`` uint8 array per site, bit-packed like
  ``numpy.packbits`` (bit set = neuron active, pre-activation > 0);
* ``output_start, output_end (n, n_out)``: the model's output at the piece's two ends
  (it is affine in between).

Arc length is Euclidean length in input space, measured from the path's start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import numpy as np
import torch

from reluscope._kernels.bits import differing_bits, unpack
from reluscope._kernels.rings import offsets_of
from reluscope.geometry.path import Path
from reluscope.nets.sites import Site
from reluscope.regions._npz import (
    patterns_from_arrays,
    patterns_to_arrays,
    read_npz,
    sites_from_meta,
    sites_meta,
    write_npz,
)
from reluscope.regions.pools import keep_pool_switches

_FORMAT = "reluscope.Partition1D"
_FORMAT_VERSION = 2  # 2: pattern rows may be column subsets (1: always full)


@dataclass(frozen=True, eq=False)
class Partition1D:
    """Exact pieces of constant activation pattern along a batch of paths.

    See the module docstring for the layout. Build one with :func:`reluscope.path_regions`.
    """

    paths: tuple[Path, ...]
    sites: tuple[Site, ...]
    piece_offsets: np.ndarray
    t0: np.ndarray
    t1: np.ndarray
    boundary_site: np.ndarray
    boundary_neuron: np.ndarray
    boundary_count: np.ndarray
    patterns: tuple[np.ndarray, ...]
    output_start: np.ndarray
    output_end: np.ndarray
    snap_rtol: float = 0.0
    #: Seconds spent (diagnostics; not saved).
    timings: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ sizes
    @property
    def n_paths(self) -> int:
        """Number of paths."""
        return len(self.paths)

    @property
    def n_pieces(self) -> int:
        """Number of pieces over all paths (a piece never spans a path's corner)."""
        return int(self.t0.shape[0])

    @property
    def segment_offsets(self) -> np.ndarray:
        """(n_paths+1,) segments of path ``p`` are ``segment_offsets[p]:segment_offsets[p+1]``."""
        return np.concatenate([[0], np.cumsum([p.n_segments for p in self.paths])]).astype(np.int64)

    @property
    def segment_lengths(self) -> np.ndarray:
        """(S,) Euclidean length of each segment."""
        return np.concatenate([p.segment_lengths.cpu().numpy() for p in self.paths])

    @property
    def path_offsets(self) -> np.ndarray:
        """(n_paths+1,) pieces of path ``p`` are ``path_offsets[p]:path_offsets[p+1]``."""
        return self.piece_offsets[self.segment_offsets]

    @property
    def piece_segment(self) -> np.ndarray:
        """(n,) global segment index of each piece."""
        return np.repeat(np.arange(len(self.piece_offsets) - 1), np.diff(self.piece_offsets))

    @property
    def piece_path(self) -> np.ndarray:
        """(n,) path index of each piece."""
        return np.repeat(np.arange(self.n_paths), np.diff(self.path_offsets))

    @property
    def path_lengths(self) -> np.ndarray:
        """(n_paths,) total Euclidean length of each path."""
        return np.array([p.length for p in self.paths])

    # ------------------------------------------------------------------ geometry
    def arc(self) -> tuple[np.ndarray, np.ndarray]:
        """Arc-length positions (from the path's start) of each piece's two ends, (n,) each."""
        lengths = self.segment_lengths
        offsets = self.segment_offsets
        before = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])  # over all segments
        path_of_segment = np.repeat(np.arange(self.n_paths), np.diff(offsets))
        seg_start = before - before[offsets[:-1]][path_of_segment]  # from each path's start
        seg = self.piece_segment
        return seg_start[seg] + self.t0 * lengths[seg], seg_start[seg] + self.t1 * lengths[seg]

    def lengths(self) -> np.ndarray:
        """(n,) Euclidean length of each piece."""
        return (self.t1 - self.t0) * self.segment_lengths[self.piece_segment]

    def active(self, site: int) -> np.ndarray:
        """(n, size) bool activation pattern of one site on every piece."""
        return unpack(self.patterns[site], self.sites[site].size)

    def boundary_switches(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every neuron that switches at each piece's start: a ragged list, CSR by piece.

        ``boundary_site``/``boundary_neuron`` name the first neuron and ``boundary_count``
        how many of that site switch; neurons of several sites can switch at one point
        (coincident neurons). They are read from the two pieces' patterns, which are exact.

        Returns
        -------
        ptr : np.ndarray, shape (n + 1,), int64
            Piece ``i``'s switches are entries ``ptr[i]:ptr[i + 1]`` (none where the piece
            starts a segment).
        site, neuron : np.ndarray, shape (ptr[-1],), int64
            Sorted by site, then neuron, within each piece.
        """
        inner = np.flatnonzero(self.boundary_site >= 0)
        pair, site, neuron = differing_bits(self.patterns, [s.size for s in self.sites], inner, inner - 1)
        real = keep_pool_switches(self.sites, pair, site, neuron)  # one per max-pool window
        pair, site, neuron = pair[real], site[real], neuron[real]
        rows = inner[pair]
        order = np.lexsort((neuron, site, rows))
        return offsets_of(rows, self.n_pieces), site[order], neuron[order]

    def same_pattern_as_next(self) -> np.ndarray:
        """(n,) bool: piece i has the same full pattern as piece i+1 (False for the last)."""
        same = np.ones(max(self.n_pieces - 1, 0), dtype=bool)
        for packed in self.patterns:
            same &= (packed[1:] == packed[:-1]).all(axis=1)
        return np.concatenate([same, [False]])

    def piece_regions(self) -> np.ndarray:
        """(n,) index of the region traversal each piece belongs to (dense, in path order).

        Pieces are merged across a path's corners when the pattern does not change there
        (and, on a closed path, across the joint of its last and first piece). A region
        left and entered again is a new traversal.
        """
        n = self.n_pieces
        offsets = self.path_offsets
        corner = np.zeros(n, dtype=bool)
        corner[:-1] = self.boundary_site[1:] < 0  # the next piece starts a segment
        last = offsets[1:] - 1
        corner[last[last >= 0]] = False  # the path's end is not a corner
        starts = np.ones(n, dtype=bool)
        starts[1:] = ~(self.same_pattern_as_next() & corner)[:-1]
        region = np.cumsum(starts) - 1
        # a closed loop whose last and first pieces share a pattern: one traversal
        closed = np.array([p.closed for p in self.paths]) & (np.diff(offsets) > 1)
        first_piece, last_piece = offsets[:-1][closed], last[closed]
        wrap = region[first_piece] != region[last_piece]
        for packed in self.patterns:
            wrap &= (packed[first_piece] == packed[last_piece]).all(axis=1)
        remap = np.arange(n)
        remap[region[last_piece[wrap]]] = region[first_piece[wrap]]
        return np.unique(remap[region], return_inverse=True)[1].reshape(-1)

    def region_counts(self) -> np.ndarray:
        """(n_paths,) linear regions traversed along each path (see :meth:`piece_regions`)."""
        region = self.piece_regions()
        per_region_path = np.zeros(int(region.max(initial=-1)) + 1, dtype=np.int64)
        per_region_path[region] = self.piece_path
        return np.bincount(per_region_path, minlength=self.n_paths)

    def to_frame(self, per_output: bool = False) -> Any:
        """Each path's exact measures as a pandas DataFrame, one row per path (or per path
        and output with `per_output`); see :func:`reluscope.metrics.tables.path_table`."""
        from reluscope.metrics.tables import path_table  # metrics sit above regions: import late

        return path_table(self, per_output)

    # ------------------------------------------------------------------ io
    def save(self, path: str | os.PathLike[str]) -> FilePath:
        """Write the partition (and its paths) to a compressed ``.npz`` file, atomically."""
        meta = {"format": _FORMAT, "version": _FORMAT_VERSION, "sites": sites_meta(self.sites),
                "closed": [p.closed for p in self.paths],
                "n_points": [int(p.points.shape[0]) for p in self.paths],
                "snap_rtol": self.snap_rtol}
        arrays = {
            "points": torch.cat([p.points for p in self.paths]).cpu().numpy(),
            "piece_offsets": self.piece_offsets, "t0": self.t0, "t1": self.t1,
            "boundary_site": self.boundary_site, "boundary_neuron": self.boundary_neuron,
            "boundary_count": self.boundary_count, "output_start": self.output_start,
            "output_end": self.output_end,
        }
        return write_npz(path, meta, patterns_to_arrays(self.patterns, arrays))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Partition1D:
        """Read a partition written by :meth:`save`."""
        meta, arrays = read_npz(path, _FORMAT, "Partition1D.load", _FORMAT_VERSION)
        sites = sites_from_meta(meta["sites"])
        points = torch.from_numpy(arrays["points"])
        bounds = np.concatenate([[0], np.cumsum(meta["n_points"])])
        paths = tuple(Path(points[a:b], bool(c))
                      for a, b, c in zip(bounds[:-1], bounds[1:], meta["closed"], strict=True))
        return cls(paths, sites, arrays["piece_offsets"], arrays["t0"], arrays["t1"],
                   arrays["boundary_site"], arrays["boundary_neuron"], arrays["boundary_count"],
                   patterns_from_arrays(arrays, len(sites)),
                   arrays["output_start"], arrays["output_end"], float(meta["snap_rtol"]))

    def __repr__(self) -> str:
        return (f"Partition1D(n_paths={self.n_paths}, n_pieces={self.n_pieces}, "
                f"sites={[s.name for s in self.sites]})")
