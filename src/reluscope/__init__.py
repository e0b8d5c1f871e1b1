"""reluscope: exact geometry of ReLU networks."""

from reluscope import metrics
from reluscope.errors import (
    InputTypeError,
    InputValueError,
    PartitionFileError,
    ReluscopeError,
    TooManyRegionsError,
    UnsupportedModelError,
)
from reluscope.geometry import Path, Plane
from reluscope.regions import Partition1D, Partition2D, VerificationReport, path_regions, slice_regions

__version__ = "0.1.0"

__all__ = [
    "InputTypeError",
    "InputValueError",
    "Partition1D",
    "Partition2D",
    "PartitionFileError",
    "Path",
    "Plane",
    "ReluscopeError",
    "TooManyRegionsError",
    "UnsupportedModelError",
    "VerificationReport",
    "__version__",
    "metrics",
    "path_regions",
    "slice_regions",
]
