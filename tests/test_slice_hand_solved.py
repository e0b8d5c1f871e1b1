"""Tiny networks whose partitions are solved by hand."""

import numpy as np
import pytest
import torch
from torch import nn

import reluscope as rs
from conftest import linear_relu, square

# every test runs with both ways the 2D engine finds chords


def test_one_neuron_gives_two_regions_with_exact_areas(slicer):
    # z = s - 0.5 on [-1, 1]^2: regions s < 0.5 (area 3) and s > 0.5 (area 1)
    part = slicer(linear_relu([[1.0, 0.0]], [-0.5]), square())
    assert part.n_regions == 2
    areas = np.sort(part.areas())
    assert areas == pytest.approx([1.0, 3.0], abs=1e-14)
    active = part.active(0)[:, 0]
    assert part.areas()[active] == pytest.approx([1.0], abs=1e-14)
    inner = part.edge_faces[:, 1] >= 0
    assert inner.sum() == 1
    assert part.edge_site[inner].tolist() == [0] and part.edge_neuron[inner].tolist() == [0]
    assert part.verify(linear_relu([[1.0, 0.0]], [-0.5])).ok


def test_two_axis_aligned_neurons_give_four_quadrants(slicer):
    net = linear_relu([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    part = slicer(net, square())
    assert part.n_regions == 4
    assert part.areas() == pytest.approx([1.0] * 4, abs=1e-14)
    patterns = {tuple(row) for row in part.active(0).astype(int)}
    assert patterns == {(0, 0), (0, 1), (1, 0), (1, 1)}
    # the centre is a vertex shared by all four quadrants
    centre = np.flatnonzero(np.all(np.abs(part.vertices) < 1e-15, axis=1))
    assert len(centre) == 1
    assert (part.face_vertices == centre[0]).sum() == 4
    assert part.n_edges == 12  # 8 boundary pieces + 4 half-axes
    assert part.verify(net).ok


@pytest.mark.parametrize(("weight", "bias"), [([[0.0, 0.0]], [-1.0]),   # dead everywhere
                                               ([[0.0, 0.0]], [1.0]),    # always on
                                               ([[1.0, 0.0]], [-5.0])])  # boundary outside
def test_neurons_that_do_not_cut_leave_one_region(slicer, weight, bias):
    net = linear_relu(weight, bias)
    part = slicer(net, square())
    assert part.n_regions == 1
    assert part.areas() == pytest.approx([4.0])
    assert bool(part.active(0)[0, 0]) == (bias[0] > 0)
    assert part.verify(net).ok


def test_cut_through_a_domain_corner_and_parallel_cuts(slicer):
    # s + t = 0 passes through corners (-1, 1) and (1, -1); s + t = 1 is parallel
    net = linear_relu([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]], [0.0, -1.0, -2.0])
    part = slicer(net, square())
    # lines s+t=0 and s+t=1 (twice: neurons 2 and 3 coincide) -> 3 regions
    assert part.n_regions == 3
    assert np.sort(part.areas()) == pytest.approx([0.5, 1.5, 2.0])
    report = part.verify(net)
    # the coinciding neurons flip together: adjacency sees two bits on that edge
    assert report.area_relative_error < 1e-12 and report.pattern_mismatches == 0


def test_concurrent_lines_share_one_vertex(slicer):
    angles = np.linspace(0, np.pi, 7)[:-1]
    weight = np.stack([np.cos(angles), np.sin(angles)], 1).tolist()
    net = linear_relu(weight, [0.0] * 6)
    part = slicer(net, square())
    assert part.n_regions == 12
    assert part.areas().sum() == pytest.approx(4.0)
    assert part.verify(net).ok


def test_second_layer_bends_at_first_layer_boundaries(slicer):
    # layer 1: relu(s); layer 2: z = relu(s) + t - 0.25 -> for s<0 the line t=0.25,
    # for s>0 the line t = 0.25 - s (bent at s = 0)
    net = nn.Sequential(nn.Linear(2, 1), nn.ReLU(), nn.Linear(1, 1), nn.ReLU()).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.tensor([[1.0]]))
        net[2].bias.fill_(-0.25)

    class AddT(nn.Module):
        def forward(self, x):
            return torch.relu(net[2](torch.relu(net[0](x))) + x[:, 1:2] * 1.0)
    model = AddT()
    part = slicer(model, square())
    assert part.n_regions == 4
    areas = part.areas()
    # regions with s<0: t<0.25 (area 1.25), t>0.25 (area 0.75);
    # s>0: below t = 0.25 - s: area of {0<s<1, -1<t<0.25-s} = 0.75, above: 1.25
    assert np.sort(areas) == pytest.approx([0.75, 0.75, 1.25, 1.25])
    assert part.verify(model).ok


def test_leaky_relu_regions_match_relu_regions(slicer):
    torch.manual_seed(0)
    relu = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 1))
    leaky = nn.Sequential(nn.Linear(2, 6), nn.LeakyReLU(0.2), nn.Linear(6, 6), nn.LeakyReLU(0.2),
                          nn.Linear(6, 1))
    leaky.load_state_dict(relu.state_dict())
    part = slicer(leaky, square(2.0))
    assert part.sites[0].negative_slope == pytest.approx(0.2)
    assert part.verify(leaky).ok
    # first-layer cuts are identical; deeper ones differ (negative side passes through)
    assert part.n_regions >= slicer(relu, square(2.0)).n_regions - 50


def test_triangle_domain(slicer):
    tri = np.array([[-1.0, -1.0], [1.0, -1.0], [0.0, 1.0]])
    plane = rs.Plane(torch.zeros(2), torch.eye(2), ((-1, 1), (-1, 1)), tri)
    net = linear_relu([[0.0, 1.0]], [0.0])
    part = slicer(net, plane)
    assert part.n_regions == 2
    # the cut t = 0 leaves a triangle of area 0.5 on top and a trapezoid of 1.5 below
    assert np.sort(part.areas()) == pytest.approx([0.5, 1.5])


def test_nearly_parallel_cuts_meet_inside_the_domain(slicer):
    # t = 0 and t = eps * s: they cross at the origin with an angle of ~1e-9
    eps = 1e-9
    net = linear_relu([[0.0, 1.0], [-eps, 1.0]], [0.0, 0.0])
    part = slicer(net, square())
    assert part.n_regions == 4
    # the two thin wedges between the lines have area eps / 2 each (|s| <= 1)
    wedges = np.sort(part.areas())[:2]
    assert wedges == pytest.approx([eps / 2, eps / 2], rel=1e-6)
    assert part.verify(net).ok


def test_tiny_triangle_far_smaller_than_the_domain(slicer):
    # three lines bounding a triangle of legs h around (0.3, 0.2): area h^2 / 2
    h = 1e-6
    net = linear_relu([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], [-0.3, -0.2, 0.5 + h])
    part = slicer(net, square())
    assert part.n_regions == 7
    tiny = part.areas().min()
    assert tiny == pytest.approx(h * h / 2, rel=1e-6)
    assert part.areas().sum() == pytest.approx(4.0, rel=1e-14)
    assert part.verify(net).ok


def test_regions_thinner_than_the_snap_tolerance_are_not_created(slicer):
    # the triangle's legs are 1e-3 of the snap distance: the three lines are treated as
    # concurrent and the triangle does not appear (documented tolerance)
    h = 1e-3 * slicer.options.snap_rtol * 2 * np.sqrt(2)
    net = linear_relu([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], [-0.3, -0.2, 0.5 + h])
    part = slicer(net, square())
    assert part.n_regions == 6
    assert part.areas().sum() == pytest.approx(4.0, rel=1e-14)


def test_tiny_triangle_far_from_the_origin_keeps_its_area(slicer):
    # legs of 1e-8 at (5.3, 5.2): absolute coordinates would cancel the ~5e-17 area away
    h = 1e-8
    net = linear_relu([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], [-5.3, -5.2, 10.5 + h])
    part = slicer(net, square(6.0))
    assert part.areas().min() == pytest.approx(h * h / 2, rel=1e-5)
    assert part.verify(net).ok


def test_first_layer_arrangement_matches_cutting_in_rounds(slicer):
    """All first-layer lines at once (an arrangement) = one line per round, including
    three lines through one point, a duplicated neuron and a line through a corner."""
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(20, 2, generator=gen).tolist()
    bias = (0.5 * torch.randn(20, generator=gen)).tolist()
    weight[:3] = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]  # concurrent at the origin
    bias[:3] = [0.0, 0.0, 0.0]
    weight[3], bias[3] = [2.0, 0.0], 0.0  # the same line as neuron 0, scaled
    weight[4], bias[4] = [1.0, -1.0], 0.0  # through the corners (1, 1) and (-1, -1)
    model = linear_relu(weight, bias)
    arranged = slicer(model, square())
    rounds = slicer.replace(arrange=False)(model, square())
    assert arranged.n_regions == rounds.n_regions
    assert np.sort(arranged.areas()) == pytest.approx(np.sort(rounds.areas()), abs=1e-12)
    report, reference = arranged.verify(model), rounds.verify(model)
    assert report.pattern_mismatches == 0 and report.nonpositive_areas == 0
    assert report.area_relative_error < 1e-12 and report.unmatched_edges == 0
    # across the duplicated line both copies flip (verify expects one): same count both ways
    assert report.adjacency_mismatches == reference.adjacency_mismatches
    # the three concurrent lines (and the duplicate) meet in one vertex at the origin
    at_origin = np.flatnonzero(np.hypot(*arranged.vertices.T) < 1e-12)
    assert len(at_origin) == 1


def test_coincident_neurons_pass_verify_and_a_false_flip_does_not(slicer):
    """Two neurons with one zero line (x = 0.25, the second scaled by 4) switch together across
    it: a correct partition, which verify must certify, naming the coincident edges."""
    import dataclasses

    net = linear_relu([[1.0, 0.0], [4.0, 0.0], [0.0, 1.0]], [-0.25, -1.0, 0.125])
    part = slicer(net, square())
    assert part.n_regions == 4
    report = part.verify(net)
    assert report.ok and report.coincident_edges == 2 and report.adjacency_mismatches == 0
    # an edge whose faces differ in a neuron that does not vanish along it is still refused
    patterns = [p.copy() for p in part.patterns]
    face = int(part.edge_faces[np.flatnonzero(part.edge_faces[:, 1] >= 0)[0], 0])
    patterns[0][face, 0] ^= np.uint8(0b00100000)  # neuron 2 (the line y = -0.125), not on that edge
    tampered = dataclasses.replace(part, patterns=tuple(patterns))
    assert tampered.verify(net).adjacency_mismatches > 0


def test_conv_neurons_seeing_equal_patches_switch_together_and_verify(slicer):
    """Images that repeat with period 3 along the width: a 3x3 conv's neurons at columns 0
    and 3 see equal patches in all three images, so their zero lines on the plane coincide
    (as for MNIST's equal pixels in a real CNN)."""
    gen = torch.Generator().manual_seed(5)
    tile = torch.rand(3, 1, 6, 3, generator=gen, dtype=torch.float64)
    x = torch.cat([tile, tile], dim=3)  # (3, 1, 6, 6), columns j and j + 3 equal
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(32, 2)).double().eval()
    part = slicer(net, rs.Plane.through(x[0], x[1], x[2], margin=0.5))
    report = part.verify(net)
    assert report.coincident_edges > 0 and report.adjacency_mismatches == 0 and report.ok
