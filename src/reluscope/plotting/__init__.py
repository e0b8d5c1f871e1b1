"""Pictures of partitions."""

from reluscope.plotting.partition import plot_partition

__all__ = ["plot_partition"]
