"""Slices of input space: planes (2D) and paths (1D) through data."""

from reluscope.geometry.path import Path
from reluscope.geometry.plane import Plane

__all__ = ["Path", "Plane"]
