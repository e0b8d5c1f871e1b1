"""Piecewise-linear units beyond ReLU (Hardtanh, ReLU6, clamp, PReLU, abs, maximum/minimum)
against an independent oracle: each unit's state read by plain torch hooks on a dense grid."""

import numpy as np
import pytest
import torch
from torch import nn

import reluscope as rs
from conftest import square


class Abs(nn.Module):
    def forward(self, z):
        return z.abs()


class Clamp(nn.Module):
    def forward(self, z):
        return torch.clamp(z, -0.3, 0.4)


class ClampMin(nn.Module):
    def forward(self, z):
        return z.clamp_min(0.2)


class MaxOfTwo(nn.Module):
    """``maximum`` (or ``minimum``) of two affine branches of the same input."""

    def __init__(self, width: int, lowest: bool = False) -> None:
        super().__init__()
        self.a, self.b, self.lowest = nn.Linear(width, width), nn.Linear(width, width), lowest

    def forward(self, z):
        return torch.minimum(self.a(z), self.b(z)) if self.lowest else torch.max(self.a(z), self.b(z))


def _prelu(channels: int) -> nn.PReLU:
    unit = nn.PReLU(channels)
    with torch.no_grad():
        unit.weight.copy_(torch.linspace(-0.6, 0.7, channels))
    return unit


UNITS = {
    "relu6": (lambda: nn.ReLU6(), lambda z: [z > 0, z > 6]),
    "hardtanh": (lambda: nn.Hardtanh(-0.5, 0.7), lambda z: [z > -0.5, z > 0.7]),
    "clamp": (lambda: Clamp(), lambda z: [z > -0.3, z > 0.4]),
    "clamp_min": (lambda: ClampMin(), lambda z: [z > 0.2]),
    "prelu shared": (lambda: nn.PReLU(init=0.3), lambda z: [z > 0]),
    "prelu per channel": (lambda: _prelu(6), lambda z: [z > 0]),
    "abs": (lambda: Abs(), lambda z: [z > 0]),
}


def _states(model: nn.Module, unit: nn.Module, rule, plane: rs.Plane, n: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Grid points (n*n, 2) and every unit's state there, from the unit's input by a hook."""
    (s0, s1), (t0, t1) = plane.extent
    pts = np.stack(np.meshgrid(np.linspace(s0, s1, n + 2)[1:-1], np.linspace(t0, t1, n + 2)[1:-1]),
                   -1).reshape(-1, 2)
    seen = []
    handle = unit.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0].detach()))
    with torch.no_grad():
        model.double()(plane.to_input(torch.from_numpy(pts)))
    handle.remove()
    z = seen[0].reshape(len(pts), -1)
    if isinstance(unit, MaxOfTwo):
        states = [unit.a(seen[0]) > unit.b(seen[0])]
    else:
        states = rule(z)
    # the other ReLU's states too (its input: the output of the Linear before it)
    return pts, np.concatenate([s.reshape(len(pts), -1).numpy() for s in states], axis=1)


def _check(slicer, unit: nn.Module, rule, n: int = 400) -> rs.Partition2D:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 6), unit, nn.Linear(6, 1)).eval()
    plane = square(2.5)
    part = slicer(model, plane)
    pts, states = _states(model, unit, rule, plane, n)
    region = part.region_of(pts)
    assert (region >= 0).all()
    # one state per region (points within rounding of a boundary aside) ...
    key = np.unique(states, axis=0, return_inverse=True)[1].ravel()
    pairs = np.unique(np.stack([region, key], 1), axis=0)
    assert len(pairs) <= part.n_regions * 1.001 + 2
    # ... and one region per state: the regions are the states' cells (a cell too small
    # to hold a grid point aside)
    assert part.n_regions >= len(np.unique(key))
    spacing = 5.0 / (n + 1)
    unseen = np.setdiff1d(np.arange(part.n_regions), region)
    assert part.n_regions - len(unseen) == len(np.unique(key))
    assert (part.areas()[unseen] < 4 * spacing**2).all()
    assert part.verify(model).ok
    return part


@pytest.mark.parametrize("name", list(UNITS))
def test_units_against_their_states_on_a_grid(slicer, name):
    make, rule = UNITS[name]
    part = _check(slicer, make(), rule)
    assert part.n_regions > 5


@pytest.mark.parametrize("lowest", [False, True])
def test_maximum_and_minimum_of_two_branches(slicer, lowest):
    part = _check(slicer, MaxOfTwo(6, lowest), None)
    assert part.n_regions > 5


def test_hardtanh_in_a_deeper_net_keeps_its_links_and_the_1d_engine_agrees():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(2, 8), nn.Hardtanh(-0.4, 0.6), nn.Linear(8, 8), _prelu(8),
                          nn.Linear(8, 8), nn.ReLU6(), nn.Linear(8, 1)).eval()
    from reluscope.nets.plane_network import Network

    net = Network(model, square(2.0))
    assert [s.shape for s in net.sites] == [(2, 8), (2, 8), (2, 8)]
    assert all(net.link(k) is not None for k in (1, 2, 3))  # the combinations are in the links
    part = rs.slice_regions(model, square(2.0))
    assert part.verify(model).ok
    # along the s-axis, the 1D engine's breakpoints are where the 2D partition's edges cross it
    path = rs.Path.segment(torch.tensor([-2.0, 0.1], dtype=torch.float64),
                           torch.tensor([2.0, 0.1], dtype=torch.float64))
    pieces = rs.path_regions(model, path)
    ts = np.linspace(-2.0, 2.0, 20001)[1:-1]
    regions = part.region_of(np.stack([ts, np.full_like(ts, 0.1)], 1))
    assert pieces.n_pieces == 1 + int((np.diff(regions) != 0).sum()) > 3


def test_reductions_and_tensor_bounds_stay_refused(slicer):
    class Reduce(nn.Module):
        def forward(self, z):
            return z - torch.max(z)

    class TensorBound(nn.Module):
        def forward(self, z):
            return torch.clamp(z, min=torch.zeros_like(z))

    class TensorFloor(nn.Module):
        def forward(self, z):
            return z.clamp_min(torch.full_like(z, 0.1))

    for unit, pattern in ((Reduce(), "`max`"), (TensorBound(), "tensor-valued bounds"),
                          (TensorFloor(), "tensor-valued bounds")):
        model = nn.Sequential(nn.Linear(2, 3), unit, nn.Linear(3, 1)).eval()
        with pytest.raises(rs.UnsupportedModelError, match=pattern):
            slicer(model, square())


def test_coincident_neurons_are_all_recorded_per_edge_and_per_breakpoint():
    """A per-channel PReLU has two neurons per unit with one zero line: every edge (and
    breakpoint) a unit makes lists both, and the per-site boundary length counts them."""
    from reluscope.metrics.polytope import boundary_lengths

    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(2, 6), _prelu(6), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 1)).eval()
    part = rs.slice_regions(model, square(2.0))
    ptr, site, neuron = part.edge_switches()
    inner = part.edge_faces[:, 1] >= 0
    count = np.diff(ptr)
    assert (count[~inner] == 0).all()
    made_by_prelu = inner & (part.edge_site == 0)
    assert (count[made_by_prelu] == 2).all()  # z and -z switch together
    first = ptr[:-1][made_by_prelu]
    np.testing.assert_array_equal(neuron[first + 1] - neuron[first], 6)  # unit k: neurons k, 6 + k
    assert (count[inner & (part.edge_site == 1)] == 1).all()
    # the recorded neuron is always among them
    for e in np.flatnonzero(inner)[:50]:
        assert part.edge_neuron[e] in neuron[ptr[e]:ptr[e + 1]][site[ptr[e]:ptr[e + 1]] == part.edge_site[e]]
    lengths = boundary_lengths(part)
    assert lengths[0] > 0 and lengths[1] > 0
    path = rs.Path.segment(torch.tensor([-2.0, 0.3], dtype=torch.float64),
                           torch.tensor([2.0, -0.4], dtype=torch.float64))
    pieces = rs.path_regions(model, path)
    bptr, _, _ = pieces.boundary_switches()
    at = np.flatnonzero(pieces.boundary_site == 0)
    assert len(at) and (np.diff(bptr)[at] == 2).all() and (pieces.boundary_count[at] == 2).all()
    assert (np.diff(bptr)[pieces.boundary_site < 0] == 0).all()
