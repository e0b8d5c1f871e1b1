"""Representation quality (linear probe, kNN) and collapse indicators."""

from reluscope.evaluate.collapse import (
           alpha_req,
           collapse_indicators,
           normalized_std,
           rankme,
           singular_values,
)
from reluscope.evaluate.probe import extract_features, knn_accuracy, linear_probe
from reluscope.evaluate.quality import representation_quality

__all__ = ["alpha_req", "collapse_indicators", "extract_features", "knn_accuracy", "linear_probe",
           "normalized_std", "rankme", "representation_quality", "singular_values"]
