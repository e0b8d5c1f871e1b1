"""Per-region geometry of a `Partition2D`: segment reductions over the flat ring arrays.

All functions are vectorised over regions (``np.add.reduceat`` over the CSR rings);
lengths and areas are in plane units. The measures follow Humayun et al. (SplineCam,
CVPR 2023) and Muthivhi & van Zyl (2026), who track the number, size, shape
(eccentricity) and boundaries of the regions of a 2D slice through data.
"""

from __future__ import annotations

import numpy as np

from reluscope._kernels.rings import next_slot, ring_ids
from reluscope._kernels.sorting import distinct_rows
from reluscope._validation import message
from reluscope.errors import InputValueError
from reluscope.regions.partition2d import Partition2D


def _ring_terms(part: Partition2D) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each ring edge's endpoints relative to its ring's first vertex, and the cross term.

    Returns x_i, y_i, x_{i+1}, y_{i+1}, cross_i = x_i y_{i+1} - x_{i+1} y_i, each (nnz,).
    Measuring from the first vertex keeps far-from-origin small regions accurate.
    """
    ptr, vid, xy = part.face_offsets, part.face_vertices, part.vertices
    ref = xy[vid[ptr[:-1]]][ring_ids(ptr)]
    a = xy[vid] - ref
    b = xy[vid[next_slot(ptr)]] - ref
    cross = a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1]
    return a[:, 0], a[:, 1], b[:, 0], b[:, 1], cross


def _per_ring(part: Partition2D, values: np.ndarray) -> np.ndarray:
    return np.add.reduceat(values, part.face_offsets[:-1]) if len(values) else np.zeros(0)


def vertex_counts(part: Partition2D) -> np.ndarray:
    """(F,) number of vertices (= number of edges) of each region's polygon."""
    return np.diff(part.face_offsets)


def perimeters(part: Partition2D) -> np.ndarray:
    """(F,) perimeter of each region, domain boundary included."""
    x0, y0, x1, y1, _ = _ring_terms(part)
    return _per_ring(part, np.hypot(x1 - x0, y1 - y0))


def second_moments(part: Partition2D) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Area, centroid and covariance of the uniform distribution on each region.

    Green's theorem on each ring edge (vertices ``(x_i, y_i)``, ``c_i`` the cross term):
    ``A = sum c_i / 2``, ``A cx = sum (x_i + x_{i+1}) c_i / 6``,
    ``int x^2 = sum (x_i^2 + x_i x_{i+1} + x_{i+1}^2) c_i / 12``,
    ``int xy = sum (2 x_i y_i + x_i y_{i+1} + x_{i+1} y_i + 2 x_{i+1} y_{i+1}) c_i / 24``.

    Returns
    -------
    area : (F,)
    centroid : (F, 2) plane coordinates
    covariance : (F, 2, 2)  (the inertia tensor divided by the area)
    eigenvalues : (F, 2) of the covariance, ascending
    """
    return _second_moments(part, _ring_terms(part))


def _second_moments(part: Partition2D, terms: tuple[np.ndarray, ...]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x0, y0, x1, y1, c = terms
    area = _per_ring(part, c) / 2.0
    cx = _per_ring(part, (x0 + x1) * c) / (6.0 * area)
    cy = _per_ring(part, (y0 + y1) * c) / (6.0 * area)
    sxx = _per_ring(part, (x0 * x0 + x0 * x1 + x1 * x1) * c) / (12.0 * area) - cx * cx
    syy = _per_ring(part, (y0 * y0 + y0 * y1 + y1 * y1) * c) / (12.0 * area) - cy * cy
    sxy = _per_ring(part, (2 * x0 * y0 + x0 * y1 + x1 * y0 + 2 * x1 * y1) * c) / (24.0 * area) - cx * cy
    ref = part.vertices[part.face_vertices[part.face_offsets[:-1]]]
    centroid = ref + np.stack([cx, cy], axis=1)
    cov = np.stack([np.stack([sxx, sxy], -1), np.stack([sxy, syy], -1)], -2)
    half_trace = (sxx + syy) / 2.0
    radius = np.hypot((sxx - syy) / 2.0, sxy)
    eig = np.stack([half_trace - radius, half_trace + radius], axis=1)
    return area, centroid, cov, np.maximum(eig, 0.0)


def eccentricities(part: Partition2D) -> tuple[np.ndarray, np.ndarray]:
    """Shape of each region from its ellipse of inertia.

    With ``l_min <= l_max`` the eigenvalues of the region's covariance, the eccentricity is
    ``e = sqrt(1 - l_min / l_max)`` (0 for a disc, square or regular polygon; -> 1 for a
    sliver) and the axis ratio is ``sqrt(l_max / l_min)`` (>= 1).

    Returns
    -------
    eccentricity, axis_ratio : (F,) each
    """
    return shape_of_eigenvalues(second_moments(part)[3])


def shape_of_eigenvalues(eig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eccentricity and axis ratio (F,) each from covariance eigenvalues (F, 2), ascending
    (see :func:`eccentricities`)."""
    ratio = np.divide(eig[:, 0], eig[:, 1], out=np.zeros(len(eig)), where=eig[:, 1] > 0)
    ecc = np.sqrt(np.clip(1.0 - ratio, 0.0, 1.0))
    axis = np.sqrt(np.divide(1.0, ratio, out=np.full(len(eig), np.inf), where=ratio > 0))
    return ecc, axis


def area_perimeter_shape(part: Partition2D) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Area, perimeter, eccentricity and axis ratio of each region (F,) each, from one pass
    over the rings (what :meth:`Partition2D.areas`, :func:`perimeters` and
    :func:`eccentricities` give one by one)."""
    terms = _ring_terms(part)
    x0, y0, x1, y1, _ = terms
    area, _, _, eig = _second_moments(part, terms)
    ecc, axis = shape_of_eigenvalues(eig)
    return area, _per_ring(part, np.hypot(x1 - x0, y1 - y0)), ecc, axis


def isoperimetric_quotients(part: Partition2D) -> np.ndarray:
    """(F,) ``4 pi A / P^2``: 1 for a disc, pi/4 for a square, small for slivers."""
    return 4.0 * np.pi * part.areas() / perimeters(part) ** 2


def vertex_distance_ratio(part: Partition2D) -> np.ndarray:
    """(F,) SplineCam's "eccentricity": largest / smallest distance between two vertices.

    A crude shape measure kept so results compare with published SplineCam numbers;
    computed per region over all vertex pairs (regions have few vertices).
    """
    ptr, vid, xy = part.face_offsets, part.face_vertices, part.vertices
    counts = np.diff(ptr)
    out = np.empty(part.n_regions)
    for k in np.unique(counts):  # one vectorised pass per polygon size, not per region
        rows = np.nonzero(counts == k)[0]
        pts = xy[vid[ptr[rows][:, None] + np.arange(k)]]  # (m, k, 2)
        iu = np.triu_indices(k, 1)
        gap = pts[:, iu[0]] - pts[:, iu[1]]  # each vertex pair once: (m, k(k-1)/2, 2)
        pair = np.hypot(gap[..., 0], gap[..., 1])
        out[rows] = pair.max(axis=1) / pair.min(axis=1)
    return out


def boundary_lengths(part: Partition2D) -> dict[int, float]:
    """Total length of region boundaries inside the domain, by the site whose neurons switch
    across them.

    Returns ``{site: length}`` for every site (0 where a site made no boundary); edges
    on the domain boundary are not counted. An edge across which neurons of two sites
    switch at once (coincident neurons) counts for both.
    """
    ptr, site, _ = part.edge_switches()
    seg = part.vertices[part.edges]
    lengths = np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1)
    edge = ring_ids(ptr)
    first = np.ones(len(edge), dtype=bool)  # each (edge, site) once
    first[1:] = (edge[1:] != edge[:-1]) | (site[1:] != site[:-1])
    per_site = np.bincount(site[first], weights=lengths[edge[first]], minlength=len(part.sites))
    return {i: float(v) for i, v in enumerate(per_site)}


def regions_through_sites(part: Partition2D) -> np.ndarray:
    """(n_sites,) regions of the network cut off after each ReLU site, on the same plane.

    Entry ``s`` counts the distinct activation patterns of sites ``0..s`` over the
    partition's regions. A pattern of the truncated network holds on an intersection of
    half-planes (each earlier site is affine once the patterns before it are fixed), which is
    convex, so each distinct pattern is exactly one region of the truncated network; the last
    entry is ``part.n_regions``. This is the per-layer region count of Hanin & Rolnick
    (2019) and Muthivhi & van Zyl (2026), read off one exact slice.
    """
    counts = np.zeros(len(part.sites), dtype=np.int64)
    ids = np.zeros(part.n_regions, dtype=np.int64)
    for s, packed in enumerate(part.patterns):
        ids = distinct_rows(np.column_stack([ids.view(np.uint8).reshape(-1, 8), packed]))
        counts[s] = int(ids.max()) + 1 if len(ids) else 0
    return counts


def _nonnegative(values: np.ndarray, where: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) == 0:
        raise InputValueError(message(where, "at least one value", "an empty array",
                                      "Pass the areas of a partition (it always has a region)."))
    if not np.isfinite(v).all() or (v < 0).any():
        raise InputValueError(message(where, "finite non-negative values (areas, lengths)",
                                      f"{int((~np.isfinite(v) | (v < 0)).sum())} negative or non-finite",
                                      "Pass areas or other non-negative sizes."))
    return v


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0: all equal; -> 1: one holds everything)."""
    v = np.sort(_nonnegative(values, "`values` of gini"))
    n = len(v)
    if v.sum() == 0:
        return 0.0
    return float((2.0 * np.arange(1, n + 1) - n - 1) @ v / (n * v.sum()))


def area_entropy(areas: np.ndarray) -> float:
    """Shannon entropy (nats) of the area fractions ``p_i = A_i / sum A``; ``exp`` of it is
    the effective number of regions."""
    p = _nonnegative(areas, "`areas` of area_entropy")
    if p.sum() == 0:
        return 0.0
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())
