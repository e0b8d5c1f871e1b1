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


def reset_peak_rss() -> bool:
    """Start a new peak-memory window (Linux: clear_refs 5 resets VmHWM); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory, in MB: since the last reset_peak_rss where that works (Linux),
    else of the whole process so far."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> str:
    """What ran the benchmark (architecture and torch threads)."""
    return f"{platform.machine()} {torch.get_num_threads()} threads"
