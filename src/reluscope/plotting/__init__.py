"""Pictures of partitions (2D slices) and path profiles (1D)."""

from reluscope._extras import require

require(("matplotlib",), "plot", "reluscope.plotting")

from reluscope.plotting.partition import plot_partition  # noqa: E402 (after the check)
from reluscope.plotting.path import plot_path_profile  # noqa: E402

__all__ = ["plot_partition", "plot_path_profile"]
