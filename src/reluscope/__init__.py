"""reluscope: exact geometry of ReLU networks."""

from reluscope.errors import (
    InputTypeError,
    InputValueError,
    PartitionFileError,
    ReluscopeError,
    TooManyRegionsError,
    UnsupportedModelError,
)
from reluscope.geometry import Plane
from reluscope.regions import Partition2D, VerificationReport, slice_regions

__version__ = "0.1.0"

__all__ = [
    "InputTypeError",
    "InputValueError",
    "Partition2D",
    "PartitionFileError",
    "Plane",
    "ReluscopeError",
    "TooManyRegionsError",
    "UnsupportedModelError",
    "VerificationReport",
    "__version__",
    "slice_regions",
]
