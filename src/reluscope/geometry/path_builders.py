"""Paths from data: segments between test points, translation loops, augmented views.

These follow Gamba et al. (AISTATS 2022), who measure a network's linear regions along
lines between samples and along closed loops of translated copies of an image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from reluscope._validation import as_float64_tensor, check_int, check_positive, describe, message
from reluscope.errors import InputValueError
from reluscope.geometry.path import Path


def class_pairs(labels: Any, n: int, same_class: bool, generator: np.random.Generator) -> np.ndarray:
    """``n`` random index pairs ``(i, j)``, ``i != j``, whose labels are equal (or differ).

    Parameters
    ----------
    labels : (N,) array-like of int
    n : int
    same_class : bool
    generator : numpy.random.Generator

    Returns
    -------
    (n, 2) int64 array
    """
    y = np.asarray(labels).reshape(-1)
    if len(y) < 2 or (same_class and np.bincount(y.astype(np.int64)).max() < 2) or \
            (not same_class and len(np.unique(y)) < 2):
        raise InputValueError(message("`labels` of class_pairs",
                                      "at least two samples of one class" if same_class
                                      else "samples of at least two classes",
                                      describe(labels), "Pass more samples."))
    first = generator.integers(0, len(y), size=n)
    second = np.empty(n, dtype=np.int64)
    for cls in np.unique(y[first]):  # one vectorised draw per class, not per pair
        rows = np.nonzero(y[first] == cls)[0]
        pool = np.nonzero((y == cls) if same_class else (y != cls))[0]
        second[rows] = pool[generator.integers(0, len(pool), size=len(rows))]
    clash = second == first  # same-class draws may pick the point itself: shift to a neighbour
    if clash.any():
        for r in np.nonzero(clash)[0]:
            pool = np.nonzero((y == y[first[r]]) & (np.arange(len(y)) != first[r]))[0]
            second[r] = pool[generator.integers(0, len(pool))]
    return np.stack([first, second], axis=1).astype(np.int64)


def segments_between(images: Any, labels: Any, n: int, *, same_class: bool,
                     generator: np.random.Generator | None = None) -> tuple[list[Path], np.ndarray]:
    """Straight segments between random pairs of samples of the same (or different) class.

    Returns the paths and the (n, 2) index pairs they join.
    """
    x = as_float64_tensor(images, "`images` of segments_between")
    pairs = class_pairs(labels, n, same_class, generator or np.random.default_rng(0))
    return [Path.segment(x[i], x[j]) for i, j in pairs], pairs


def translate(image: Any, shift: Any) -> torch.Tensor:
    """Translate images by (dx, dy) pixels with bilinear interpolation and zero fill.

    Parameters
    ----------
    image : (C, H, W) or (H, W) array-like
    shift : (K, 2) array-like
        Shifts in pixels (x to the right, y down); fractional shifts interpolate.

    Returns
    -------
    (K, *image.shape) float64 tensor; an integer shift moves pixels exactly.
    """
    img = as_float64_tensor(image, "`image` of translate")
    if img.ndim not in (2, 3):
        raise InputValueError(message("`image` of translate", "an image (C, H, W) or (H, W)",
                                      describe(image), "Pass one image."))
    chw = img if img.ndim == 3 else img[None]
    s = as_float64_tensor(shift, "`shift` of translate").reshape(-1, 2)
    k, (c, h, w) = s.shape[0], chw.shape
    theta = torch.zeros(k, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    # output pixel p samples input pixel p - shift; normalised units are 2 / size per pixel
    theta[:, 0, 2] = -2.0 * s[:, 0] / w
    theta[:, 1, 2] = -2.0 * s[:, 1] / h
    grid = F.affine_grid(theta, [k, c, h, w], align_corners=False)
    out = F.grid_sample(chw[None].expand(k, c, h, w), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out if img.ndim == 3 else out[:, 0]


def translation_loop(image: Any, radius: float, n_anchors: int = 8) -> Path:
    """A closed polyline through copies of `image` translated around a circle.

    Anchor k is the image shifted by ``radius * (cos a_k, sin a_k)`` pixels,
    ``a_k = 2 pi k / n_anchors`` (Gamba et al., 2022).
    """
    r = check_positive(radius, "`radius` of translation_loop")
    check_int(n_anchors, "`n_anchors` of translation_loop", low=3, example="n_anchors=8")
    angles = 2 * np.pi * np.arange(n_anchors) / n_anchors
    shifts = r * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return Path.polyline(translate(image, shifts), closed=True)


def augmented_pair(image: Any, augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
                   generator: torch.Generator | None = None) -> Path:
    """The segment between two augmented views of one image.

    Parameters
    ----------
    image : (C, H, W) array-like
    augment : callable
        ``augment(batch, generator)`` maps a (2, C, H, W) batch to two random views.
    generator : torch.Generator, optional
    """
    img = as_float64_tensor(image, "`image` of augmented_pair")
    gen = generator or torch.Generator().manual_seed(0)
    views = as_float64_tensor(augment(img[None].expand(2, *img.shape).clone(), gen),
                              "the output of `augment` in augmented_pair")
    if tuple(views.shape) != (2, *img.shape):
        raise InputValueError(message("the output of `augment` in augmented_pair",
                                      f"two views shaped like the image {tuple(img.shape)}",
                                      describe(views), "Return a (2, C, H, W) batch."))
    return Path.segment(views[0], views[1])
