"""Turning an ``nn.Module`` into the ordered ReLU sites the exact engines need."""

from reluscope.nets.sites import Site, SiteRecorder, discover_sites

__all__ = ["Site", "SiteRecorder", "discover_sites"]
