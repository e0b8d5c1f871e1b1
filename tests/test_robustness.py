"""PGD against a hand-solved linear model, where the worst case is known in closed form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reluscope.evaluate.robustness import pgd_attack, robust_accuracy


def linear_model(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(6, 2).double()


def closed_form_robust(model: nn.Linear, x: torch.Tensor, y: torch.Tensor, eps: float,
                       norm: str) -> torch.Tensor:
    """Two classes, f = W x + b: the margin of the true class y over the other falls by at most
    eps * ||w_y - w_other||_dual (l1 for l-infinity, l2 for l2), reached at a vertex / along w."""
    w, b = model.weight.detach(), model.bias.detach()
    other = 1 - y
    direction = w[y] - w[other]  # (N, d)
    margin = (x * direction).sum(1) + b[y] - b[other]
    dual = direction.abs().sum(1) if norm == "linf" else direction.norm(dim=1)
    return margin - eps * dual > 0


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_finds_exactly_the_closed_form_worst_case_of_a_linear_model(norm):
    model = linear_model()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(400, 6, generator=gen, dtype=torch.float64)
    y = model(x).argmax(1).detach()  # all correct before the attack
    for eps in (0.05, 0.2, 0.5):
        expected = closed_form_robust(model, x, y, eps, norm)
        # no box, a full step to the boundary of the ball: the linear worst case is reached
        adversarial = pgd_attack(model, x, y, eps, norm=norm, steps=3, step_size=2 * eps, box=None,
                                 random_start=False)
        survived = model(adversarial).argmax(1) == y
        assert torch.equal(survived, expected), (norm, eps)
        moved = (adversarial - x).abs().max() if norm == "linf" else (adversarial - x).norm(dim=1).max()
        assert float(moved) <= eps + 1e-12
        assert robust_accuracy(model, x, y, eps, norm=norm, steps=3, step_size=2 * eps, box=None,
                               random_start=False) == pytest.approx(float(expected.double().mean()))


def test_pgd_keeps_the_box_and_refuses_bad_arguments():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(8, dtype=torch.long)
    adversarial = pgd_attack(model, x, y, 0.3, generator=torch.Generator().manual_seed(2))
    assert float(adversarial.min()) >= 0 and float(adversarial.max()) <= 1
    assert float((adversarial - x).abs().max()) <= 0.3 + 1e-6
    with pytest.raises(ValueError, match="'linf' or 'l2'"):
        pgd_attack(model, x, y, 0.1, norm="l1")
    with pytest.raises(ValueError, match="radius"):
        pgd_attack(model, x, y, -1.0)
