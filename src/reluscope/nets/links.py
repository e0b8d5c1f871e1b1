"""Links: the affine map from one site's activation to the next site's input.

In a chain (no skip connection around a site), site ``l``'s pre-activation is an affine
function of site ``l-1``'s activation, ``z_l = A_l a_{l-1} + b_l``, whatever the layers in
between (linear, conv, eval BatchNorm, average pooling, flatten, residual additions of
affine terms of ``a_{l-1}``). The engines use ``A_l`` three ways: to push values and maps
forward (``A a`` for many ``a``), and, in the 2D walk, one *column* ``A[:, k]`` per edge
crossed. A `Link` serves both without ever holding a large dense matrix:

* **dense** ``A`` (an MLP's weight, or any small link), used as a GEMM;
* **sparse** (a conv net): ``A``'s columns as CSC arrays for the walk, and the network's
  own operator (the layers between the two sites, by an injected forward pass) to apply
  it, which costs a convolution rather than a sparse product of the composed map (avg-pool
  then conv has 4x the non-zeros of the conv alone).

How a sparse link is found without probing every column: for spatial sites (shapes
``(..., H, W)``) the layers between them are assumed local, so input units of one channel
that lie ``P`` apart in each direction cannot reach the same output. One injected pass
per channel and residue class ``(y mod P_y, x mod P_x)`` then gives every column at once
(the output at ``(y', x')`` is owned by the one unit of the class inside its window of
``P`` units around ``(y', x')`` scaled to the input grid). The periods are estimated by
probing one unit per channel, and the assembled map is *certified*: it must reproduce
injected random activations to rounding, else the periods double (at worst every unit is
probed on its own). A wrong locality guess therefore costs time, never exactness.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reluscope._kernels.rings import gather_rings, offsets_of, ring_ids
from reluscope._kernels.sorting import argsort_int

#: ``after(activations (N, size_in)) -> (N, size_out)``: the layers between two sites.
Operator = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class SparseColumns:
    """A matrix's columns in CSC form (rows ascending within each column).

    Attributes
    ----------
    ptr : np.ndarray, shape (size_in + 1,), int64
    rows : np.ndarray, shape (nnz,), int64
    values : np.ndarray, shape (nnz,), float64
    size_out : int
    """

    ptr: np.ndarray
    rows: np.ndarray
    values: np.ndarray
    size_out: int

    @property
    def nnz(self) -> int:
        return len(self.rows)

    @classmethod
    def from_dense(cls, matrix: np.ndarray) -> SparseColumns:
        """CSC arrays of a dense (size_out, size_in) matrix (its non-zeros only)."""
        cols, rows = np.nonzero(matrix.T)  # column-major order: rows ascend within a column
        return cls(offsets_of(cols, matrix.shape[1]), rows.astype(np.int64),
                   matrix[rows, cols].astype(np.float64), matrix.shape[0])

    def dense_columns(self, ks: np.ndarray) -> np.ndarray:
        """(len(ks), size_out) float64: the columns `ks` written out."""
        out = np.zeros((len(ks), self.size_out))
        ptr, at = gather_rings(self.ptr, ks)  # a column is a ring of the CSC layout
        out[ring_ids(ptr), self.rows[at]] = self.values[at]
        return out

    def to_dense(self) -> np.ndarray:
        """(size_out, size_in) float64: the whole matrix."""
        out = np.zeros((self.size_out, len(self.ptr) - 1))
        out[self.rows, ring_ids(self.ptr)] = self.values
        return out


class Link:
    """The affine map ``z = A a + b`` from one site's activation to the next site's input.

    Parameters
    ----------
    bias : torch.Tensor, shape (size_out,)
    dense : torch.Tensor, shape (size_out, size_in), optional
        ``A`` itself (then `columns` and `operator` may be None).
    columns : SparseColumns, optional
        ``A``'s columns (a sparse link).
    operator : callable, optional
        ``operator(a (N, size_in)) -> A a + b`` (N, size_out): how a sparse link is applied.
    chunk_entries : int
        Largest ``N * max(size_in, size_out)`` one operator call gets (bounds its memory).
    """

    def __init__(self, bias: torch.Tensor, dense: torch.Tensor | None = None,
                 columns: SparseColumns | None = None, operator: Operator | None = None,
                 chunk_entries: int = 1 << 22) -> None:
        if dense is None and (columns is None or operator is None):
            raise ValueError("a sparse link needs its columns and its operator")
        self.bias, self.dense, self._columns, self.operator = bias, dense, columns, operator
        self.size_out = int(bias.shape[0])
        self.size_in = int(dense.shape[1]) if dense is not None else len(columns.ptr) - 1  # type: ignore[union-attr]
        self.chunk_entries = chunk_entries

    @property
    def sparse(self) -> bool:
        """Is ``A`` held by its columns (and applied by the network's operator)?"""
        return self.dense is None

    @property
    def columns(self) -> SparseColumns:
        """``A``'s columns in CSC form (computed once from the dense matrix if needed)."""
        if self._columns is None:
            assert self.dense is not None
            self._columns = SparseColumns.from_dense(self.dense.cpu().numpy())
        return self._columns

    def apply(self, activation: torch.Tensor) -> torch.Tensor:
        """``A a + b`` for each row of `activation` (N, size_in): (N, size_out)."""
        if self.dense is not None:
            return torch.addmm(self.bias, activation, self.dense.T)
        assert self.operator is not None
        step = max(1, self.chunk_entries // max(self.size_in, self.size_out))
        if activation.shape[0] <= step:
            return self.operator(activation)
        return torch.cat([self.operator(activation[lo : lo + step])
                          for lo in range(0, activation.shape[0], step)])

    def linear(self, activation: torch.Tensor) -> torch.Tensor:
        """``A a`` without the bias (N, size_out): how slopes propagate."""
        if self.dense is not None:
            return activation @ self.dense.T
        return self.apply(activation) - self.bias

    def linear_from_first(self, rows: torch.Tensor, most: float) -> torch.Tensor | None:
        """``A a`` of row blocks that differ from their first row in few inputs, or None.

        Each block's product is its first row's plus the differences through the columns
        of ``A`` at the inputs where any row differs from its block's first (a GEMM of that
        width only). The maps of a max-pool's output on a batch of faces are such rows:
        gathered candidates, the same on most faces (LeNet's first pool on its 3/10 square:
        7% of its 864 outputs differ within a batch of 303 faces, at most 21%).

        Parameters
        ----------
        rows : (B, N, size_in) float64
        most : float
            Largest fraction of the inputs that may differ; more: None (the plain product
            is cheaper).

        Returns
        -------
        (B, N, size_out) float64, equal to ``rows @ A.T`` up to rounding, or None.
        """
        first = rows[:, :1]
        changed = torch.nonzero((rows != first).any(dim=1).any(dim=0))[:, 0]
        if len(changed) > most * self.size_in:
            return None
        blocks, n = rows.shape[0], rows.shape[1]
        out = self.linear(first[:, 0]).reshape(blocks, 1, self.size_out).repeat(1, n, 1)
        if len(changed):
            delta = (rows[:, :, changed] - first[:, :, changed]).reshape(blocks * n, -1)
            columns = self.dense_columns(changed.cpu().numpy())  # (U, size_out)
            out.view(blocks * n, -1).addmm_(delta, columns)
        return out

    def rebound(self, operator: Operator) -> Link:
        """The same map applied by another network's operator (a remembered link)."""
        return Link(self.bias, self.dense, self._columns, None if self.dense is not None else operator,
                    self.chunk_entries)

    def agrees(self, probes: torch.Tensor, expected: torch.Tensor, tolerance: float) -> bool:
        """Does ``A p + b`` equal `expected` at every row of `probes` within `tolerance`?"""
        return bool(float((self.from_matrix(probes) - expected).abs().max()) <= tolerance)

    def from_matrix(self, probes: torch.Tensor) -> torch.Tensor:
        """``A p + b`` (N, size_out) from the held matrix (dense or columns), not the operator."""
        if self.dense is not None:
            return probes @ self.dense.T + self.bias
        return torch.from_numpy(sparse_product(self.columns, probes.cpu().numpy())).to(self.bias.device) \
            + self.bias

    def dense_columns(self, ks: np.ndarray) -> torch.Tensor:
        """(len(ks), size_out): the columns ``A[:, ks]`` transposed."""
        if self.dense is not None:
            return self.dense[:, torch.from_numpy(ks).to(self.dense.device)].T
        return torch.from_numpy(self.columns.dense_columns(ks)).to(self.bias.device)


def _unit_windows(size_in: int, size_out: int, period: int) -> np.ndarray:
    """(size_out,) first input index of each output's window of `period` units.

    Output ``y'`` sits at ``(y' + 0.5) * size_in / size_out - 0.5`` on the input grid (the
    centre of the input cells it covers); its window is the `period` units centred there.
    """
    centre = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    lo = np.floor(centre - (period - 1) / 2 + 0.5).astype(np.int64)
    # windows stay on the grid (a row's support does): a full period then covers it all
    return np.clip(lo, 0, max(size_in - period, 0))


def _periods_from_probe(spread_rows: np.ndarray, spread_cols: np.ndarray, at: tuple[int, int],
                        shape_in: tuple[int, int], shape_out: tuple[int, int]) -> tuple[int, int]:
    """Smallest periods whose windows around every reached output hold the probed unit."""
    periods = []
    for reached, unit, n_in, n_out in ((spread_rows, at[0], shape_in[0], shape_out[0]),
                                       (spread_cols, at[1], shape_in[1], shape_out[1])):
        period = 1
        reached = np.unique(reached)
        while period < n_in:
            lo = _unit_windows(n_in, n_out, period)[reached]
            if np.all((lo <= unit) & (unit < lo + period)):
                break
            period += 1
        periods.append(period)
    return periods[0], periods[1]


def colored_columns(operator: Operator, bias: torch.Tensor, shape_in: tuple[int, ...],
                    shape_out: tuple[int, ...], periods: tuple[int, int]) -> SparseColumns:
    """A local map's columns from one injected pass per channel and residue class.

    Parameters
    ----------
    operator : callable
        ``operator(a (N, size_in)) -> (N, size_out)``.
    bias : torch.Tensor, shape (size_out,)
        ``operator(0)``.
    shape_in, shape_out : tuple of int
        ``(..., H, W)`` shapes of one sample (leading axes are channels).
    periods : (P_y, P_x)

    Returns
    -------
    SparseColumns
        Exact if no output's row reaches beyond its window (the caller certifies it).
    """
    h_in, w_in = shape_in[-2:]
    h_out, w_out = shape_out[-2:]
    channels = int(np.prod(shape_in[:-2]))
    py, px = min(periods[0], h_in), min(periods[1], w_in)
    size_out = int(np.prod(shape_out))
    # every output's owner row/column within a residue class: lo + ((r - lo) mod P)
    lo_y, lo_x = _unit_windows(h_in, h_out, py), _unit_windows(w_in, w_out, px)
    out_y = np.arange(size_out) // w_out % h_out
    out_x = np.arange(size_out) % w_out
    # group g: channel c, residues (ry, rx); groups run channel-major
    n_groups = channels * py * px
    g_chan, g_ry, g_rx = np.arange(n_groups) // (py * px), np.arange(n_groups) // px % py, \
        np.arange(n_groups) % px
    size_in = channels * h_in * w_in
    step = max(1, (1 << 22) // max(size_out, size_in))
    rows_parts, cols_parts, vals_parts = [], [], []
    ys, xs = np.arange(h_in), np.arange(w_in)
    for start in range(0, n_groups, step):
        g = np.arange(start, min(start + step, n_groups))
        inject = np.zeros((len(g), channels, h_in, w_in))
        hit = (ys[None, :, None] % py == g_ry[g, None, None]) \
            & (xs[None, None, :] % px == g_rx[g, None, None])
        inject[np.arange(len(g)), g_chan[g]] = hit
        z = (operator(torch.from_numpy(inject.reshape(len(g), -1)).to(bias.device)) - bias).cpu().numpy()
        g_idx, i_idx = np.nonzero(z)
        vals = z[g_idx, i_idx]
        g_idx += start
        ly, lx = lo_y[out_y[i_idx]], lo_x[out_x[i_idx]]
        y = ly + (g_ry[g_idx] - ly) % py
        x = lx + (g_rx[g_idx] - lx) % px
        inside = (y >= 0) & (y < h_in) & (x >= 0) & (x < w_in)  # else: the guess is wrong
        rows_parts.append(i_idx[inside])
        cols_parts.append(((g_chan[g_idx] * h_in + y) * w_in + x)[inside])
        vals_parts.append(vals[inside])
    rows = np.concatenate(rows_parts).astype(np.int64)
    cols = np.concatenate(cols_parts).astype(np.int64)
    vals = np.concatenate(vals_parts)
    order = argsort_int(cols * size_out + rows)
    return SparseColumns(offsets_of(cols, size_in), rows[order], vals[order], size_out)


def reproduces(columns: SparseColumns, bias: torch.Tensor, probes: torch.Tensor, expected: torch.Tensor,
               tolerance: float) -> bool:
    """Does ``A probes + b`` from `columns` equal `expected` (the operator's) within `tolerance`?"""
    got = sparse_product(columns, probes.cpu().numpy()) + bias.cpu().numpy()
    return bool(np.abs(got - expected.cpu().numpy()).max() <= tolerance)


def sparse_product(columns: SparseColumns, probes: np.ndarray) -> np.ndarray:
    """``A p`` (N, size_out) for each row of `probes` (N, size_in), from `columns`."""
    from scipy.sparse import csc_matrix

    size_in = len(columns.ptr) - 1
    matrix = csc_matrix((columns.values, columns.rows, columns.ptr), shape=(columns.size_out, size_in))
    return np.asarray((matrix @ probes.T).T)


def local_link(operator: Operator, bias: torch.Tensor, shape_in: tuple[int, ...],
               shape_out: tuple[int, ...], probes: torch.Tensor, expected: torch.Tensor,
               tolerance: float) -> SparseColumns | None:
    """Certified sparse columns of a spatially local map, or None if it is not local.

    One unit per channel at the grid's centre is probed first; its reach gives the first
    periods, doubled until the assembled map reproduces `expected` (the operator at the
    random activations `probes`, with `tolerance`).
    """
    h_in, w_in = shape_in[-2:]
    h_out, w_out = shape_out[-2:]
    channels = int(np.prod(shape_in[:-2]))
    at = (h_in // 2, w_in // 2)
    centre = torch.zeros(channels, channels, h_in, w_in, dtype=torch.float64)
    centre[torch.arange(channels), torch.arange(channels), at[0], at[1]] = 1.0
    z = (operator(centre.reshape(channels, -1).to(bias.device)) - bias).cpu().numpy()
    reached = np.flatnonzero(np.any(z != 0, axis=0))
    if len(reached) == 0:
        periods = (1, 1)
    else:
        periods = _periods_from_probe(reached // w_out % h_out, reached % w_out, at, (h_in, w_in),
                                      (h_out, w_out))
    while True:
        columns = colored_columns(operator, bias, shape_in, shape_out, periods)
        if reproduces(columns, bias, probes, expected, tolerance):
            return columns
        if periods[0] >= h_in and periods[1] >= w_in:
            return None  # every unit had its own pass and it still disagrees: not a link
        periods = (min(2 * periods[0], h_in), min(2 * periods[1], w_in))


def state_key(tensors: Iterable[torch.Tensor], *context: Any) -> str:
    """A digest of a model's float64 state and of `context` (shapes, options): the links of
    two instrumented copies with the same key are the same maps."""
    # SHA-256: hardware-accelerated on current CPUs, twice blake2b's speed on a conv net's state
    digest = hashlib.sha256(repr(context).encode())
    for tensor in tensors:
        digest.update(repr((tuple(tensor.shape), str(tensor.dtype))).encode())
        # the array's own buffer (no copy: a conv net's state is ~13 MB in float64)
        digest.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).data)
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class RememberedLink:
    """A remembered link and its own value ``A p + b`` (from its matrix) at a fixed random
    activation ``p``: a new copy's operator is checked there before the link is reused."""

    link: Link
    probe: torch.Tensor  # (1, size_in)
    expected: torch.Tensor  # (1, size_out)


class LinkMemo:
    """Links remembered per model (weakly: they go with the model) for its latest state.

    Building a conv net's links costs seconds, and every plane of one checkpoint (a new
    instrumented copy each) needs the same ones. A remembered link is used only after the
    new copy's own operator reproduces the link's matrix at a random activation, at
    several inputs (so a model changed in any way the key misses is rebuilt, never
    trusted); the matrix's value there is computed once, when the link is remembered.
    """

    def __init__(self) -> None:
        self._by_model: weakref.WeakKeyDictionary[Any, tuple[str, dict[Hashable, RememberedLink]]] = \
            weakref.WeakKeyDictionary()

    def get(self, model: Any, key: str, site: Hashable) -> RememberedLink | None:
        entry = self._by_model.get(model)
        if entry is None or entry[0] != key:
            return None
        return entry[1].get(site)

    def put(self, model: Any, key: str, site: Hashable, link: Link) -> None:
        entry = self._by_model.get(model)
        if entry is None or entry[0] != key:  # a new state: forget the old one's links
            entry = (key, {})
            self._by_model[model] = entry
        gen = torch.Generator().manual_seed(1)  # other activations than the build's
        probe = torch.rand(1, link.size_in, generator=gen, dtype=torch.float64).to(link.bias.device)
        entry[1][site] = RememberedLink(link, probe, link.from_matrix(probe))


#: The process's remembered links (see LinkMemo).
LINKS = LinkMemo()
