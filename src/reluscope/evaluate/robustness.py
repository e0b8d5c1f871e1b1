"""Adversarial accuracy under projected gradient descent (Madry et al., 2018).

Patel & Montúfar (2024) bound the total variation of a network over the data by its local
complexity and relate both to adversarial robustness; this module gives the robust side:
the accuracy left when every test input may move within an l-infinity or l2 ball of
radius ``eps`` (pixels in [0, 1], optionally kept in that box), found by ``steps`` signed
(l-infinity) or normalised (l2) gradient steps on the cross-entropy from a random start in
the ball. Written with plain torch ops; randomness only from the generator passed in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reluscope._validation import message
from reluscope.errors import InputValueError


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    flat = delta.flatten(1)
    scale = (eps / flat.norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
    return (flat * scale[:, None]).reshape(delta.shape)


def pgd_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm: str = "linf",
               steps: int = 10, step_size: float | None = None, box: tuple[float, float] | None = (0.0, 1.0),
               generator: torch.Generator | None = None, random_start: bool = True) -> torch.Tensor:
    """Inputs within `eps` of `x` (in `norm`) that maximise the cross-entropy of `model`.

    Parameters
    ----------
    model : nn.Module
        Outputs (N, C) logits; evaluated in its current mode (call ``eval()`` first).
    x : (N, ...) inputs; y : (N,) int labels
    eps : float
        Radius of the ball.
    norm : {"linf", "l2"}
    steps : int
    step_size : float, optional
        Default ``2.5 * eps / steps`` (Madry et al.).
    box : (low, high) or None
        Keep inputs in this box (pixel range); None: no box.
    generator : torch.Generator, optional
        Draws the random start.

    Returns
    -------
    (N, ...) adversarial inputs (detached).
    """
    if norm not in ("linf", "l2"):
        raise InputValueError(message("`norm` of pgd_attack", "'linf' or 'l2'", repr(norm), "Pick one."))
    if not eps >= 0:
        raise InputValueError(message("`eps` of pgd_attack", "a radius >= 0", repr(eps), "e.g. 0.1."))
    alpha = 2.5 * eps / max(steps, 1) if step_size is None else step_size
    delta = torch.zeros_like(x)
    if random_start and eps > 0:
        start = torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1
        delta = _project(start.to(x.device) * eps, eps, norm)
    for _ in range(steps):
        delta.requires_grad_(True)
        point = x + delta
        if box is not None:
            point = point.clamp(*box)
        loss = F.cross_entropy(model(point), y)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            if norm == "linf":
                step = grad.sign()
            else:
                step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(-1, *[1] * (x.dim() - 1))
            delta = _project(delta + alpha * step, eps, norm)
        delta = delta.detach()
    out = x + delta
    return (out.clamp(*box) if box is not None else out).detach()


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, **kwargs: object
                    ) -> float:
    """Share of inputs still classified correctly after :func:`pgd_attack` (keyword arguments
    go to it). A sample counts as robust only if it was correct before the attack too."""
    was_training = model.training
    model.eval()
    try:
        adversarial = pgd_attack(model, x, y, eps, **kwargs)  # type: ignore[arg-type]
        with torch.no_grad():
            clean = model(x).argmax(1) == y
            attacked = model(adversarial).argmax(1) == y
    finally:
        model.train(was_training)
    return float((clean & attacked).double().mean())
