"""Pictures of partitions (2D slices) and path profiles (1D)."""

from reluscope.plotting.partition import plot_partition
from reluscope.plotting.path import plot_path_profile

__all__ = ["plot_partition", "plot_path_profile"]
