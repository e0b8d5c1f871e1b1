"""Fine-tuning: the backbone and a new linear head trained end to end on a few labels.

The downstream measure the open question asks about: a linear probe keeps the features
fixed, fine-tuning lets them move, and the two can rank pretraining methods differently
(MAE trails SimCLR under a probe and leads it after fine-tuning on ImageNet). Here the
budget is short and stated: ``steps`` Adam steps at batch ``batch_size`` on a
class-balanced ``fraction`` of the training split (fixed by ``seed``), no augmentation;
accuracy on the test images. Everything random (subset, head initialisation, batch order)
comes from generators seeded by ``seed``; the global RNG is never touched and the given
backbone is never modified (a copy is trained), so a result is reproducible bit for bit and
an interrupted analysis simply recomputes it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reluscope._validation import message
from reluscope.errors import InputValueError


@dataclass(frozen=True)
class FinetuneOptions:
    """The fine-tuning budget.

    Attributes
    ----------
    steps : int
        Optimiser steps (each a batch drawn from the labelled subset, epoch by epoch).
    batch_size : int
    lr : float
        Adam learning rate of backbone and head.
    weight_decay : float
    seed : int
        Seeds the subset, the head initialisation and the batch order.
    """

    steps: int = 300
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0


def balanced_subset(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Indices of a class-balanced `fraction` of the samples: ``round(fraction * n / C)`` of
    every class (at least 1), drawn without replacement by a generator seeded with `seed`.

    labels : (N,) int; returns (k,) int64 indices, sorted.
    """
    if not 0 < fraction <= 1:
        raise InputValueError(message("`fraction` of balanced_subset", "a number in (0, 1]", repr(fraction),
                                      "e.g. 0.01 for 1% of the labels."))
    labels = torch.as_tensor(labels)
    classes = torch.unique(labels)
    per_class = max(1, round(fraction * len(labels) / len(classes)))
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in classes.tolist():
        members = torch.nonzero(labels == c).flatten()
        order = torch.randperm(len(members), generator=gen)[: min(per_class, len(members))]
        picks.append(members[order])
    return torch.sort(torch.cat(picks)).values


def finetune_accuracy(backbone: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor,
                      test_x: torch.Tensor, test_y: torch.Tensor, fraction: float,
                      options: FinetuneOptions | None = None) -> dict[str, float]:
    """Fine-tune a copy of `backbone` with a new linear head on a fraction of the labels.

    Parameters
    ----------
    backbone : nn.Module
        Maps (N, C, H, W) images to (N, d) features; exposes ``feature_dim`` or infers it.
    train_x, test_x : (N, C, H, W) float32 images; train_y, test_y : (N,) int labels
    fraction : float
        Share of the training labels used (class-balanced, see :func:`balanced_subset`).
    options : FinetuneOptions

    Returns
    -------
    dict
        ``accuracy`` on the test images, ``train_accuracy`` on the labelled subset,
        ``labels`` (how many were used).
    """
    options = options or FinetuneOptions()
    rows = balanced_subset(train_y, fraction, options.seed)
    x, y = train_x[rows], train_y[rows]
    n_classes = int(max(int(train_y.max()), int(test_y.max()))) + 1
    model_backbone = copy.deepcopy(backbone).train()
    with torch.no_grad():
        dim = int(model_backbone(x[:2].to(next(model_backbone.parameters()).dtype)).shape[1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        head = nn.Linear(dim, n_classes)
    model = nn.Sequential(model_backbone, head)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    gen = torch.Generator().manual_seed(options.seed + 1)
    batch = min(options.batch_size, len(x))
    order, cursor = torch.randperm(len(x), generator=gen), 0
    for _ in range(options.steps):
        if cursor + batch > len(order):
            order, cursor = torch.randperm(len(x), generator=gen), 0
        pick = order[cursor: cursor + batch]
        cursor += batch
        loss = F.cross_entropy(model(x[pick]), y[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        test_pred = torch.cat([model(test_x[i: i + 2048]).argmax(1) for i in range(0, len(test_x), 2048)])
        train_pred = torch.cat([model(x[i: i + 2048]).argmax(1) for i in range(0, len(x), 2048)])
    return {"accuracy": float((test_pred == test_y).double().mean()),
            "train_accuracy": float((train_pred == y).double().mean()), "labels": float(len(rows))}


def fraction_key(fraction: float) -> str:
    """Metric-name form of a label fraction: 1.0 -> '100', 0.1 -> '10', 0.01 -> '1', 0.005 -> '0.5'."""
    percent = fraction * 100
    return f"{percent:g}" if not float(percent).is_integer() else str(int(np.round(percent)))
