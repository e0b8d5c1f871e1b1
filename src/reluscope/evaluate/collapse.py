"""Indicators of representation collapse, computed from a batch of embeddings (N, d)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def normalized_std(z: torch.Tensor) -> float:
    """Std over samples of l2-normalised embeddings, averaged over dimensions, times sqrt(d).

    SimSiam (Chen & He, 2021, §4.1): about 1 for well-spread embeddings (each coordinate
    of a random unit vector has std 1/sqrt(d)), 0 when every sample maps to one point.
    """
    zn = F.normalize(z.double(), dim=1)
    return float(zn.std(dim=0).mean() * math.sqrt(z.shape[1]))


def singular_values(z: torch.Tensor) -> torch.Tensor:
    """Singular values of the centred embedding matrix, descending, (min(N, d),)."""
    zc = z.double() - z.double().mean(0)
    return torch.linalg.svdvals(zc)


def rankme(z: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al., 2023): ``exp(entropy(p))`` with ``p = s / sum s + eps`` over the
    singular values of the (uncentred) embeddings; between 1 (collapse) and min(N, d)."""
    s = torch.linalg.svdvals(z.double())
    p = s / s.sum() + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def alpha_req(z: torch.Tensor, skip: int = 0, top: int | None = None) -> float:
    """Decay exponent alpha of the covariance eigenvalues, ``lambda_k ~ k^-alpha`` (alpha-ReQ,
    Agrawal et al., 2022): minus the least-squares slope of log(lambda) on log(rank) over
    ranks ``skip+1 .. top`` of the non-negligible eigenvalues. Larger = faster decay (closer
    to collapse); about 1 for good representations."""
    eig = singular_values(z) ** 2 / max(z.shape[0] - 1, 1)
    eig = eig[eig > eig[0] * 1e-12] if eig.numel() and eig[0] > 0 else eig[:0]
    eig = eig[skip: top]
    if eig.numel() < 2:
        return float("inf")
    ranks = torch.arange(skip + 1, skip + 1 + eig.numel(), dtype=torch.float64)
    x, y = torch.log(ranks), torch.log(eig)
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    return float(-slope)


def collapse_indicators(z: torch.Tensor, prefix: str = "") -> dict[str, float]:
    """The scalar indicators of one embedding batch (N, d) as a flat dict.

    ``{prefix}std`` (normalised std), ``{prefix}rankme``, ``{prefix}alpha``, and
    ``{prefix}sv_top1`` (share of the largest singular value of the centred embeddings).
    """
    s = singular_values(z)
    return {f"{prefix}std": normalized_std(z), f"{prefix}rankme": rankme(z), f"{prefix}alpha": alpha_req(z),
            f"{prefix}sv_top1": float(s[0] / s.sum()) if float(s.sum()) > 0 else 1.0}
