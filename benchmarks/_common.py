"""Shared pieces of the benchmark scripts: the benchmark MLPs and machine facts."""

from __future__ import annotations

import platform
import resource

import torch
from torch import nn


def mlp(width: int) -> nn.Sequential:
    """MLP 784-w-w-w-10 (torch.manual_seed(0), default init, Linear/ReLU), in eval mode."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width),
                         nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)).eval()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> str:
    """What ran the benchmark (architecture and torch threads)."""
    return f"{platform.machine()} {torch.get_num_threads()} threads"
