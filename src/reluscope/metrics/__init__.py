"""Measures of linear regions: polytopes of a slice, paths, local complexity.

Pure functions from partitions (or a model and points) to arrays and scalars.
"""

from reluscope.metrics.anchors import anchor_metrics
from reluscope.metrics.decision import DecisionBoundary, decision_boundary, vertex_outputs
from reluscope.metrics.local_complexity import (
    LocalComplexity,
    ball_lc,
    cross_polytope_lc,
    random_frames,
    smooth_lc,
)
from reluscope.metrics.path import integral_abs_affine, path_metrics, path_summary, region_lengths
from reluscope.metrics.polytope import (
    area_entropy,
    boundary_lengths,
    eccentricities,
    gini,
    isoperimetric_quotients,
    perimeters,
    regions_through_sites,
    second_moments,
    vertex_counts,
    vertex_distance_ratio,
)
from reluscope.metrics.summary import splinecam_statistics, summary

__all__ = [
    "DecisionBoundary",
    "LocalComplexity",
    "anchor_metrics",
    "area_entropy",
    "ball_lc",
    "boundary_lengths",
    "cross_polytope_lc",
    "decision_boundary",
    "eccentricities",
    "gini",
    "integral_abs_affine",
    "isoperimetric_quotients",
    "path_metrics",
    "path_summary",
    "perimeters",
    "random_frames",
    "region_lengths",
    "regions_through_sites",
    "second_moments",
    "smooth_lc",
    "splinecam_statistics",
    "summary",
    "vertex_counts",
    "vertex_distance_ratio",
    "vertex_outputs",
]
