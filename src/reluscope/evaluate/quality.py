"""All representation-quality measures of one trained objective, as a flat dict."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from reluscope.data import load_idx_images
from reluscope.evaluate.collapse import collapse_indicators
from reluscope.evaluate.probe import extract_features, knn_accuracy, linear_probe
from reluscope.train.objectives import DINO, Batch, Objective


def load_split(dataset: str, split: str, data_dir: str | Path | None, limit: int | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 28, 28) float32 and labels (N,) of a split, the first `limit` only.

    The decoded, checksummed split is kept for the process (an experiment analyses many
    checkpoints of one dataset; decoding 60,000 images costs ~1 s each time).
    """
    images, labels = _cached_split(dataset, split, None if data_dir is None else str(data_dir))
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


@functools.lru_cache(maxsize=4)
def _cached_split(dataset: str, split: str, data_dir: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_idx_images(dataset, split, data_dir, quiet=True)
    return torch.from_numpy(images)[:, None], torch.from_numpy(labels)


@torch.no_grad()
def representation_quality(objective: Objective, dataset: str, data_dir: str | Path | None = None, *,
                           train_limit: int | None = None, test_limit: int | None = None,
                           knn_test_limit: int | None = None,
                           indicator_samples: int = 2048) -> dict[str, float]:
    """Linear probe, kNN and collapse indicators of a trained objective.

    Backbone features are computed once (float32) and shared by the probe (fitted in
    float32), the kNN (the first `knn_test_limit` test images against all training
    features) and the collapse indicators.

    Returns
    -------
    dict
        ``probe_*`` (L-BFGS logistic regression on backbone features), ``knn_accuracy``
        (k=20, cosine, temperature 0.07), ``feature_*`` and ``embedding_*`` collapse
        indicators (std, rankme, alpha, sv_top1) on the first `indicator_samples` test
        images, and for DINO the teacher's entropy and the teacher-student KL there.
    """
    train_x, train_y = load_split(dataset, "train", data_dir, train_limit)
    test_x, test_y = load_split(dataset, "test", data_dir, test_limit)
    features_train = extract_features(objective.backbone, train_x)
    features_test = extract_features(objective.backbone, test_x)
    out = linear_probe(features_train, train_y, features_test, test_y, dtype=torch.float32)
    queries = slice(0, knn_test_limit)
    out["knn_accuracy"] = knn_accuracy(features_train, train_y, features_test[queries], test_y[queries])
    sample = test_x[:indicator_samples]
    was_training = objective.training
    objective.eval()
    try:
        out.update(collapse_indicators(features_test[:indicator_samples], "feature_"))
        out.update(collapse_indicators(objective.embed(sample).float(), "embedding_"))
        if isinstance(objective, DINO):
            logs = objective(Batch(sample, test_y[:indicator_samples], (sample, sample))).logs
            out["dino_teacher_entropy"] = logs["teacher_entropy"]
            out["dino_teacher_student_kl"] = logs["teacher_student_kl"]
    finally:
        objective.train(was_training)
    return out
