"""Paths from data: class pairs, translation loops, augmented views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reluscope as rs
from reluscope.geometry import augmented_pair, class_pairs, segments_between, translate, translation_loop


def test_class_pairs_respect_the_class_rule():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    rng = np.random.default_rng(0)
    same = class_pairs(labels, 200, True, rng)
    assert (labels[same[:, 0]] == labels[same[:, 1]]).all() and (same[:, 0] != same[:, 1]).all()
    diff = class_pairs(labels, 200, False, rng)
    assert (labels[diff[:, 0]] != labels[diff[:, 1]]).all()
    with pytest.raises(ValueError, match="at least two samples of one class"):
        class_pairs(np.array([0, 1, 2]), 3, True, rng)


def test_segments_between_real_test_images(data_dir):
    from reluscope.data import load_idx_images

    x, y = load_idx_images("mnist", "test", data_dir)
    paths, pairs = segments_between(x[:500], y[:500], 5, same_class=False)
    assert len(paths) == 5 and all(p.n_segments == 1 for p in paths)
    assert torch.equal(paths[0].points[0], torch.from_numpy(x[pairs[0, 0]]).double())


def test_integer_translation_moves_pixels_exactly_and_loops_close():
    img = torch.zeros(1, 6, 6, dtype=torch.float64)
    img[0, 2, 3] = 1.0
    moved = translate(img, [[1.0, 2.0]])[0, 0]
    assert moved[4, 4] == pytest.approx(1.0) and moved.sum() == pytest.approx(1.0)
    loop = translation_loop(img, 1.5, 6)
    assert loop.closed and loop.n_segments == 6
    half = translate(img[0], [[0.5, 0.0]])[0]
    assert half[2, 3] == pytest.approx(0.5) and half[2, 4] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="`n_anchors` of translation_loop"):
        translation_loop(img, 1.0, 2)


def test_augmented_pair_uses_the_given_augmentation():
    img = torch.rand(1, 4, 4, dtype=torch.float64)

    def noise(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return batch + 0.1 * torch.randn(batch.shape, generator=gen, dtype=batch.dtype)

    path = augmented_pair(img, noise, torch.Generator().manual_seed(1))
    assert path.n_segments == 1 and not torch.equal(path.points[0], path.points[1])
    with pytest.raises(ValueError, match="two views shaped like the image"):
        augmented_pair(img, lambda b, g: b[:1])
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU(),
                                torch.nn.Linear(8, 2))
    assert rs.path_regions(model, path).n_pieces >= 1
