"""The exact 1D engine: linear regions of a network along paths (Gamba et al., 2022).

Algorithm (one pass per ReLU site, in forward order, all segments of a batch at once)
-----------------------------------------------------------------------------------
Every segment ``x(t) = a + t (b - a)``, ``t`` in [0, 1], starts as one piece between its
two end breakpoints. On a piece, the patterns of the sites already processed are
constant, so each pre-activation of the next site is affine in ``t`` there, and its
values at the piece's two ends determine it. Those values at every breakpoint come from

* a plain forward pass at the breakpoints (any architecture: the network is continuous,
  so its value at a breakpoint does not depend on which side's pattern is used);
* or, when the site's input is an affine function of the previous site's activation
  (a *link*), from the previous site's values by one GEMM over all breakpoints.

A neuron whose values at the two ends of a piece have strictly opposite signs crosses
zero inside it, at ``t0 + (t1 - t0) z(t0) / (z(t0) - z(t1))``. All crossings split their
pieces at once; every pre-activation of the site at a new breakpoint is the linear
interpolation of the piece's end values (exact: they are affine there), and the
switching neurons are set to exactly zero. Patterns are the signs at the midpoints.
After the last site the model's output is evaluated at the breakpoints the same way; it
is affine on each piece.

Tolerances
----------
Crossings within ``SNAP_RTOL`` (in the segment parameter, i.e. relative to the segment's
length) of a piece's end, or of each other, are merged into one breakpoint where
several neurons switch. Regions far narrower than 1e-6 of a path are therefore found;
only those thinner than 1e-10 of their segment are merged into a neighbour.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reluscope._kernels.bits import pack
from reluscope._validation import check_int, describe, message
from reluscope.errors import InputTypeError, InputValueError, TooManyRegionsError
from reluscope.geometry.path import Path
from reluscope.nets.links import Link
from reluscope.nets.sites import InstrumentedModel, model_device
from reluscope.regions.merge import merge_pool_pieces
from reluscope.regions.partition1d import Partition1D

#: Crossings closer than this (segment parameter) to a piece's end or to each other merge.
SNAP_RTOL = 1e-10
#: A max-pool stage's value within this fraction of the largest pre-activation seen so far
#: is a tie (exactly 0: the earlier candidate wins), as in the 2D engine's ``tie_rtol``:
#: candidates equal on a whole piece (zeros after a ReLU) give a stage that is 0 there,
#: which rounding at a breakpoint on another neuron's zero must not make active.
TIE_RTOL = 1e-10
#: Most segments handled together.
BATCH_SEGMENTS = 256
#: Entries (breakpoints x widest site) one batch of segments may hold: the batch shrinks to
#: fit, from the pieces per segment seen so far (a conv net's sites are 10^4 wide and its
#: segments hold thousands of pieces each).
BATCH_ENTRIES = 1 << 26
#: Entries of the largest temporary (pieces x neurons) of a generic masked pass.
CHUNK_ENTRIES = 1 << 24
#: Later unlinked sites whose values one plain pass keeps, in units of the widest site's
#: width (a max-pool's stages, and the site after them, have no link from their predecessor).
AHEAD_WIDTH = 2


def _as_paths(paths: Any) -> tuple[Path, ...]:
    if isinstance(paths, Path):
        return (paths,)
    if isinstance(paths, Sequence) and paths and all(isinstance(p, Path) for p in paths):
        shapes = {p.input_shape for p in paths}
        if len(shapes) > 1:
            raise InputValueError(message("`paths` of path_regions", "paths through inputs of one shape",
                                          f"input shapes {sorted(shapes)}",
                                          "Analyse paths of different input shapes separately."))
        return tuple(paths)
    raise InputTypeError(message("`paths` of path_regions", "a reluscope.Path or a non-empty list of them",
                                 describe(paths), "Build paths with Path.segment(a, b) or "
                                 "Path.polyline(points, closed=...)."))


class _SegmentRefiner:
    """Refines the breakpoints of a batch of segments site by site (private; inputs validated).

    State: the breakpoints ``(seg, t)`` sorted by segment then ``t`` (each segment's ends
    included); piece ``i`` runs from breakpoint ``i`` to ``i + 1`` when both are on the same
    segment. ``self.masks[m]`` is site m's pattern on each piece, bit-packed (a piece's
    patterns are copied to its sub-pieces at every later site: 1 bit per neuron, not 1 byte).
    """

    def __init__(self, net: InstrumentedModel, starts: torch.Tensor, directions: torch.Tensor,
                 budget: int) -> None:
        self.net = net
        self.starts = starts
        self.directions = directions
        self.budget = budget
        n = starts.shape[0]
        dev = net.device
        self.seg = torch.arange(n, device=dev).repeat_interleave(2)
        self.t = torch.tensor([0.0, 1.0], dtype=torch.float64, device=dev).repeat(n)
        # what switches at each breakpoint (-1: a segment's end)
        self.bsite = torch.full((2 * n,), -1, dtype=torch.int64, device=dev)
        self.bneuron = torch.full((2 * n,), -1, dtype=torch.int64, device=dev)
        self.bcount = torch.zeros(2 * n, dtype=torch.int64, device=dev)
        self.masks: list[np.ndarray] = []
        #: The masks bit-packed (filled by the caller once the batch is done).
        self.packed: list[np.ndarray] = []
        #: Index of the breakpoint that starts each piece, (n_pieces,); kept in step with `seg`.
        self.piece_start = torch.arange(0, 2 * n, 2, device=dev)

    def run(self) -> _SegmentRefiner:
        """Split by every site, then compute the outputs at the breakpoints; returns self."""
        values: torch.Tensor | None = None  # previous site's pre-activations at the breakpoints
        sites = self.net.sites
        # values of later sites without a link, from the pass that gave an earlier one's (at
        # the current breakpoints; a split adds only its new breakpoints' rows)
        ahead: dict[int, torch.Tensor] = {}
        scale = 0.0  # largest |pre-activation| at the breakpoints so far (for ties)
        pools = any(site.pool_stage for site in sites)  # ties are a max-pool's only
        for site in sites:
            k = site.index
            link = self.net.link(k) if k > 0 else None
            if link is not None and values is not None:
                values = _through(values, sites[k - 1].negative_slope, link)
            elif k in ahead:
                values = ahead.pop(k)
            else:
                found = self._plain_sites(k, self._unlinked_after(k))
                values, ahead = found[0], dict(zip(range(k + 1, k + len(found)), found[1:], strict=True))
            if pools and values.numel():
                scale = max(scale, float(values.abs().max()))
            if site.pool_stage:
                values = values.masked_fill(values.abs() <= TIE_RTOL * scale, 0.0)
            values, positive = self._split(values, k)
            if ahead:
                ahead = self._extend(ahead)
            self.masks.append(pack(self._midpoint_signs(values, positive).cpu().numpy()))
        link = self.net.link(len(sites))
        if link is not None and values is not None:
            self.outputs = _through(values, sites[-1].negative_slope, link)
        else:
            self.outputs = self._forward_rows(self.seg, self.t, None)[0]
        return self

    def _midpoint_signs(self, values: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
        """(n_pieces, size) bool: is each neuron positive at each piece's midpoint?
        (`positive` is ``values > 0``.)"""
        start = self.piece_start
        mask = (positive[1:] | positive[:-1])[start]  # a piece's ends are consecutive rows
        # the ends disagree only where one is zero or a crossing was snapped to an end:
        # decide those few entries by the midpoint value
        rows, cols = torch.nonzero((positive[1:] ^ positive[:-1])[start], as_tuple=True)
        mid = values[start[rows], cols] + values[start[rows] + 1, cols]
        mask[rows, cols] = mid > 0
        return mask

    def _plain_sites(self, first: int, last: int) -> list[torch.Tensor]:
        """Pre-activations of sites ``first..last`` at every breakpoint, from one pass."""
        return self._forward_rows(self.seg, self.t, (first, last))

    def _forward_rows(self, seg: torch.Tensor, t: torch.Tensor, sites: tuple[int, int] | None
                      ) -> list[torch.Tensor]:
        """Plain passes at the points ``(seg, t)``: the pre-activations of sites
        ``sites[0]..sites[1]`` (None: the output), (n, size) each.

        A plain forward pass is exact at any point, breakpoints included: the network is
        continuous, so which side's pattern applies there does not matter.
        """
        total = sum(s.size for s in self.net.sites) + 1
        step = max(1, CHUNK_ENTRIES // total)
        shape = (-1,) + (1,) * (self.starts.dim() - 1)
        stop = None if sites is None else sites[1]
        wanted = [None] if sites is None else list(range(sites[0], sites[1] + 1))
        parts: list[list[torch.Tensor]] = [[] for _ in wanted]
        for lo in range(0, t.shape[0], step):
            s, tt = seg[lo: lo + step], t[lo: lo + step]
            ran = self.net.forward(self.starts[s] + tt.reshape(shape) * self.directions[s], stop_after=stop)
            self.net.check_sites(ran.sites, stop)
            for out, site in zip(parts, wanted, strict=True):
                if site is None:
                    out.append(ran.output[0] if ran.output is not None  # tuple/dict output: none
                               else torch.zeros(len(tt), 0, dtype=torch.float64, device=tt.device))
                else:
                    out.append(ran.records[site][0])
        width = [0 if w is None else self.net.sites[w].size for w in wanted]
        return [torch.cat(p) if p else torch.zeros(0, n, dtype=torch.float64, device=t.device)
                for p, n in zip(parts, width, strict=True)]

    def _unlinked_after(self, k: int) -> int:
        """The last site of the run of sites after `k` that have no link from their
        predecessor (their values come from plain passes too), their widths summing to at
        most ``AHEAD_WIDTH`` times the widest site's (the batch of segments is sized for
        that one: the rows kept are of the same order)."""
        sites = self.net.sites
        budget = AHEAD_WIDTH * max(s.size for s in sites)
        last, width = k, 0
        while last + 1 < len(sites) and self.net.link(last + 1) is None:
            width += sites[last + 1].size
            if width > budget:
                break
            last += 1
        return last

    def _extend(self, ahead: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        """Values kept for later sites, at the breakpoints after a split: the old rows in
        their new places, the new breakpoints' from one plain pass."""
        place, n_old = self._place, self._n_old
        fresh_rows = place[n_old:]
        first, last = min(ahead), max(ahead)
        fresh = self._forward_rows(self.seg[fresh_rows], self.t[fresh_rows], (first, last)) \
            if fresh_rows.numel() else None
        out = {}
        for i, site in enumerate(range(first, last + 1)):
            old = ahead[site]
            rows = old.new_empty((place.numel(), old.shape[1]))
            rows[place[:n_old]] = old
            if fresh is not None:
                rows[fresh_rows] = fresh[i]
            out[site] = rows
        return out

    def _split(self, values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Insert the zero crossings of site k's neurons; returns its values at the new
        breakpoints, (n_bp, size), and which of them are positive."""
        start = self.piece_start
        t0, t1 = self.t[start], self.t[start + 1]
        positive = values > 0
        # strictly opposite signs (an exact zero at an end gives tc == t0 or t1: dropped below);
        # a piece's ends are consecutive breakpoints, so compare neighbouring rows once
        flips = positive[1:] ^ positive[:-1]
        rows, cols = torch.nonzero(flips[start], as_tuple=True)
        zl, zh = values[start[rows], cols], values[start[rows] + 1, cols]
        tc = t0[rows] + (t1[rows] - t0[rows]) * (zl / (zl - zh))
        keep = (tc - t0[rows] > SNAP_RTOL) & (t1[rows] - tc > SNAP_RTOL)
        rows, cols, tc = rows[keep], cols[keep], tc[keep]
        order = torch.argsort(tc, stable=True)  # sort by (piece, t)
        order = order[torch.argsort(rows[order], stable=True)]
        rows, cols, tc = rows[order], cols[order], tc[order]
        new_group = torch.ones_like(rows, dtype=torch.bool)
        if rows.numel() > 1:
            new_group[1:] = (rows[1:] != rows[:-1]) | (tc[1:] - tc[:-1] > SNAP_RTOL)
        group = torch.cumsum(new_group.to(torch.int64), 0) - 1
        first = torch.nonzero(new_group, as_tuple=True)[0]
        g_piece, g_t, g_neuron = rows[first], tc[first], cols[first]
        g_count = torch.bincount(group, minlength=first.numel())
        n_bp, n_new = self.t.shape[0], first.numel()
        if start.numel() + n_new > self.budget:
            site = self.net.sites[k]
            raise TooManyRegionsError(message(
                "the pieces of path_regions", f"at most max_regions={self.budget:,} in all",
                f"more than that while splitting by site {k} (`{site.name}`, {site.size:,} "
                "neurons)", "Pass fewer or shorter paths per call, or a larger max_regions."))
        # new breakpoints go after their piece's start breakpoint, in order of t
        bp_start = start[g_piece]
        key = torch.cat([torch.arange(n_bp, device=self.t.device, dtype=torch.float64),
                         bp_start.to(torch.float64) + 0.5])
        order = torch.argsort(key, stable=True)
        lam = ((g_t - t0[g_piece]) / (t1[g_piece] - t0[g_piece]))[:, None]
        # the rows in their new order, written once (a concatenation then a gather copies twice)
        place = torch.empty_like(order)
        place[order] = torch.arange(order.numel(), device=order.device)
        self._place, self._n_old = place, n_bp  # where each old / new breakpoint went
        merged = values.new_empty((n_bp + n_new, values.shape[1]))
        merged[place[:n_bp]] = values
        new_values = torch.lerp(values[bp_start], values[bp_start + 1], lam)  # affine on the piece
        new_values[group, cols] = 0.0  # the switching neurons are exactly zero there
        merged[place[n_bp:]] = new_values
        signs = positive.new_empty(merged.shape)  # `merged > 0` without a pass over all of it
        signs[place[:n_bp]] = positive
        signs[place[n_bp:]] = new_values > 0
        self.seg = torch.cat([self.seg, self.seg[bp_start]])[order]
        self.t = torch.cat([self.t, g_t])[order]
        self.bsite = torch.cat([self.bsite, torch.full_like(g_piece, k)])[order]
        self.bneuron = torch.cat([self.bneuron, g_neuron])[order]
        self.bcount = torch.cat([self.bcount, g_count])[order]
        self.piece_start = torch.nonzero(self.seg[1:] == self.seg[:-1], as_tuple=True)[0]
        # each old piece becomes 1 + (its new breakpoints) pieces with the same earlier patterns
        parent = torch.repeat_interleave(torch.arange(start.numel(), device=self.t.device),
                                         1 + torch.bincount(g_piece, minlength=start.numel()))
        parent_rows = parent.cpu().numpy()
        self.masks = [m[parent_rows] for m in self.masks]
        return merged, signs


def _through(values: torch.Tensor, negative_slope: float, link: Link) -> torch.Tensor:
    """Next site's (or the output's) pre-activations from this site's, by the link: (n, size_next).

    `values` is overwritten by the activations (the caller is done with it: one pass over
    the largest array of the walk instead of a copy)."""
    act = torch.relu_(values) if negative_slope == 0.0 else F.leaky_relu_(values, negative_slope)
    return link.apply(act)


def path_regions(model: nn.Module, paths: Path | Sequence[Path], *,
                 max_regions: int = 10_000_000) -> Partition1D:
    """Exact linear regions of `model` along one or many paths.

    Parameters
    ----------
    model : nn.Module
        Any piecewise-linear network (ReLU and the units of :mod:`reluscope.nets.recorder`,
        max-pooling included; MLPs, CNNs, BatchNorm in eval mode, residual additions), in
        eval mode.
    paths : Path or sequence of Path
        Segments, polylines or closed polylines, all through inputs of the model's
        input shape; processed as one batch.
    max_regions : int
        Stop with :class:`~reluscope.TooManyRegionsError` beyond this many pieces.

    Returns
    -------
    Partition1D
        Pieces of every path with their activation patterns and the model's output as
        an affine function on each piece.

    Examples
    --------
    >>> import torch, reluscope as rs
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> part = rs.path_regions(net, rs.Path.segment(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0])))
    >>> int(part.region_counts()[0]) >= 1
    True
    """
    clock = time.perf_counter()
    batch = _as_paths(paths)
    check_int(max_regions, "`max_regions` of path_regions", example="max_regions=10_000_000")
    device = model_device(model, batch[0].points.device) if isinstance(model, nn.Module) else "cpu"
    starts = torch.cat([p.starts for p in batch]).to(device)
    directions = torch.cat([p.directions for p in batch]).to(device)
    net = InstrumentedModel(model, torch.stack([starts[0], starts[0] + directions[0]]), "path_regions")
    results = []
    used = 0
    widest = max(s.size for s in net.sites)
    per_segment = 2.0  # breakpoints per segment, learnt from the batches done
    lo = 0
    while lo < starts.shape[0]:
        size = int(min(BATCH_SEGMENTS, max(1, BATCH_ENTRIES // (widest * per_segment))))
        if lo == 0 and widest * BATCH_SEGMENTS * 64 > BATCH_ENTRIES:
            size = min(size, 4)  # a wide net: learn its pieces per segment on a few first
        walker = _SegmentRefiner(net, starts[lo: lo + size], directions[lo: lo + size],
                                 int(max_regions) - used).run()
        walker.seg += lo
        pieces = int(walker.piece_start.shape[0])
        used += pieces
        per_segment = max(per_segment, 1.5 * (pieces + size) / size)
        walker.packed, walker.masks = walker.masks, []  # 1 bit per neuron
        results.append(walker)
        lo += size

    def cat(key: str, at: str) -> np.ndarray:
        """A breakpoint array, at each piece's start (at="start") or end ("end")."""
        parts = []
        for r in results:
            index = r.piece_start + (1 if at == "end" else 0)
            parts.append(getattr(r, key)[index])
        return torch.cat(parts).cpu().numpy()

    patterns = tuple(np.concatenate([r.packed[m] for r in results]) for m in range(len(net.sites)))
    seg = cat("seg", "start")
    piece_offsets = np.concatenate([[0], np.cumsum(np.bincount(seg, minlength=starts.shape[0]))])
    boundary_site = cat("bsite", "start")
    part = Partition1D(
        paths=batch, sites=tuple(net.sites),
        piece_offsets=piece_offsets.astype(np.int64), t0=cat("t", "start"), t1=cat("t", "end"),
        boundary_site=boundary_site, boundary_neuron=cat("bneuron", "start"),
        boundary_count=cat("bcount", "start"), patterns=patterns,
        output_start=cat("outputs", "start"), output_end=cat("outputs", "end"),
        snap_rtol=SNAP_RTOL)
    part = merge_pool_pieces(part)  # a max-pool's stages over-cut (reluscope.regions.pools)
    part.timings["total"] = round(time.perf_counter() - clock, 4)
    return part
