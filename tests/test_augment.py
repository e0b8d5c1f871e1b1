"""Augmentations: reproducible from a seed, identity when switched off, flips only when asked."""

from __future__ import annotations

import pytest
import torch

from reluscope.data.augment import Augment, augment, two_views

OFF = Augment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), rotation=0.0, translate=0.0, shear=0.0,
              noise_std=0.0, erase_prob=0.0)


def images(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_views_are_reproducible_and_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a = two_views(images(), Augment(), torch.Generator().manual_seed(3))
    b = two_views(images(), Augment(), torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], a[1])
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a[0].shape == (6, 1, 28, 28) and 0 <= float(a[0].min()) and float(a[0].max()) <= 1


def test_switched_off_augmentation_is_the_identity_and_flip_mirrors():
    x = images()
    # float32 grid coordinates: exact up to ~1e-6 of a pixel
    assert torch.allclose(augment(x, OFF, torch.Generator().manual_seed(0)), x, atol=1e-5)
    flip = Augment(**{**OFF.__dict__, "hflip": True})
    flips = torch.stack([augment(x, flip, torch.Generator().manual_seed(s)) for s in range(8)])
    mirrored = torch.isclose(flips, x.flip(-1), atol=1e-5).flatten(2).all(-1)
    assert mirrored.any() and (~mirrored).any()
    assert Augment.for_dataset("fashion-mnist").hflip and not Augment.for_dataset("mnist").hflip


def test_erasing_zeroes_a_rectangle_and_elastic_moves_pixels():
    x = torch.ones(4, 1, 28, 28)
    erased = augment(x, Augment(**{**OFF.__dict__, "erase_prob": 1.0}), torch.Generator().manual_seed(0))
    assert ((erased == 0).flatten(1).sum(1) > 0).all()
    y = images(2)
    warped = augment(y, Augment(**{**OFF.__dict__, "elastic_alpha": 3.0}), torch.Generator().manual_seed(0))
    assert not torch.allclose(warped, y, atol=1e-3)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        augment(torch.rand(28, 28), Augment(), torch.Generator())
