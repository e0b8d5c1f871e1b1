"""reluscope: exact geometry of ReLU networks.

The public names below are loaded on first use (PEP 562), so that ``reluscope --help`` and
``import reluscope.errors`` do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from reluscope.errors import (
    InputTypeError,
    InputValueError,
    MissingDependencyError,
    PartitionFileError,
    ReluscopeError,
    TooManyRegionsError,
    UnsupportedModelError,
)

if TYPE_CHECKING:
    from reluscope import metrics
    from reluscope.geometry import Path, Plane
    from reluscope.regions import (
        EngineOptions,
        Partition1D,
        Partition2D,
        VerificationReport,
        path_regions,
        slice_regions,
    )

__version__ = "0.1.0"

#: subpackages reachable as attributes (``rs.plotting.plot_partition``)
_SUBPACKAGES = ("metrics", "plotting", "train", "evaluate", "data", "geometry", "regions", "nets",
                "experiments")
#: public name -> module it lives in
_LAZY = {"Path": "reluscope.geometry", "Plane": "reluscope.geometry",
         "Partition1D": "reluscope.regions", "Partition2D": "reluscope.regions",
         "VerificationReport": "reluscope.regions", "path_regions": "reluscope.regions",
         "slice_regions": "reluscope.regions", "EngineOptions": "reluscope.regions"}


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        value: Any = importlib.import_module(f"reluscope.{name}")
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'reluscope' has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = [
    "EngineOptions",
    "InputTypeError",
    "InputValueError",
    "MissingDependencyError",
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
