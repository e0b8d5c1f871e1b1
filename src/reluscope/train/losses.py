"""The self-supervised losses as pure functions of embeddings (shapes in each docstring).

Each follows its paper's pseudocode; tests check them against analytic values and
loop-by-loop transcriptions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent (Chen et al., 2020).

    z1, z2 : (N, d) embeddings of the two views. Each of the 2N embeddings must pick its
    partner among the other 2N - 1 by cosine similarity / temperature; the loss is the
    mean cross-entropy. At uniform similarity it equals ``ln(2N - 1)``.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, target)


def info_nce_queue(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo's InfoNCE (He et al., 2020; v2: Chen et al., 2020).

    q : (N, d) queries, k : (N, d) positive keys (no gradient), queue : (K, d) negatives;
    all l2-normalised here. Logits ``[q.k, q.queue] / temperature``, target 0.
    """
    q, k, queue = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(queue, dim=1)
    positive = (q * k).sum(dim=1, keepdim=True)
    negative = q @ queue.T
    logits = torch.cat([positive, negative], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean ``-cos(p, z)`` over rows (SimSiam's D; BYOL's loss is ``2 + 2 D``). p, z : (N, d)."""
    return -F.cosine_similarity(p, z, dim=1).mean()


def dino_loss(student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor,
              student_temp: float, teacher_temp: float, centering: bool = True) -> torch.Tensor:
    """DINO's cross-entropy between teacher and student distributions (Caron et al., 2021).

    student : (V, N, K) logits of V views; teacher : (T, N, K) logits of the first T views
    (no gradient); center : (K,). Teacher probabilities ``softmax((t - c) / teacher_temp)``
    (without ``- c`` when ``centering`` is False), student log-probabilities
    ``log_softmax(s / student_temp)``; mean over pairs of different views.
    """
    t = teacher - center if centering else teacher
    t_prob = F.softmax(t / teacher_temp, dim=-1)
    s_log = F.log_softmax(student / student_temp, dim=-1)
    total, pairs = student.new_zeros(()), 0
    for ti in range(t_prob.shape[0]):
        for si in range(s_log.shape[0]):
            if si != ti:
                total = total + (-(t_prob[ti] * s_log[si]).sum(dim=-1)).mean()
                pairs += 1
    return total / pairs


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """VICReg (Bardes et al., 2022): invariance + variance + covariance. z1, z2 : (N, d).

    invariance ``mse(z1, z2)``; variance ``mean(relu(1 - sqrt(var + 1e-4)))`` per branch;
    covariance: squared off-diagonal covariances summed, divided by d, per branch.
    Returns the weighted loss and its three terms.
    """
    n, d = z1.shape
    invariance = F.mse_loss(z1, z2)
    a, b = z1 - z1.mean(dim=0), z2 - z2.mean(dim=0)
    std_a, std_b = torch.sqrt(a.var(dim=0) + 1e-4), torch.sqrt(b.var(dim=0) + 1e-4)
    variance = F.relu(1 - std_a).mean() / 2 + F.relu(1 - std_b).mean() / 2
    cov_a, cov_b = a.T @ a / (n - 1), b.T @ b / (n - 1)
    off = ~torch.eye(d, dtype=torch.bool, device=z1.device)
    covariance = cov_a[off].pow(2).sum() / d + cov_b[off].pow(2).sum() / d
    loss = sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance
    return loss, {"invariance": invariance, "variance": variance, "covariance": covariance}


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3) -> torch.Tensor:
    """Barlow Twins (Zbontar et al., 2021). z1, z2 : (N, d).

    Standardise each dimension over the batch, ``c = z1n.T @ z2n / N``; loss
    ``sum_i (1 - c_ii)^2 + lambd * sum_{i != j} c_ij^2``.
    """
    n = z1.shape[0]
    a = (z1 - z1.mean(0)) / (z1.std(0, unbiased=False) + 1e-5)
    b = (z2 - z2.mean(0)) / (z2.std(0, unbiased=False) + 1e-5)
    c = a.T @ b / n
    diag = torch.diagonal(c)
    on = (1 - diag).pow(2).sum()
    off = c.pow(2).sum() - diag.pow(2).sum()
    return on + lambd * off


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) images -> (B, L, C * patch * patch) patches in row-major order.

    ``L = (H / patch) * (W / patch)``; each patch's pixels are ordered (channel, row, column).
    """
    b, c, h, w = images.shape
    grid = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return grid.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


def masked_patch_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                     normalize_target: bool = False) -> torch.Tensor:
    """MAE's reconstruction loss (He et al., 2022): mean squared error on masked patches only.

    prediction, target : (B, L, P) pixels per patch; mask : (B, L) bool, True = masked (hidden
    from the encoder). The per-patch mean of squared errors is averaged over masked patches;
    visible patches do not count. With `normalize_target` each target patch is standardised
    by its own mean and variance first (the paper's ``norm_pix_loss``).
    """
    if normalize_target:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = ((prediction - target) ** 2).mean(dim=-1)
    weight = mask.to(per_patch.dtype)
    return (per_patch * weight).sum() / weight.sum().clamp_min(1.0)
