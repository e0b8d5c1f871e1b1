"""One flat dict of scalars per partition, ready for a results table."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from reluscope._validation import describe, message
from reluscope.errors import InputTypeError
from reluscope.metrics.anchors import anchor_metrics
from reluscope.metrics.decision import DecisionBoundary, decision_boundary
from reluscope.metrics.polytope import (
    area_entropy,
    area_perimeter_shape,
    boundary_lengths,
    gini,
    regions_through_sites,
    vertex_counts,
    vertex_distance_ratio,
)
from reluscope.regions.partition2d import Partition2D

QUANTILES = (0.1, 0.25, 0.75, 0.9)


def splinecam_statistics(part: Partition2D, areas: np.ndarray | None = None) -> dict[str, float]:
    """SplineCam-compatible statistics, computed on correctly closed polygons.

    ``sc_nregions``; ``sc_vol_m`` / ``sc_vol_std`` (region areas); ``sc_ecc_m`` /
    ``sc_ecc_std`` (SplineCam's "eccentricity": largest / smallest distance between two
    vertices of a region); ``sc_centr_m`` / ``sc_centr_std`` (distance of every vertex of a
    region to the mean of that region's vertices, over all regions' vertices);
    ``sc_nverts`` (vertices summed over regions) and ``sc_avg_verts``. `areas` (F,) may
    be given if already computed.
    """
    counts = vertex_counts(part)
    areas = part.areas() if areas is None else areas
    ratio = vertex_distance_ratio(part)
    centres = part.interior_points()  # the mean of each region's vertices
    owner = np.repeat(np.arange(part.n_regions), counts)
    centr = np.linalg.norm(part.vertices[part.face_vertices] - centres[owner], axis=1)
    return {"sc_nregions": float(part.n_regions), "sc_vol_m": float(areas.mean()),
            "sc_vol_std": float(areas.std()), "sc_ecc_m": float(ratio.mean()),
            "sc_ecc_std": float(ratio.std()), "sc_centr_m": float(centr.mean()),
            "sc_centr_std": float(centr.std()), "sc_nverts": float(counts.sum()),
            "sc_avg_verts": float(counts.mean())}


def summary(part: Partition2D, anchors: Any = None, model: nn.Module | None = None,
            radius: float | None = None, decision: DecisionBoundary | None = None) -> dict[str, float]:
    """The polytope metrics of a slice as a flat dict of scalars.

    Parameters
    ----------
    part : Partition2D
    anchors : (K, 2) array-like, optional
        Plane coordinates of data points; adds ``anchor{k}_*`` and ``anchor_*_mean``.
    model : nn.Module, optional
        The classifier the partition was computed for; adds the decision boundary
        (``decision_length``, ``decision_density`` per unit area, ``decision_regions``).
    radius : float, optional
        Neighbourhood radius for ``regions_within`` (default 5% of the domain diagonal).
    decision : DecisionBoundary, optional
        An already computed decision boundary (used instead of computing it from `model`).

    Returns
    -------
    dict of str -> float
        Counts and density; area distribution (mean, std, median, quantiles, Gini,
        entropy and effective number); shape (eccentricity from second moments, axis
        ratio, isoperimetric quotient, vertices, perimeter); boundary length per unit
        area, total and per site; regions of the network cut after each site
        (``regions_through_site{s}``); the SplineCam-compatible ``sc_*`` statistics.
    """
    if not isinstance(part, Partition2D):
        raise InputTypeError(message("`part` of summary", "a Partition2D", describe(part),
                                     "Compute one with reluscope.slice_regions."))
    domain = part.plane.area
    areas, perimeter, ecc, axis = area_perimeter_shape(part)
    iq = 4.0 * np.pi * areas / perimeter ** 2  # isoperimetric_quotients, sharing the perimeters
    entropy = area_entropy(areas)
    out: dict[str, float] = {
        "n_regions": float(part.n_regions), "domain_area": float(domain),
        "region_density": part.n_regions / domain,
        "area_mean": float(areas.mean()), "area_std": float(areas.std()),
        "area_median": float(np.median(areas)),
        **{f"area_q{int(q * 100):02d}": float(np.quantile(areas, q)) for q in QUANTILES},
        "area_gini": gini(areas), "area_entropy": entropy, "area_effective_number": float(np.exp(entropy)),
        "eccentricity_mean": float(ecc.mean()), "eccentricity_median": float(np.median(ecc)),
        "axis_ratio_median": float(np.median(axis)),
        "isoperimetric_mean": float(iq.mean()),
        "vertices_mean": float(vertex_counts(part).mean()),
        "perimeter_mean": float(perimeter.mean()),
    }
    per_site = boundary_lengths(part)
    total = sum(per_site.values())
    out["boundary_length"] = total
    out["boundary_density"] = total / domain
    for site, length in per_site.items():
        out[f"boundary_density_site{site}"] = length / domain
    for site, count in enumerate(regions_through_sites(part)):
        out[f"regions_through_site{site}"] = float(count)
    out.update(splinecam_statistics(part, areas))
    if anchors is not None:
        found = anchor_metrics(part, anchors, radius, eccentricity=ecc, areas=areas)
        for key in ("area", "eccentricity", "boundary_distance", "regions_within"):
            values = np.asarray(found[key], dtype=np.float64)
            for k, v in enumerate(values):
                out[f"anchor{k}_{key}"] = float(v)
            finite = values[np.isfinite(values)]
            out[f"anchor_{key}_mean"] = float(finite.mean()) if len(finite) else float("nan")
    boundary = decision if decision is not None or model is None else decision_boundary(part, model)
    if boundary is not None:
        out["decision_length"] = boundary.length
        out["decision_density"] = boundary.length / domain
        out["decision_regions"] = float(boundary.regions_crossed)
    return out
