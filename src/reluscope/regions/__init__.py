"""Exact linear regions: the 2D slice engine and its partition type."""

from reluscope.regions.partition2d import Partition2D, VerificationReport
from reluscope.regions.slice2d import slice_regions

__all__ = ["Partition2D", "VerificationReport", "slice_regions"]
