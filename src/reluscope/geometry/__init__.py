"""Slices of input space: planes (2D) and paths (1D) through data."""

from reluscope.geometry.path import Path
from reluscope.geometry.path_builders import (
    augmented_pair,
    class_pairs,
    segments_between,
    translate,
    translation_loop,
)
from reluscope.geometry.plane import Plane

__all__ = ["Path", "Plane", "augmented_pair", "class_pairs", "segments_between", "translate",
           "translation_loop"]
