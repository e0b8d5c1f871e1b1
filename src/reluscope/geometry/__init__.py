"""Slices of input space: planes (2D) through data."""

from reluscope.geometry.plane import Plane

__all__ = ["Plane"]
