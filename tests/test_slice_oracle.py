"""Brute-force oracle: activation patterns on a dense grid against the exact partition."""

import numpy as np
import pytest
import torch

import reluscope as rs
from conftest import grid_patterns, random_mlp, square

# every test runs with both ways the 2D engine finds chords


def _check_against_grid(slicer, model, plane, n):
    part = slicer(model, plane)
    pts, grid = grid_patterns(model, plane, n)
    region = part.region_of(pts)
    assert (region >= 0).all(), "every grid point falls in a region"
    recorded = np.concatenate([part.active(i) for i in range(len(part.sites))], axis=1)
    # each grid point's pattern is the pattern recorded for its region
    # (skip points within rounding of a boundary)
    same = (recorded[region] == grid).all(axis=1)
    assert same.mean() > 0.999
    distinct = len(np.unique(grid, axis=0))
    assert part.n_regions >= distinct
    return part, distinct


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_mlp_count_equals_grid_count(slicer, seed):
    model = random_mlp(seed, [4, 4])
    part, distinct = _check_against_grid(slicer, model, square(2.0), 500)
    # small nets: a 500 x 500 grid resolves every region with the one-per-pattern rule
    assert part.n_regions == distinct
    assert len(np.unique(np.concatenate([part.active(i) for i in range(2)], 1), axis=0)) \
        == part.n_regions, "a pattern is one convex region, never two"


def test_wider_mlp_grid_patterns_are_a_subset(slicer):
    model = random_mlp(5, [12, 12, 12])
    part, distinct = _check_against_grid(slicer, model, square(2.0), 400)
    assert part.verify(model).ok
    assert part.n_regions >= distinct > 50


def test_cnn_against_grid(slicer):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(2 * 2 * 2, 4), torch.nn.ReLU(),
                              torch.nn.Linear(4, 2)).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 6, 6, generator=gen)
    plane = rs.Plane.through(x[0], x[1], x[2], margin=0.5)
    part, _ = _check_against_grid(slicer, net, plane, 300)
    assert part.verify(net).ok
