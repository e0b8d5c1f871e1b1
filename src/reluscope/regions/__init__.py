"""Exact linear regions: the 2D slice engine, the 1D path engine and their partition types."""

from reluscope.regions.options import EngineOptions
from reluscope.regions.partition1d import Partition1D
from reluscope.regions.partition2d import Partition2D, VerificationReport
from reluscope.regions.path1d import path_regions
from reluscope.regions.slice2d import slice_regions

__all__ = ["EngineOptions", "Partition1D", "Partition2D", "VerificationReport", "path_regions",
           "slice_regions"]
