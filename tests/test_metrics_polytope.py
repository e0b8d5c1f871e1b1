"""Polytope metrics on partitions with known answers, the decision boundary and anchors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import reluscope as rs
from conftest import linear_relu, random_mlp, square
from reluscope import metrics


def whole(domain=None, extent=((0.0, 1.0), (0.0, 1.0))) -> rs.Partition2D:
    """A single region: a dead neuron never cuts the domain."""
    plane = rs.Plane(torch.zeros(2), torch.eye(2), extent, domain)
    return rs.slice_regions(linear_relu([[0.0, 0.0]], [-1.0]), plane)


def test_unit_square_metrics():
    part = whole()
    ecc, axis = metrics.eccentricities(part)
    assert part.n_regions == 1
    np.testing.assert_allclose(ecc, [0.0], atol=1e-7)
    np.testing.assert_allclose(axis, [1.0])
    np.testing.assert_allclose(metrics.perimeters(part), [4.0])
    np.testing.assert_allclose(metrics.isoperimetric_quotients(part), [np.pi / 4])
    _area, centroid, cov, _ = metrics.second_moments(part)
    np.testing.assert_allclose(centroid, [[0.5, 0.5]])
    np.testing.assert_allclose(cov[0], np.eye(2) / 12, atol=1e-15)
    stats = metrics.splinecam_statistics(part)
    assert stats["sc_nregions"] == 1 and stats["sc_nverts"] == 4
    np.testing.assert_allclose(stats["sc_ecc_m"], np.sqrt(2))
    np.testing.assert_allclose(stats["sc_centr_m"], np.sqrt(0.5))


def test_rectangle_two_to_one_and_right_triangle_eccentricity():
    ecc, axis = metrics.eccentricities(whole(extent=((0.0, 2.0), (0.0, 1.0))))
    np.testing.assert_allclose(ecc, [np.sqrt(3) / 2])
    np.testing.assert_allclose(axis, [2.0])
    tri = whole(domain=np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    area, centroid, cov, _eig = metrics.second_moments(tri)
    np.testing.assert_allclose(area, [0.5])
    np.testing.assert_allclose(centroid, [[1 / 3, 1 / 3]])
    np.testing.assert_allclose(cov[0], [[1 / 18, -1 / 36], [-1 / 36, 1 / 18]], atol=1e-15)
    np.testing.assert_allclose(metrics.eccentricities(tri)[0], [np.sqrt(2 / 3)])
    equilateral = whole(domain=np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]]))
    np.testing.assert_allclose(metrics.eccentricities(equilateral)[0], [0.0], atol=1e-7)


def test_second_moments_match_shapely_and_sampling_on_a_real_partition():
    part = rs.slice_regions(random_mlp(0, [12, 12]), square(2.0))
    area, centroid, _, _ = metrics.second_moments(part)
    polys = part.to_shapely()
    import shapely

    np.testing.assert_allclose(area, shapely.area(polys), rtol=1e-9)
    cent = shapely.get_coordinates(shapely.centroid(polys))
    np.testing.assert_allclose(centroid, cent, atol=1e-9)
    np.testing.assert_allclose(metrics.perimeters(part), shapely.length(polys), rtol=1e-9)


def test_quadrants_boundary_distribution_and_anchors():
    part = rs.slice_regions(linear_relu([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0]), square())
    assert metrics.boundary_lengths(part) == {0: pytest.approx(4.0)}
    s = metrics.summary(part, anchors=[[0.5, 0.5], [-0.25, 0.5]], radius=0.6)
    assert s["n_regions"] == 4 and s["region_density"] == pytest.approx(1.0)
    assert s["area_gini"] == pytest.approx(0.0, abs=1e-12)
    assert s["area_entropy"] == pytest.approx(np.log(4))
    assert s["area_effective_number"] == pytest.approx(4.0)
    assert s["boundary_density"] == pytest.approx(1.0) and s["boundary_density_site0"] == pytest.approx(1.0)
    assert s["anchor0_area"] == pytest.approx(1.0)
    assert s["anchor0_boundary_distance"] == pytest.approx(0.5)
    assert s["anchor1_boundary_distance"] == pytest.approx(0.25)
    assert s["anchor0_regions_within"] == 3  # the diagonal quadrant is 0.707 away
    assert s["anchor1_regions_within"] == 4


def test_gini_of_known_distributions():
    assert metrics.gini(np.array([0.0, 0.0, 0.0, 1.0])) == pytest.approx(0.75)
    assert metrics.gini(np.ones(5)) == pytest.approx(0.0)


def test_decision_boundary_of_a_bent_line():
    # f0 - f1 = x + 0.5 relu(y): the boundary is x = 0 below the axis, x = -y/2 above
    plane = square()
    clean = nn.Sequential(nn.Linear(2, 1), nn.ReLU(), nn.Linear(1, 2)).double()
    with torch.no_grad():
        clean[0].weight.copy_(torch.tensor([[0.0, 1.0]]))
        clean[0].bias.zero_()
        clean[2].weight.copy_(torch.tensor([[0.5], [0.0]]))
        clean[2].bias.zero_()

    class Logits(nn.Module):  # f0 - f1 = x + 0.5 relu(y)
        def __init__(self) -> None:
            super().__init__()
            self.body = clean

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.body(z) + torch.stack([z[:, 0], torch.zeros_like(z[:, 0])], 1)

    part = rs.slice_regions(Logits(), plane)
    boundary = metrics.decision_boundary(part, Logits())
    assert boundary.length == pytest.approx(1.0 + np.sqrt(1.25))
    assert boundary.regions_crossed == 2
    assert set(map(tuple, boundary.classes.tolist())) == {(0, 1)}


def test_decision_boundary_agrees_with_a_grid_estimate():
    torch.manual_seed(1)
    model = random_mlp(7, [10, 10])
    plane = square(2.0)
    part = rs.slice_regions(model, plane)
    boundary = metrics.decision_boundary(part, model)
    # grid neighbours of different classes: a segment (dx, dy) separates about
    # (|dx| + |dy|) / h pairs of them
    n = 801
    g = np.linspace(-2, 2, n)
    pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    with torch.no_grad():
        cls = model.double()(torch.from_numpy(pts)).argmax(1).numpy().reshape(n, n)
    h = g[1] - g[0]
    changes = (cls[1:, :] != cls[:-1, :]).sum() + (cls[:, 1:] != cls[:, :-1]).sum()
    steps = np.abs(boundary.segments[:, 1] - boundary.segments[:, 0]).sum()
    assert changes * h == pytest.approx(steps, rel=0.01)
    assert boundary.regions_crossed > 0


def test_summary_refuses_what_is_not_a_partition():
    with pytest.raises(TypeError, match="`part` of summary must be a Partition2D"):
        metrics.summary("nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"shape \(K, 2\)"):
        metrics.anchor_metrics(whole(), [1.0, 2.0, 3.0])


def test_decision_boundary_refuses_bad_input():
    with pytest.raises(ValueError, match="`part` of decision_boundary must be a Partition2D"):
        metrics.decision_boundary("nope", nn.Linear(2, 2))  # type: ignore[arg-type]
    part = rs.slice_regions(random_mlp(0, [4]), square())

    class Pair(nn.Module):  # returns a tuple, not logits
        def __init__(self) -> None:
            super().__init__()
            self.body = random_mlp(0, [4])

        def forward(self, x):
            return self.body(x), x

    with pytest.raises(ValueError, match="output is one tensor of logits"):
        metrics.decision_boundary(part, Pair())
