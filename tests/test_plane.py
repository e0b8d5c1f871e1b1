import numpy as np
import pytest
import torch

import reluscope as rs


def test_through_is_orthonormal_and_contains_points():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 28, 28, generator=gen, dtype=torch.float64)
    plane = rs.Plane.through(x[0], x[1], x[2], margin=0.2)
    b = plane.basis.reshape(2, -1)
    assert torch.allclose(b @ b.T, torch.eye(2, dtype=torch.float64), atol=1e-12)
    coords = plane.coordinates(x)
    back = plane.to_input(coords)
    assert torch.allclose(back, x, atol=1e-12)
    # origin at the centroid, square of half-width 1.2 * max |coordinate|
    assert torch.allclose(coords.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    half = 1.2 * float(coords.abs().max())
    assert np.allclose(plane.extent, ((-half, half), (-half, half)), rtol=1e-12)
    assert plane.area == pytest.approx(4 * half * half)


def test_around_is_reproducible_and_orthonormal():
    x = torch.zeros(10)
    p1 = rs.Plane.around(x, 2.0, torch.Generator().manual_seed(3))
    p2 = rs.Plane.around(x, 2.0, torch.Generator().manual_seed(3))
    assert torch.equal(p1.basis, p2.basis)
    b = p1.basis
    assert torch.allclose(b @ b.T, torch.eye(2, dtype=torch.float64), atol=1e-12)
    assert p1.extent == ((-2.0, 2.0), (-2.0, 2.0))


def test_convex_polygon_domain_is_oriented_counter_clockwise():
    tri = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # clockwise
    plane = rs.Plane(torch.zeros(2), torch.eye(2), ((0, 1), (0, 1)), tri)
    assert plane.area == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (dict(origin=torch.zeros(3), basis=torch.zeros(2, 4), extent=((0, 1), (0, 1))),
         r"`basis` of Plane must be of shape \(2, 3\)"),
        (dict(origin=torch.zeros(3), basis=torch.ones(2, 3), extent=((0, 1), (0, 1))),
         "two linearly independent directions"),
        (dict(origin=torch.zeros(2), basis=torch.eye(2), extent=((1, 0), (0, 1))),
         "min < max"),
        (dict(origin=torch.zeros(2), basis=torch.eye(2), extent="big"),
         "pair of intervals"),
        (dict(origin=torch.tensor([0.0, float("nan")]), basis=torch.eye(2), extent=((0, 1), (0, 1))),
         "finite"),
        (dict(origin=torch.zeros(2), basis=torch.eye(2), extent=((0, 1), (0, 1)),
              domain=[[0, 0], [1, 0], [0.2, 0.2], [0, 1]]), "convex"),
    ],
)
def test_plane_rejects_bad_input(kwargs, pattern):
    with pytest.raises(rs.ReluscopeError, match=pattern):
        rs.Plane(**kwargs)


def test_through_rejects_collinear_points():
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    with pytest.raises(rs.InputValueError, match=r"collinear \(rank 1\).*not on one line"):
        rs.Plane.through(x[0], x[1], x[2])
    with pytest.raises(ValueError, match="same shape"):
        rs.Plane.through(torch.zeros(3), torch.ones(3), torch.ones(4))
    with pytest.raises(rs.InputValueError, match="margin"):
        rs.Plane.through(torch.eye(3)[0], torch.eye(3)[1], torch.eye(3)[2], margin=-1)


def test_around_rejects_bad_radius_and_generator():
    with pytest.raises(rs.InputValueError, match="positive"):
        rs.Plane.around(torch.zeros(3), 0.0)
    with pytest.raises(TypeError, match="torch.Generator"):
        rs.Plane.around(torch.zeros(3), 1.0, generator=42)  # type: ignore[arg-type]
