"""Training objectives, each a small module holding its heads and computing its loss.

Families (``Objective.family``): ``supervised`` (cross-entropy, on the images or, for
``supervised-aug``, on the same augmented views the SSL objectives see), ``contrastive``
(SimCLR, MoCo v2), ``self-distillation`` (BYOL, SimSiam, DINO), ``redundancy-reduction``
(VICReg, Barlow Twins), ``masked-modelling`` (MAE). Collapse switches (``stop_gradient``,
``predictor``, ``ema``, ``centering``, ``sharpening``, ``variance``/``covariance``) turn off
the mechanism that prevents collapse, for experiments on it. ``OBJECTIVES`` maps names (collapse variants
included) to constructors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from reluscope._validation import message
from reluscope.errors import InputValueError
from reluscope.train.heads import cosine_momentum, ema_update, frozen_copy, mlp_head
from reluscope.train.losses import (
    barlow_twins_loss,
    dino_loss,
    info_nce_queue,
    masked_patch_mse,
    negative_cosine,
    nt_xent,
    patchify,
    vicreg_loss,
)


@dataclass
class Batch:
    """One training batch: images (B, C, H, W), labels (B,), and two augmented views."""

    images: torch.Tensor
    labels: torch.Tensor
    views: tuple[torch.Tensor, torch.Tensor] | None = None
    #: The step's own random stream (seeded by the run's seed and the step, so a resumed run
    #: draws the same), for objectives that sample more than augmentations (MAE's masks).
    generator: torch.Generator | None = None


@dataclass
class LossOutput:
    """The loss to minimise and scalars to log."""

    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


class Objective(nn.Module):
    """Base class: ``backbone`` plus heads; ``forward(batch) -> LossOutput``.

    Subclasses set ``family`` and ``needs_views``; ``after_step`` updates momentum
    networks and schedules; ``embed`` gives the embedding the collapse indicators watch.
    """

    family: ClassVar[str] = ""
    needs_views: ClassVar[bool] = True

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = int(backbone.feature_dim)  # type: ignore[arg-type]

    def forward(self, batch: Batch) -> LossOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def after_step(self, step: int, total_steps: int) -> None:
        """Called after each optimiser step (``step`` counts from 1): momentum updates."""
        self.schedule(step, total_steps)

    def schedule(self, step: int, total_steps: int) -> None:
        """Set step-dependent hyper-parameters (also called when a run resumes at `step`)."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding of images (B, C, H, W) -> (B, d); default: the backbone features."""
        return self.backbone(x)

    def trained_head(self) -> nn.Module:
        """The trained head the loss reads the backbone through, up to its last piecewise-linear
        layer: the classifier (supervised), the projector (SimCLR, MoCo, BYOL, SimSiam, VICReg,
        Barlow Twins; BYOL's and SimSiam's predictors act on one branch only and are left out),
        DINO's head before its l2 normalisation."""
        raise NotImplementedError(f"{type(self).__name__} does not name its head")

    def trained_network(self) -> nn.Module:
        """``backbone`` followed by :meth:`trained_head`: the network the loss acts on (its modules are
        shared with the objective, not copied)."""
        return nn.Sequential(self.backbone, self.trained_head())

    def _views(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        if batch.views is None:
            raise InputValueError(message(f"the batch of {type(self).__name__}", "two augmented views",
                                          "a batch without views", "Train it with augmentation on."))
        return batch.views


class _Projected(Objective):
    """An objective whose embedding is a projector head on the backbone."""

    projector: nn.Module

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))

    def trained_head(self) -> nn.Module:
        return self.projector

    def _embedded_views(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of the two views, computed in one pass: (B, d) each."""
        v1, v2 = self._views(batch)
        z1, z2 = self.embed(torch.cat([v1, v2])).chunk(2)
        return z1, z2


class Supervised(Objective):
    """Cross-entropy of a linear classifier on the backbone features."""

    family = "supervised"
    needs_views = False

    def __init__(self, backbone: nn.Module, n_classes: int = 10) -> None:
        super().__init__(backbone)
        self.classifier = nn.Linear(self.feature_dim, n_classes)

    def trained_head(self) -> nn.Module:
        return self.classifier

    def forward(self, batch: Batch) -> LossOutput:
        logits = self.classifier(self.backbone(batch.images))
        loss = F.cross_entropy(logits, batch.labels)
        acc = (logits.argmax(1) == batch.labels).float().mean()
        return LossOutput(loss, {"train_accuracy": float(acc)})


class SupervisedAugmented(Supervised):
    """Cross-entropy on both augmented views the SSL objectives see (mean over the 2B images).

    The baseline that separates the effect of the objective from that of the
    augmentations: same classifier as :class:`Supervised`, same views as SimCLR.
    """

    needs_views = True

    def forward(self, batch: Batch) -> LossOutput:
        v1, v2 = self._views(batch)
        labels = torch.cat([batch.labels, batch.labels])
        logits = self.classifier(self.backbone(torch.cat([v1, v2])))
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        return LossOutput(loss, {"train_accuracy": float(acc)})


class SimCLR(_Projected):
    """NT-Xent on projections of two views (Chen et al., 2020)."""

    family = "contrastive"

    def __init__(self, backbone: nn.Module, proj_dim: int = 128, hidden: int = 512,
                 temperature: float = 0.5) -> None:
        super().__init__(backbone)
        self.projector = mlp_head(self.feature_dim, hidden, proj_dim)
        self.temperature = temperature

    def forward(self, batch: Batch) -> LossOutput:
        z1, z2 = self._embedded_views(batch)
        return LossOutput(nt_xent(z1, z2, self.temperature))


class MoCo(_Projected):
    """MoCo v2: momentum key encoder and a queue of negatives (He et al.; Chen et al., 2020)."""

    family = "contrastive"
    queue: torch.Tensor
    queue_ptr: torch.Tensor

    def __init__(self, backbone: nn.Module, proj_dim: int = 128, hidden: int = 512,
                 temperature: float = 0.2, queue_size: int = 4096, momentum: float = 0.99) -> None:
        super().__init__(backbone)
        self.projector = mlp_head(self.feature_dim, hidden, proj_dim)
        self.key_backbone = frozen_copy(backbone)
        self.key_projector = frozen_copy(self.projector)
        self.temperature, self.momentum = temperature, momentum
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, proj_dim, generator=gen), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def forward(self, batch: Batch) -> LossOutput:
        v1, v2 = self._views(batch)
        q = self.embed(torch.cat([v1, v2]))
        with torch.no_grad():
            k = self.key_projector(self.key_backbone(torch.cat([v2, v1])))
        loss = info_nce_queue(q, k, self.queue.clone(), self.temperature)
        self._enqueue(F.normalize(k[: len(v1)], dim=1))
        return LossOutput(loss)

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        size = self.queue.shape[0]
        ptr = int(self.queue_ptr)
        idx = (torch.arange(len(keys), device=self.queue.device) + ptr) % size
        self.queue[idx] = keys
        self.queue_ptr.fill_((ptr + len(keys)) % size)

    def after_step(self, step: int, total_steps: int) -> None:
        ema_update(self.key_backbone, self.backbone, self.momentum)
        ema_update(self.key_projector, self.projector, self.momentum)


class BYOL(_Projected):
    """BYOL (Grill et al., 2020): predict an EMA target's projection of the other view.

    Collapse switches: ``predictor=False`` (no predictor), ``ema=False`` (the target is
    a copy of the online network at every step, tau = 0).
    """

    family = "self-distillation"

    def __init__(self, backbone: nn.Module, proj_dim: int = 128, hidden: int = 512,
                 tau_base: float = 0.99, predictor: bool = True, ema: bool = True) -> None:
        super().__init__(backbone)
        self.projector = mlp_head(self.feature_dim, hidden, proj_dim)
        self.predictor = mlp_head(proj_dim, hidden, proj_dim) if predictor else nn.Identity()
        self.target_backbone = frozen_copy(backbone)
        self.target_projector = frozen_copy(self.projector)
        self.tau_base, self.ema, self.tau = tau_base, ema, tau_base

    def forward(self, batch: Batch) -> LossOutput:
        v1, v2 = self._views(batch)
        p = self.predictor(self.embed(torch.cat([v1, v2])))
        with torch.no_grad():
            z = self.target_projector(self.target_backbone(torch.cat([v2, v1])))
        loss = 2.0 + 2.0 * negative_cosine(p, z)  # = mean of 2 - 2 cos over both directions
        return LossOutput(loss, {"tau": self.tau})

    def schedule(self, step: int, total_steps: int) -> None:
        self.tau = cosine_momentum(self.tau_base, step, total_steps) if self.ema else 0.0

    def after_step(self, step: int, total_steps: int) -> None:
        self.schedule(step, total_steps)
        ema_update(self.target_backbone, self.backbone, self.tau)
        ema_update(self.target_projector, self.projector, self.tau)


class SimSiam(_Projected):
    """SimSiam (Chen & He, 2021): symmetric negative cosine with a stop-gradient.

    Collapse switches: ``stop_gradient=False``, ``predictor=False``. The paper ends the
    projector with BatchNorm; that is off by default here (``output_bn``): after an
    affine-free BatchNorm a constant embedding becomes 0 and scores cosine 0, so complete
    collapse is not a minimum and, in short CPU runs, training without the stop-gradient
    only loses dimensions; without it the collapse the paper reports (normalised std of
    the embeddings -> 0) appears within a few hundred steps.
    """

    family = "self-distillation"

    def __init__(self, backbone: nn.Module, proj_dim: int = 128, hidden: int = 512,
                 pred_hidden: int = 64, stop_gradient: bool = True, predictor: bool = True,
                 output_bn: bool = False) -> None:
        super().__init__(backbone)
        self.projector = mlp_head(self.feature_dim, hidden, proj_dim, last_bn=output_bn)
        self.predictor = mlp_head(proj_dim, pred_hidden, proj_dim) if predictor else nn.Identity()
        self.stop_gradient = stop_gradient

    def forward(self, batch: Batch) -> LossOutput:
        v1, v2 = self._views(batch)
        z = self.embed(torch.cat([v1, v2]))
        p = self.predictor(z)
        z1, z2 = z.chunk(2)
        p1, p2 = p.chunk(2)
        if self.stop_gradient:
            z1, z2 = z1.detach(), z2.detach()
        loss = 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)
        return LossOutput(loss)


class DINO(Objective):
    """DINO (Caron et al., 2021): an EMA teacher with centering and sharpening.

    The teacher temperature warms up linearly from ``teacher_temp_start`` to
    ``teacher_temp`` over ``warmup_fraction`` of training. Collapse switches:
    ``centering=False``; ``sharpening=False`` (teacher temperature 1, no sharpening).
    Logs the teacher's mean entropy and the teacher-student KL divergence.
    """

    family = "self-distillation"
    center: torch.Tensor

    def __init__(self, backbone: nn.Module, out_dim: int = 1024, hidden: int = 512, bottleneck: int = 64,
                 student_temp: float = 0.1, teacher_temp: float = 0.07, teacher_temp_start: float = 0.04,
                 warmup_fraction: float = 0.3, center_momentum: float = 0.9, tau_base: float = 0.996,
                 centering: bool = True, sharpening: bool = True) -> None:
        super().__init__(backbone)
        self.head = nn.Sequential(mlp_head(self.feature_dim, hidden, bottleneck), _L2Norm(),
                                       nn.Linear(bottleneck, out_dim, bias=False))
        self.teacher_backbone = frozen_copy(backbone)
        self.teacher_head = frozen_copy(self.head)
        self.register_buffer("center", torch.zeros(out_dim))
        self.student_temp, self.teacher_temp_end, self.teacher_temp_start = student_temp, teacher_temp, \
            teacher_temp_start
        self.warmup_fraction, self.center_momentum, self.tau_base = warmup_fraction, center_momentum, tau_base
        self.centering, self.sharpening = centering, sharpening
        self.teacher_temp = teacher_temp_start if sharpening else 1.0

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def trained_head(self) -> nn.Module:
        return self.head[0]

    def forward(self, batch: Batch) -> LossOutput:
        v1, v2 = self._views(batch)
        n = len(v1)
        student = self.embed(torch.cat([v1, v2])).reshape(2, n, -1)
        with torch.no_grad():
            teacher = self.teacher_head(self.teacher_backbone(torch.cat([v1, v2]))).reshape(2, n, -1)
        center = self.center
        loss = dino_loss(student, teacher, center, self.student_temp, self.teacher_temp, self.centering)
        with torch.no_grad():
            t = teacher - center if self.centering else teacher
            t_prob = F.softmax(t / self.teacher_temp, dim=-1)
            s_log = F.log_softmax(student / self.student_temp, dim=-1)
            entropy = -(t_prob * torch.log(t_prob.clamp_min(1e-30))).sum(-1).mean()
            kl = (t_prob * (torch.log(t_prob.clamp_min(1e-30)) - s_log)).sum(-1).mean()
            if self.centering and self.training:  # evaluation never moves the centre
                batch_center = teacher.reshape(2 * n, -1).mean(0)
                self.center.mul_(self.center_momentum).add_(batch_center,
                                                            alpha=1 - self.center_momentum)
        return LossOutput(loss, {"teacher_entropy": float(entropy), "teacher_student_kl": float(kl),
                                 "teacher_temp": self.teacher_temp})

    def schedule(self, step: int, total_steps: int) -> None:
        warm = max(1, int(self.warmup_fraction * total_steps))
        if self.sharpening:
            frac = min(step / warm, 1.0)
            span = self.teacher_temp_end - self.teacher_temp_start
            self.teacher_temp = self.teacher_temp_start + frac * span

    def after_step(self, step: int, total_steps: int) -> None:
        self.schedule(step, total_steps)
        tau = cosine_momentum(self.tau_base, step, total_steps)
        ema_update(self.teacher_backbone, self.backbone, tau)
        ema_update(self.teacher_head, self.head, tau)


class _L2Norm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1)


class VICReg(_Projected):
    """VICReg (Bardes et al., 2022). Collapse switch: ``variance=False, covariance=False``
    leaves the invariance term only."""

    family = "redundancy-reduction"

    def __init__(self, backbone: nn.Module, proj_dim: int = 512, hidden: int = 512, sim_coeff: float = 25.0,
                 std_coeff: float = 25.0, cov_coeff: float = 1.0, variance: bool = True,
                 covariance: bool = True) -> None:
        super().__init__(backbone)
        self.projector = mlp_head(self.feature_dim, hidden, proj_dim)
        self.coeffs = (sim_coeff, std_coeff if variance else 0.0, cov_coeff if covariance else 0.0)

    def forward(self, batch: Batch) -> LossOutput:
        z1, z2 = self._embedded_views(batch)
        loss, terms = vicreg_loss(z1, z2, *self.coeffs)
        return LossOutput(loss, {k: float(v.detach()) for k, v in terms.items()})


class BarlowTwins(_Projected):
    """Barlow Twins (Zbontar et al., 2021)."""

    family = "redundancy-reduction"

    def __init__(self, backbone: nn.Module, proj_dim: int = 512, hidden: int = 512,
                 lambd: float = 5e-3) -> None:
        super().__init__(backbone)
        self.projector = mlp_head(self.feature_dim, hidden, proj_dim)
        self.lambd = lambd

    def forward(self, batch: Batch) -> LossOutput:
        z1, z2 = self._embedded_views(batch)
        return LossOutput(barlow_twins_loss(z1, z2, self.lambd))


class MAE(Objective):
    """Masked image modelling (He et al., 2022), adapted to MLP and CNN backbones.

    The image is cut into a grid of ``patch x patch`` patches (7 x 7 of 4 x 4 on 28 x 28);
    a random ``mask_ratio`` of them (the same count in every image, drawn per image from the
    step's generator) is hidden. A ViT encoder drops the hidden patches; an MLP or CNN cannot
    drop inputs, so here the hidden patches are set to zero and the backbone sees the whole
    image (as SimMIM and ConvMAE do). A small decoder (``Linear -> BatchNorm -> ReLU ->
    Linear``, the other heads' shape) maps the backbone features to every pixel, and the loss
    is the mean squared error on the hidden patches only (:func:`masked_patch_mse`).
    ``trained_head`` is the decoder; ``embed`` the backbone features of unmasked images.
    """

    family = "masked-modelling"
    needs_views = False

    def __init__(self, backbone: nn.Module, patch: int = 4, mask_ratio: float = 0.75, hidden: int = 512,
                 image_size: int = 28, channels: int = 1, normalize_target: bool = False) -> None:
        super().__init__(backbone)
        if image_size % patch or not 0 < mask_ratio < 1:
            raise InputValueError(message("MAE's `patch` / `mask_ratio`",
                                          "a patch size dividing the image and a ratio in (0, 1)",
                                          f"patch {patch}, image {image_size}, ratio {mask_ratio}",
                                          "Use e.g. patch=4, mask_ratio=0.75 for 28x28 images."))
        self.patch, self.mask_ratio, self.normalize_target = patch, mask_ratio, normalize_target
        self.n_patches = (image_size // patch) ** 2
        self.decoder = mlp_head(self.feature_dim, hidden, channels * image_size * image_size)

    def trained_head(self) -> nn.Module:
        return self.decoder

    def random_mask(self, batch: int, generator: torch.Generator | None,
                    device: torch.device) -> torch.Tensor:
        """(batch, L) bool, True on ``round(mask_ratio * L)`` patches per image, drawn uniformly."""
        hidden = max(1, min(self.n_patches - 1, round(self.mask_ratio * self.n_patches)))
        noise = torch.rand(batch, self.n_patches, generator=generator)
        order = noise.argsort(dim=1)
        mask = torch.zeros(batch, self.n_patches, dtype=torch.bool)
        mask.scatter_(1, order[:, :hidden], True)
        return mask.to(device)

    def forward(self, batch: Batch) -> LossOutput:
        x = batch.images
        b, c, h, w = x.shape
        mask = self.random_mask(b, batch.generator, x.device)
        side = h // self.patch
        pixel_mask = mask.reshape(b, 1, side, 1, side, 1).expand(b, c, side, self.patch, side, self.patch)
        visible = x * (~pixel_mask.reshape(b, c, h, w)).to(x.dtype)
        prediction = self.decoder(self.backbone(visible)).reshape(b, c, h, w)
        loss = masked_patch_mse(patchify(prediction, self.patch), patchify(x, self.patch), mask,
                                self.normalize_target)
        return LossOutput(loss, {"masked_fraction": float(mask.float().mean())})


#: name -> (constructor, fixed keyword arguments); collapse variants included.
OBJECTIVES: dict[str, tuple[Callable[..., Objective], dict[str, Any]]] = {
    "supervised": (Supervised, {}),
    "supervised-aug": (SupervisedAugmented, {}),
    "simclr": (SimCLR, {}),
    "moco": (MoCo, {}),
    "byol": (BYOL, {}),
    "simsiam": (SimSiam, {}),
    "dino": (DINO, {}),
    "vicreg": (VICReg, {}),
    "barlow": (BarlowTwins, {}),
    "mae": (MAE, {}),
    "simsiam-no-stopgrad": (SimSiam, {"stop_gradient": False}),
    "simsiam-no-predictor": (SimSiam, {"predictor": False}),
    "byol-no-predictor": (BYOL, {"predictor": False}),
    "byol-no-ema": (BYOL, {"ema": False}),
    "dino-no-centering": (DINO, {"centering": False}),
    "dino-no-sharpening": (DINO, {"sharpening": False}),
    "vicreg-invariance-only": (VICReg, {"variance": False, "covariance": False}),
}


def build_objective(name: str, backbone: nn.Module, **options: Any) -> Objective:
    """The objective `name` (see ``OBJECTIVES``) around `backbone`, with extra options."""
    if name not in OBJECTIVES:
        raise InputValueError(message("`objective`", f"one of {sorted(OBJECTIVES)}", repr(name),
                                      "Pick a listed objective (collapse variants end in -no-...)."))
    make, fixed = OBJECTIVES[name]
    return make(backbone, **{**fixed, **options})
