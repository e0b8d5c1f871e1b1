"""Data-centred measures: the geometry around the points a slice passes through."""

from __future__ import annotations

from typing import Any

import numpy as np

from reluscope._kernels.rings import gather_rings, next_slot, ring_boxes
from reluscope._validation import check_positive, describe, message
from reluscope.errors import InputValueError
from reluscope.metrics.polytope import eccentricities
from reluscope.regions.partition2d import Partition2D


def _segment_distances(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from `point` (2,) to each segment a[i]-b[i] (n, 2) -> (n,)."""
    d = b - a
    dd = np.einsum("ij,ij->i", d, d)
    t = np.clip(np.einsum("ij,ij->i", point - a, d) / np.where(dd > 0, dd, 1.0), 0.0, 1.0)
    return np.linalg.norm(a + t[:, None] * d - point, axis=1)


def check_anchors(anchors: Any, where: str) -> np.ndarray:
    """Validate plane coordinates of anchor points, (K, 2) float64."""
    pts = np.asarray(anchors, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
        raise InputValueError(message(where, "finite plane coordinates of shape (K, 2)", describe(anchors),
                                      "Pass e.g. plane.coordinates(images) as a numpy array."))
    return pts


def anchor_metrics(part: Partition2D, anchors: Any, radius: float | None = None,
                   eccentricity: np.ndarray | None = None, areas: np.ndarray | None = None
                   ) -> dict[str, np.ndarray]:
    """Size and shape of the regions at the anchors, and how crowded their surroundings are.

    Parameters
    ----------
    part : Partition2D
    anchors : (K, 2) array-like
        Plane coordinates of the data points (e.g. the three images a plane goes through).
    radius : float, optional
        Radius of the neighbourhood counted by ``regions_within``; default 5% of the
        domain's diagonal.
    eccentricity, areas : (F,) arrays, optional
        The regions' eccentricities and areas if already computed
        (:func:`reluscope.metrics.polytope.area_perimeter_shape`).

    Returns
    -------
    dict of (K,) arrays
        ``region`` (index, -1 outside the domain), ``area`` and ``eccentricity`` of that
        region, ``boundary_distance`` (to the nearest region boundary inside the domain; inf
        if there is none) and ``regions_within`` (regions meeting the disc of `radius`).
    """
    pts = check_anchors(anchors, "`anchors` of anchor_metrics")
    r = 0.05 * part.plane.diameter if radius is None else check_positive(radius, "`radius` of anchor_metrics")
    region = part.region_of(pts)
    ecc = eccentricities(part)[0] if eccentricity is None else eccentricity
    areas = part.areas() if areas is None else areas
    inner = part.edge_site >= 0
    ea, eb = part.vertices[part.edges[inner, 0]], part.vertices[part.edges[inner, 1]]
    ptr, vid = part.face_offsets, part.face_vertices
    xy = part.vertices[vid]
    # regions whose bounding box is farther than r cannot meet the disc: only the others'
    # edges are measured
    lo, hi = ring_boxes(ptr, vid, part.vertices)
    nxt = next_slot(ptr)
    dist, within = np.full(len(pts), np.inf), np.zeros(len(pts), dtype=np.int64)
    for i, p in enumerate(pts):  # a handful of anchors; each step is vectorised over edges
        if len(ea):
            dist[i] = _segment_distances(p, ea, eb).min()
        gap = np.maximum(np.maximum(lo - p, p - hi), 0.0)
        near = np.flatnonzero(np.hypot(gap[:, 0], gap[:, 1]) <= r)
        sub_ptr, slots = gather_rings(ptr, near)
        to_region = np.minimum.reduceat(_segment_distances(p, xy[slots], part.vertices[vid[nxt[slots]]]),
                                        sub_ptr[:-1]) if len(slots) else np.zeros(0)
        within[i] = int((to_region <= r).sum() + (region[i] >= 0 and region[i] not in near))
    ok = region >= 0
    return {"region": region,
            "area": np.where(ok, areas[np.maximum(region, 0)], np.nan),
            "eccentricity": np.where(ok, ecc[np.maximum(region, 0)], np.nan),
            "boundary_distance": dist, "regions_within": within}
