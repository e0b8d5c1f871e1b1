"""Turning an ``nn.Module`` into the ordered ReLU sites the exact engines need."""

from reluscope.nets.plane_network import Network, discover_sites
from reluscope.nets.sites import InstrumentedModel, Site, SiteRecorder

__all__ = ["InstrumentedModel", "Network", "Site", "SiteRecorder", "discover_sites"]
