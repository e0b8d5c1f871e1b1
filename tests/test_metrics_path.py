"""Path measures: exact integrals against quadrature and hand-solved cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import reluscope as rs
from conftest import random_mlp
from reluscope import metrics


def test_integral_of_abs_affine_matches_quadrature():
    rng = np.random.default_rng(0)
    e0, e1 = rng.normal(size=200), rng.normal(size=200)
    length = rng.uniform(0.1, 3.0, size=200)
    s = np.linspace(0.0, 1.0, 200001)
    dense = np.abs(e0[:, None] + (e1 - e0)[:, None] * s[None, :])
    quad = np.trapezoid(dense, s, axis=1) * length
    np.testing.assert_allclose(metrics.integral_abs_affine(e0, e1, length), quad, rtol=1e-6, atol=1e-9)
    # the published shortcut |a| + |b| t overestimates whenever the sign changes
    wrong = length * (np.abs(e0) + np.abs(e1 - e0) / 2)
    flips = e0 * e1 < 0
    assert (wrong[flips] > quad[flips]).all()


def one_relu() -> nn.Module:
    net = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1)).double()
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.zero_()
        net[2].weight.fill_(1.0)
        net[2].bias.zero_()
    return net


def test_relu_on_a_segment_hand_solved():
    part = rs.path_regions(one_relu(), rs.Path.segment(torch.tensor([-1.0]), torch.tensor([1.0])))
    m = metrics.path_metrics(part)
    assert m["n_regions"].tolist() == [2] and m["n_boundaries"].tolist() == [1.0]
    assert m["length"] == pytest.approx([2.0])
    assert m["boundary_density"] == pytest.approx([0.5])
    assert m["total_variation"][0] == pytest.approx([1.0])
    # |relu(x) - (x + 1) / 2| integrates to 1/4 on each half
    assert m["abs_deviation"][0] == pytest.approx([0.5])
    assert m["mean_abs_deviation"][0] == pytest.approx([0.25])
    assert m["region_length_mean"] == pytest.approx([1.0])


def test_closed_loop_deviation_is_from_the_start_value():
    loop = rs.Path.polyline(torch.tensor([[-1.0], [1.0]]), closed=True)  # there and back
    m = metrics.path_metrics(rs.path_regions(one_relu(), loop))
    # g = f(-1) = 0 all along; |relu| integrates to 1/2 each way
    assert m["abs_deviation"][0] == pytest.approx([1.0])
    assert m["total_variation"][0] == pytest.approx([2.0])
    assert m["n_regions"].tolist() == [2]  # positive around the turn; negative across the joint


def test_deviation_and_variation_match_dense_sampling_on_a_random_mlp():
    model = random_mlp(2, [16, 16, 8], d_in=6)
    gen = torch.Generator().manual_seed(3)
    points = torch.randn(3, 6, generator=gen, dtype=torch.float64) * 2
    path = rs.Path.polyline(points)
    part = rs.path_regions(model, path)
    m = metrics.path_metrics(part)
    arc = np.linspace(0.0, path.length, 400001)
    with torch.no_grad():
        f = model.double()(path.at(torch.from_numpy(arc))).numpy()
    g = f[0] + (f[-1] - f[0]) * (arc / path.length)[:, None]
    quad = np.trapezoid(np.abs(f - g), arc, axis=0)
    np.testing.assert_allclose(m["abs_deviation"][0], quad, rtol=1e-4)
    sampled_tv = np.abs(np.diff(f, axis=0)).sum(0)  # misses the turns between samples
    assert (m["total_variation"][0] >= sampled_tv - 1e-12).all()
    np.testing.assert_allclose(m["total_variation"][0], sampled_tv, rtol=1e-4)
    summary = metrics.path_summary(part)
    assert summary["path_count"] == 1.0
    assert summary["path_n_regions"] == float(m["n_regions"][0])
    assert metrics.region_lengths(part).sum() == pytest.approx(path.length)


def test_path_metrics_refuse_what_is_not_a_partition1d():
    with pytest.raises(TypeError, match="`part` of path_metrics must be a Partition1D.*path_regions"):
        metrics.path_metrics("nope")  # type: ignore[arg-type]


def test_a_batch_of_paths_as_a_table_matches_its_measures():
    pytest.importorskip("pandas")
    model = random_mlp(4, [12, 12], d_in=5)  # 3 outputs
    gen = torch.Generator().manual_seed(1)
    pts = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    paths = [rs.Path.segment(pts[0], pts[1]), rs.Path.polyline(pts[1:]),
             rs.Path.polyline(pts, closed=True)]
    part = rs.path_regions(model, paths)
    m = metrics.path_metrics(part)
    table = part.to_frame()
    assert list(table["path"]) == [0, 1, 2] and list(table["closed"]) == [False, False, True]
    np.testing.assert_array_equal(table["n_regions"], m["n_regions"])
    np.testing.assert_allclose(table["mean_abs_deviation"], m["mean_abs_deviation"].mean(axis=1))
    long = part.to_frame(per_output=True)
    assert len(long) == 3 * 3 and list(long["output"][:3]) == [0, 1, 2]
    row = long[(long["path"] == 2) & (long["output"] == 1)].iloc[0]
    assert row["total_variation"] == m["total_variation"][2, 1] and row["length"] == m["length"][2]
