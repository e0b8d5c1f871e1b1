"""Local complexity: closed forms on one layer, the probe estimator, frames, and Crofton."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import reluscope as rs
from conftest import random_mlp
from reluscope import metrics


def one_layer(seed: int = 0, d: int = 5, width: int = 30) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(width, d, generator=gen, dtype=torch.float64)
    b = 0.3 * torch.randn(width, generator=gen, dtype=torch.float64)
    net = nn.Sequential(nn.Linear(d, width), nn.ReLU(), nn.Linear(width, 2)).double()
    with torch.no_grad():
        net[0].weight.copy_(w)
        net[0].bias.copy_(b)
    return net, w, b


def test_ball_and_smooth_match_their_closed_forms_on_one_layer():
    net, w, b = one_layer()
    x = torch.randn(50, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    z = (x @ w.T + b).numpy()
    norm = w.norm(dim=1).numpy()
    ball = metrics.ball_lc(net, x, 0.2)
    np.testing.assert_array_equal(ball.per_site[:, 0], (np.abs(z) <= 0.2 * norm).sum(1))
    sigma = 0.3
    smooth = metrics.smooth_lc(net, x, sigma)
    phi = np.exp(-0.5 * (z / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(smooth.per_site[:, 0], (norm * phi).sum(1), rtol=1e-12)
    # output Jacobian: W2 diag(active) W1
    act = (z > 0).astype(np.float64)
    jac = np.einsum("ok,nk,kd->nod", net[2].weight.detach().numpy(), act, w.numpy())
    np.testing.assert_allclose(smooth.gradient_norm, np.linalg.norm(jac, axis=(1, 2)), rtol=1e-12)
    # the probe estimator converges to the exact norms
    approx = metrics.smooth_lc(net, x, sigma, probes=4000)
    np.testing.assert_allclose(approx.total.mean(), smooth.total.mean(), rtol=0.03)
    assert smooth.summary()["lc_smooth_total"] == pytest.approx(smooth.total.mean())


def test_cross_polytope_matches_its_closed_form_with_given_frames():
    net, w, b = one_layer(2)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(40, 5, generator=gen, dtype=torch.float64)
    frames = metrics.random_frames(40, (5,), 3, gen)
    assert torch.allclose(frames @ frames.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(40, 3, 3))
    lc = metrics.cross_polytope_lc(net, x, 0.4, frames=frames)
    z = (x @ w.T + b).numpy()
    reach = 0.4 * np.abs(np.einsum("kd,npd->npk", w.numpy(), frames.numpy())).max(axis=1)
    np.testing.assert_array_equal(lc.per_site[:, 0], (np.abs(z) < reach).sum(1))
    assert lc.params == {"radius": 0.4, "n_directions": 3}


def test_frames_are_fresh_per_point_and_leave_the_global_seed_alone():
    net, _, _ = one_layer()
    state = torch.random.get_rng_state()
    x = torch.zeros(2, 5, dtype=torch.float64)  # the same point twice
    a = metrics.cross_polytope_lc(net, x, 0.5, 2, generator=torch.Generator().manual_seed(7))
    b = metrics.cross_polytope_lc(net, x, 0.5, 2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), state)
    np.testing.assert_array_equal(a.per_site, b.per_site)
    frames = metrics.random_frames(2, (5,), 2, torch.Generator().manual_seed(7))
    assert not torch.allclose(frames[0], frames[1])


def test_float32_vertices_agree_with_float64():
    model = random_mlp(1, [32, 32], d_in=6)
    x = torch.randn(30, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = metrics.cross_polytope_lc(model, x, 0.3, 4)
    b = metrics.cross_polytope_lc(model, x, 0.3, 4, dtype=torch.float32)
    assert np.abs(a.per_site - b.per_site).sum() <= 2


def test_crofton_crossings_per_length_match_the_ball_estimate():
    """On random lines, boundary crossings per unit length = (2/pi) * boundary density,
    and the ball count at a point is about 2 eps * boundary density."""
    model = random_mlp(5, [24, 24], d_in=2)
    rng = np.random.default_rng(0)
    centres = rng.uniform(-1, 1, size=(3000, 2))
    eps = 0.005
    ball = metrics.ball_lc(model, centres, eps)
    theta = rng.uniform(0, np.pi, size=len(centres))
    half = 0.05 * np.stack([np.cos(theta), np.sin(theta)], 1)
    paths = [rs.Path.segment(torch.from_numpy(c - h), torch.from_numpy(c + h))
             for c, h in zip(centres, half, strict=True)]
    part = rs.path_regions(model, paths)
    crossings = part.boundary_count[part.boundary_site >= 0].sum()
    per_length = crossings / (0.1 * len(paths))
    density_from_ball = ball.total.mean() / (2 * eps)
    assert per_length == pytest.approx(2 / np.pi * density_from_ball, rel=0.08)


def test_bad_arguments_get_clear_errors():
    net, _, _ = one_layer()
    x = torch.zeros(3, 5)
    with pytest.raises(ValueError, match="`radius` of cross_polytope_lc must be a positive"):
        metrics.cross_polytope_lc(net, x, -1.0)
    with pytest.raises(ValueError, match=r"`n_directions` of cross_polytope_lc .* in \[1, 5\]"):
        metrics.cross_polytope_lc(net, x, 0.1, 25)
    with pytest.raises(ValueError, match="`points` of ball_lc must be a batch"):
        metrics.ball_lc(net, torch.zeros(0, 5), 0.1)
    with pytest.raises(ValueError, match="`probes` of smooth_lc must be a positive.*None for exact"):
        metrics.smooth_lc(net, x, 0.1, probes=0)
