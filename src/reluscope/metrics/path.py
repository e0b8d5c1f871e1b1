"""Per-path measures on a `Partition1D` (Gamba et al., AISTATS 2022).

All are exact: the network's output is affine on each piece, so integrals over a piece
have closed forms. Lengths are Euclidean lengths in input space.
"""

from __future__ import annotations

import numpy as np

from reluscope._validation import describe, message
from reluscope.errors import InputTypeError
from reluscope.regions.partition1d import Partition1D


def _per_path(part: Partition1D, values: np.ndarray) -> np.ndarray:
    """Sum piece values (n, ...) over each path -> (n_paths, ...).

    A path's pieces are contiguous, so this is one segmented reduction (``np.add.at`` is
    ~10x slower on the (n, outputs) arrays of a wide network).
    """
    offsets = part.path_offsets
    if len(values) == 0:
        return np.zeros((part.n_paths, *values.shape[1:]))
    out = np.add.reduceat(values, np.minimum(offsets[:-1], len(values) - 1), axis=0).astype(np.float64)
    out[offsets[:-1] == offsets[1:]] = 0.0  # a path without pieces (reduceat would copy a row)
    return out


def integral_abs_affine(e0: np.ndarray, e1: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Exact ``int_0^L |e0 + (e1 - e0) s / L| ds``, elementwise.

    Same signs: ``L (|e0| + |e1|) / 2``. Opposite signs: the integrand has a zero inside,
    and the two triangles give ``L (e0^2 + e1^2) / (2 (|e0| + |e1|))``. (Integrating
    ``|e0| + |(e1 - e0) s / L|`` instead, as one published implementation does,
    overestimates.)
    """
    a, b = np.abs(e0), np.abs(e1)
    same = (e0 * e1) >= 0
    denom = np.where(same, 1.0, a + b)
    split = (e0 * e0 + e1 * e1) / (2.0 * denom)
    return length * np.where(same, (a + b) / 2.0, split)


def region_lengths(part: Partition1D) -> np.ndarray:
    """(n_regions_total,) length of each region traversal, in path order (the traversals of
    ``Partition1D.piece_regions``)."""
    return np.bincount(part.piece_regions(), weights=part.lengths())


def path_metrics(part: Partition1D) -> dict[str, np.ndarray]:
    """Measures of each path of a batch.

    Returns
    -------
    dict
        Per path (n_paths,): ``length``, ``n_pieces``, ``n_regions`` (region traversals),
        ``n_boundaries`` (region boundaries crossed), ``boundary_density`` (boundaries per
        unit length), ``region_length_mean`` / ``_median`` / ``_min`` (over the path's
        traversals); per path and output (n_paths, n_out): ``total_variation``
        ``sum |f(end) - f(start)|`` over pieces, ``abs_deviation``
        ``int |f(s) - g(s)| ds`` with ``g`` the affine interpolation of f between the
        path's two ends (a constant on a closed path), and ``mean_abs_deviation`` (that
        integral divided by the length).
    """
    if not isinstance(part, Partition1D):
        raise InputTypeError(message("`part` of path_metrics", "a Partition1D", describe(part),
                                     "Compute one with reluscope.path_regions."))
    n = part.n_pieces
    length = part.path_lengths
    counts = part.region_counts()
    boundaries = _per_path(part, (part.boundary_site >= 0).astype(np.float64))
    s0, s1 = part.arc()
    f0, f1 = part.output_start, part.output_end
    offsets = part.path_offsets
    path = part.piece_path
    first, last = offsets[:-1], offsets[1:] - 1
    f_start, f_end = f0[first], f1[last]
    closed = np.array([p.closed for p in part.paths])
    f_end = np.where(closed[:, None], f_start, f_end)
    # affine interpolation in arc length between the path's ends
    slope = (f_end - f_start) / length[:, None]
    g0 = f_start[path] + s0[:, None] * slope[path]
    g1 = f_start[path] + s1[:, None] * slope[path]
    dev = integral_abs_affine(f0 - g0, f1 - g1, (s1 - s0)[:, None]) if n else np.zeros((0, f0.shape[1]))
    deviation = _per_path(part, dev)
    regions = region_lengths(part)
    region_path = np.repeat(np.arange(part.n_paths), counts)
    reg_mean = np.bincount(region_path, weights=regions, minlength=part.n_paths) / np.maximum(counts, 1)
    order = np.lexsort((regions, region_path))  # by path, then by length
    ranked = regions[order]
    lo = np.concatenate([[0], np.cumsum(counts)[:-1]])
    reg_median = 0.5 * (ranked[lo + (counts - 1) // 2] + ranked[lo + counts // 2])
    reg_min = ranked[lo]
    return {
        "length": length, "n_pieces": np.diff(offsets), "n_regions": counts,
        "n_boundaries": boundaries, "boundary_density": boundaries / length,
        "region_length_mean": reg_mean, "region_length_median": reg_median,
        "region_length_min": reg_min,
        "total_variation": _per_path(part, np.abs(f1 - f0)),
        "abs_deviation": deviation,
        "mean_abs_deviation": deviation / length[:, None],
    }


def path_summary(part: Partition1D, prefix: str = "path_") -> dict[str, float]:
    """Means over the paths of a batch, as flat scalars (outputs averaged too)."""
    metrics = path_metrics(part)
    out: dict[str, float] = {f"{prefix}count": float(part.n_paths)}
    for key, values in metrics.items():
        out[f"{prefix}{key}"] = float(np.mean(values))
    return out
