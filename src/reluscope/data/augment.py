"""Batched image augmentations as tensor ops, sized for 28x28 grayscale digits and clothes.

One ``grid_sample`` per batch applies the random resized crop, the small affine
(rotation, shear, translation), the optional horizontal flip and the optional elastic
displacement together; Gaussian noise and random erasing follow. Every random draw
comes from the ``torch.Generator`` passed in, so views are reproducible from a seed and
the global RNG is untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from reluscope._validation import describe, message
from reluscope.errors import InputValueError


@dataclass(frozen=True)
class Augment:
    """Parameters of the two-view augmentation (defaults for 28x28 grayscale images).

    Attributes
    ----------
    crop_scale : (float, float)
        Area fraction of the random resized crop.
    crop_ratio : (float, float)
        Aspect ratio range of the crop.
    rotation : float
        Maximum rotation, degrees.
    translate : float
        Maximum translation as a fraction of the image size.
    shear : float
        Maximum shear, degrees.
    hflip : bool
        Random horizontal flips (Fashion-MNIST only: a flipped digit is another symbol).
    elastic_alpha, elastic_sigma : float
        Elastic distortion strength (pixels) and smoothness (pixels); alpha 0 disables it.
    noise_std : float
        Standard deviation of additive Gaussian noise (pixels in [0, 1]).
    erase_prob : float
        Probability of erasing one random rectangle.
    erase_area : (float, float)
        Area fraction of the erased rectangle.
    """

    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotation: float = 15.0
    translate: float = 0.1
    shear: float = 10.0
    hflip: bool = False
    elastic_alpha: float = 0.0
    elastic_sigma: float = 3.0
    noise_std: float = 0.05
    erase_prob: float = 0.25
    erase_area: tuple[float, float] = (0.02, 0.15)

    @classmethod
    def for_dataset(cls, dataset: str, **changes: object) -> Augment:
        """Defaults for a dataset: horizontal flips only for Fashion-MNIST."""
        return replace(cls(hflip=dataset == "fashion-mnist"), **changes)  # type: ignore[arg-type]

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One random view of each image, (B, C, H, W) -> (B, C, H, W) (same dtype)."""
        return augment(images, self, generator)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=dtype)


def _theta(n: int, p: Augment, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """(n, 2, 3) maps from output to input normalised coordinates: crop, affine, flip."""
    area = _uniform(n, *p.crop_scale, gen, dtype)
    log_ratio = _uniform(n, math.log(p.crop_ratio[0]), math.log(p.crop_ratio[1]), gen, dtype)
    ratio = torch.exp(log_ratio)
    sw = torch.sqrt(area * ratio).clamp(max=1.0)  # crop width / image width
    sh = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (1 - sw) * (2 * torch.rand(n, generator=gen, dtype=dtype) - 1)  # crop centre stays inside
    cy = (1 - sh) * (2 * torch.rand(n, generator=gen, dtype=dtype) - 1)
    angle = torch.deg2rad(_uniform(n, -p.rotation, p.rotation, gen, dtype))
    shear = torch.deg2rad(_uniform(n, -p.shear, p.shear, gen, dtype))
    tx = _uniform(n, -2 * p.translate, 2 * p.translate, gen, dtype)
    ty = _uniform(n, -2 * p.translate, 2 * p.translate, gen, dtype)
    flip = torch.ones(n, dtype=dtype)
    if p.hflip:
        flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).to(dtype)
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    # affine on the output grid: rotation @ shear (x' = x + tan * y), then translation
    a = torch.stack([torch.stack([cos, cos * tan - sin], -1), torch.stack([sin, sin * tan + cos], -1)], -2)
    a = a * torch.stack([flip, torch.ones_like(flip)], -1)[:, None, :]
    crop = torch.diag_embed(torch.stack([sw, sh], -1))
    linear = crop @ a
    offset = torch.stack([cx, cy], -1) + (crop @ torch.stack([tx, ty], -1)[..., None])[..., 0]
    return torch.cat([linear, offset[..., None]], dim=-1)


def _elastic(n: int, h: int, w: int, p: Augment, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """Smooth random displacement field in normalised units, (n, h, w, 2)."""
    field = 2 * torch.rand(n, 2, h, w, generator=gen, dtype=dtype) - 1
    radius = max(1, int(3 * p.elastic_sigma))
    x = torch.arange(-radius, radius + 1, dtype=dtype)
    kernel = torch.exp(-0.5 * (x / p.elastic_sigma) ** 2)
    kernel = kernel / kernel.sum()
    field = F.conv2d(field.reshape(2 * n, 1, h, w), kernel.reshape(1, 1, 1, -1), padding=(0, radius))
    field = F.conv2d(field, kernel.reshape(1, 1, -1, 1), padding=(radius, 0)).reshape(n, 2, h, w)
    scale = torch.tensor([2.0 / w, 2.0 / h], dtype=dtype).reshape(1, 2, 1, 1)
    return (p.elastic_alpha * field * scale).permute(0, 2, 3, 1)


def augment(images: torch.Tensor, params: Augment, generator: torch.Generator) -> torch.Tensor:
    """Apply one random augmentation per image (see :class:`Augment`).

    Parameters
    ----------
    images : torch.Tensor, shape (B, C, H, W), floating point in [0, 1]
    params : Augment
    generator : torch.Generator
        Source of every random draw (CPU generator).

    Returns
    -------
    torch.Tensor, shape (B, C, H, W), clamped to [0, 1].
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise InputValueError(message("`images` of augment", "a float tensor (B, C, H, W)", describe(images),
                                      "Add the channel axis: images[:, None] for (B, H, W) input."))
    n, c, h, w = images.shape
    dtype = images.dtype
    theta = _theta(n, params, generator, dtype)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    if params.elastic_alpha > 0:
        grid = grid + _elastic(n, h, w, params, generator, dtype)
    out = F.grid_sample(images, grid.to(images.device), mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    if params.noise_std > 0:
        noise = torch.randn(out.shape, generator=generator, dtype=dtype).to(out.device)
        out = out + params.noise_std * noise
    if params.erase_prob > 0:
        out = _erase(out, params, generator)
    return out.clamp(0.0, 1.0)


def _erase(x: torch.Tensor, p: Augment, gen: torch.Generator) -> torch.Tensor:
    """Zero one random rectangle in a random subset of the images (vectorised masks)."""
    n, _, h, w = x.shape
    dtype = x.dtype
    chosen = torch.rand(n, generator=gen) < p.erase_prob
    area = _uniform(n, *p.erase_area, gen, dtype) * h * w
    ratio = torch.exp(_uniform(n, math.log(0.3), math.log(3.3), gen, dtype))
    eh = torch.sqrt(area * ratio).clamp(1, h).round()
    ew = torch.sqrt(area / ratio).clamp(1, w).round()
    top = (torch.rand(n, generator=gen, dtype=dtype) * (h - eh + 1)).floor()
    left = (torch.rand(n, generator=gen, dtype=dtype) * (w - ew + 1)).floor()
    rows = torch.arange(h, dtype=dtype).reshape(1, h, 1)
    cols = torch.arange(w, dtype=dtype).reshape(1, 1, w)
    box = ((rows >= top.reshape(-1, 1, 1)) & (rows < (top + eh).reshape(-1, 1, 1))
           & (cols >= left.reshape(-1, 1, 1)) & (cols < (left + ew).reshape(-1, 1, 1)))
    mask = (box & chosen.reshape(-1, 1, 1)).to(x.device)
    return x.masked_fill(mask[:, None], 0.0)


def two_views(images: torch.Tensor, params: Augment, generator: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent random views of each image."""
    both = augment(torch.cat([images, images]), params, generator)
    return both[: len(images)], both[len(images):]
