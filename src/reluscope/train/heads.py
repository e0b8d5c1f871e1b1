"""Projection / prediction heads and the exponential-moving-average target networks."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def mlp_head(in_dim: int, hidden: int, out_dim: int, last_bn: bool = False) -> nn.Sequential:
    """``Linear -> BatchNorm -> ReLU -> Linear [-> BatchNorm]`` (SimCLR/BYOL/SimSiam style)."""
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                               nn.Linear(hidden, out_dim)]
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy that receives no gradients (a target / teacher / momentum network)."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``target <- tau * target + (1 - tau) * online`` for parameters; buffers copied."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.mul_(tau).add_(o.detach(), alpha=1.0 - tau)
    for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
        tb.copy_(ob)


def cosine_momentum(base: float, step: int, total: int) -> float:
    """BYOL's schedule: ``1 - (1 - base) (cos(pi step / total) + 1) / 2`` (base -> 1)."""
    if total <= 0:
        return base
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(step, total) / total) + 1.0) / 2.0
