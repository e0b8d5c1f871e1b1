"""The exact 1D engine: hand-solved cases, a dense-sampling oracle, 1D = 2D ∩ line, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import reluscope as rs
from conftest import linear_relu, random_mlp, square
from reluscope.nets.sites import InstrumentedModel


def sampled_patterns(model: nn.Module, path: rs.Path, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patterns and outputs at n points inside each segment (segment index, t, patterns)."""
    t = (np.arange(n) + 0.5) / n
    seg = np.repeat(np.arange(path.n_segments), n)
    tt = np.tile(t, path.n_segments)
    shape = (-1,) + (1,) * len(path.input_shape)
    x = path.starts[seg] + torch.from_numpy(tt).reshape(shape) * path.directions[seg]
    net = InstrumentedModel(model, x[:1], "test")
    pre = net.preactivations(x)
    return seg, tt, np.concatenate([(z > 0).numpy() for z in pre], axis=1)


def piece_of(part: rs.Partition1D, seg: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the piece containing (segment, t)."""
    key = part.piece_segment * 2.0 + part.t0  # t in [0, 1]: pieces sort by (segment, t0)
    return np.searchsorted(key, seg * 2.0 + t, side="right") - 1


def all_patterns(part: rs.Partition1D) -> np.ndarray:
    return np.concatenate([part.active(i) for i in range(len(part.sites))], axis=1)


def test_one_neuron_splits_a_segment_at_its_zero():
    net = linear_relu([[1.0, 0.0]], [0.0])
    with torch.no_grad():
        net[2].weight.fill_(2.0)
        net[2].bias.fill_(1.0)
    path = rs.Path.segment(torch.tensor([-1.0, 0.3]), torch.tensor([3.0, 0.3]))
    part = rs.path_regions(net, path)
    assert part.n_pieces == 2
    np.testing.assert_allclose(part.t0, [0.0, 0.25])
    np.testing.assert_allclose(part.t1, [0.25, 1.0])
    np.testing.assert_allclose(part.lengths(), [1.0, 3.0])
    assert part.active(0)[:, 0].tolist() == [False, True]
    np.testing.assert_allclose(part.output_start[:, 0], [1.0, 1.0])
    np.testing.assert_allclose(part.output_end[:, 0], [1.0, 7.0])
    assert part.boundary_site.tolist() == [-1, 0] and part.boundary_neuron.tolist() == [-1, 0]


def test_dead_neuron_and_exact_zero_at_an_end_do_not_split():
    net = linear_relu([[0.0, 0.0], [1.0, 0.0]], [-1.0, 0.0])  # dead; zero at x0 = 0
    part = rs.path_regions(net, rs.Path.segment(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])))
    assert part.n_pieces == 1
    assert part.region_counts().tolist() == [1]


def test_regions_far_narrower_than_a_millionth_are_found():
    net = linear_relu([[1.0, 0.0], [1.0, 0.0]], [-0.5, -0.5 - 1e-9])
    part = rs.path_regions(net, rs.Path.segment(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])))
    assert part.n_pieces == 3
    np.testing.assert_allclose(part.lengths()[1], 1e-9, rtol=1e-6)


def test_coincident_zeros_make_one_breakpoint_with_a_count():
    net = linear_relu([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]], [0.0, 0.0, 5.0])
    part = rs.path_regions(net, rs.Path.segment(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0])))
    assert part.n_pieces == 2
    assert part.boundary_count.tolist() == [0, 2]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_sampled_point_has_its_piece_pattern(seed):
    model = random_mlp(seed, [12, 10, 8], d_in=5)
    gen = torch.Generator().manual_seed(seed)
    points = torch.randn(4, 5, generator=gen, dtype=torch.float64) * 3
    path = rs.Path.polyline(points, closed=True)
    part = rs.path_regions(model, path)
    seg, t, patterns = sampled_patterns(model, path, 4000)
    pieces = piece_of(part, seg, t)
    assert np.array_equal(all_patterns(part)[pieces], patterns)
    # every distinct run of sampled patterns is a piece; the exact count is at least that
    runs = 1 + int((patterns[1:] != patterns[:-1]).any(axis=1).sum())
    assert part.n_pieces >= runs - path.n_segments + 1
    # outputs: affine between the piece's ends
    x = path.starts[seg] + torch.from_numpy(t)[:, None] * path.directions[seg]
    with torch.no_grad():
        expected = model.double()(x).numpy()
    lam = ((t - part.t0[pieces]) / (part.t1[pieces] - part.t0[pieces]))[:, None]
    got = (1 - lam) * part.output_start[pieces] + lam * part.output_end[pieces]
    np.testing.assert_allclose(got, expected, atol=1e-10)


def test_consecutive_pieces_differ_exactly_in_the_switching_neurons():
    model = random_mlp(3, [16, 16], d_in=3)
    gen = torch.Generator().manual_seed(0)
    path = rs.Path.segment(torch.randn(3, generator=gen) * 4, torch.randn(3, generator=gen) * 4)
    part = rs.path_regions(model, path)
    patterns = all_patterns(part)
    offsets = np.concatenate([[0], np.cumsum([s.size for s in part.sites])])
    changed = patterns[1:] != patterns[:-1]
    assert (changed.sum(axis=1) == part.boundary_count[1:]).all()
    flat = offsets[part.boundary_site[1:]] + part.boundary_neuron[1:]
    assert changed[np.arange(len(flat)), flat].all()


def test_path_through_a_plane_meets_the_2d_partition_edges():
    model = random_mlp(4, [10, 10, 6])
    plane = square(2.0)
    part2 = rs.slice_regions(model, plane)
    a, b = np.array([-1.7, -1.1]), np.array([1.9, 1.3])
    part1 = rs.path_regions(model, rs.Path.segment(torch.from_numpy(a), torch.from_numpy(b)))
    # crossings of the segment with the interior edges of the 2D partition
    inner = part2.edge_site >= 0
    p, q = part2.vertices[part2.edges[inner, 0]], part2.vertices[part2.edges[inner, 1]]
    d, e = b - a, q - p
    den = d[0] * e[:, 1] - d[1] * e[:, 0]
    ok = np.abs(den) > 1e-14
    t = ((p[:, 0] - a[0]) * e[:, 1] - (p[:, 1] - a[1]) * e[:, 0])[ok] / den[ok]
    u = ((p[:, 0] - a[0]) * d[1] - (p[:, 1] - a[1]) * d[0])[ok] / den[ok]
    hits = np.sort(t[(t > 0) & (t < 1) & (u >= -1e-12) & (u <= 1 + 1e-12)])
    hits = hits[np.concatenate([[True], np.diff(hits) > 1e-9])]  # a vertex is on two edges
    np.testing.assert_allclose(part1.t0[1:], hits, atol=1e-9)


def test_batch_equals_paths_one_by_one_and_region_counts_merge_corners():
    model = random_mlp(5, [8, 8], d_in=4)
    gen = torch.Generator().manual_seed(1)
    paths = [rs.Path.polyline(torch.randn(k, 4, generator=gen, dtype=torch.float64), closed=c)
             for k, c in [(2, False), (3, True), (5, False)]]
    batch = rs.path_regions(model, paths)
    for i, path in enumerate(paths):
        one = rs.path_regions(model, path)
        lo, hi = batch.path_offsets[i], batch.path_offsets[i + 1]
        # same breakpoints; a batched GEMM may round differently in the last bit
        np.testing.assert_allclose(batch.t0[lo:hi], one.t0, rtol=0, atol=1e-14)
        assert batch.region_counts()[i] == one.region_counts()[0]
    # a loop inside one region: four corners, four pieces, one region
    flat = linear_relu([[1.0, 0.0]], [10.0])
    loop = rs.Path.polyline(torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), closed=True)
    part = rs.path_regions(flat, loop)
    assert part.n_pieces == 4 and part.region_counts().tolist() == [1]


def test_cnn_residual_and_leaky_relu_match_sampling():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)
            self.act = nn.LeakyReLU(0.1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.act(self.conv(x))

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), Block(), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 2)).eval()
    gen = torch.Generator().manual_seed(2)
    path = rs.Path.segment(torch.randn(1, 4, 4, generator=gen), torch.randn(1, 4, 4, generator=gen))
    part = rs.path_regions(model, path)
    seg, t, patterns = sampled_patterns(model, path, 20000)
    assert np.array_equal(all_patterns(part)[piece_of(part, seg, t)], patterns)


def test_save_and_load_round_trip(tmp_path):
    model = random_mlp(6, [6, 6])
    path = rs.Path.polyline(torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.0, 1.0]]), closed=True)
    part = rs.path_regions(model, path)
    back = rs.Partition1D.load(part.save(tmp_path / "p"))
    np.testing.assert_array_equal(back.t0, part.t0)
    np.testing.assert_array_equal(back.output_end, part.output_end)
    assert back.paths[0].closed and torch.equal(back.paths[0].points, path.points)
    assert back.region_counts().tolist() == part.region_counts().tolist()


def test_bad_input_gets_clear_errors():
    model = random_mlp(0, [4])
    with pytest.raises(TypeError, match=r"`paths` of path_regions must be a reluscope.Path"):
        rs.path_regions(model, [torch.zeros(2)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"paths through inputs of one shape"):
        rs.path_regions(model, [rs.Path.segment(torch.zeros(2), torch.ones(2)),
                                rs.Path.segment(torch.zeros(3), torch.ones(3))])
    with pytest.raises(ValueError, match=r"consecutive corners that differ"):
        rs.Path.polyline(torch.tensor([[0.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"at least 2 points"):
        rs.Path(torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"shaped like `a`"):
        rs.Path.segment(torch.zeros(2), torch.zeros(3))
    with pytest.raises(rs.TooManyRegionsError, match="max_regions=2"):
        rs.path_regions(random_mlp(0, [30]), rs.Path.segment(torch.full((2,), -9.0), torch.full((2,), 9.0)),
                        max_regions=2)
    with pytest.raises(rs.UnsupportedModelError, match="gelu"):
        rs.path_regions(nn.Sequential(nn.Linear(2, 2), nn.GELU()),
                        rs.Path.segment(torch.zeros(2), torch.ones(2)))


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PROPERTY = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(seed=st.integers(0, 10_000), depth=st.integers(1, 3), width=st.integers(1, 12),
       d_in=st.integers(1, 6))
def test_random_mlps_match_dense_sampling(seed, depth, width, d_in):
    model = random_mlp(seed, [width] * depth, d_in=d_in)
    gen = torch.Generator().manual_seed(seed)
    path = rs.Path.segment(3 * torch.randn(d_in, generator=gen, dtype=torch.float64),
                           3 * torch.randn(d_in, generator=gen, dtype=torch.float64))
    part = rs.path_regions(model, path)
    seg, t, patterns = sampled_patterns(model, path, 3000)
    assert np.array_equal(all_patterns(part)[piece_of(part, seg, t)], patterns)
    assert np.all(part.t1 > part.t0) and part.t0[0] == 0.0 and part.t1[-1] == 1.0


@PROPERTY
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 10.0))
def test_positive_rescaling_of_a_neuron_changes_no_breakpoint(seed, scale):
    model = random_mlp(seed, [8, 8], d_in=3).double()  # float32 rescaling would round the weights
    gen = torch.Generator().manual_seed(seed)
    path = rs.Path.segment(torch.randn(3, generator=gen, dtype=torch.float64) * 3,
                           torch.randn(3, generator=gen, dtype=torch.float64) * 3)
    before = rs.path_regions(model, path)
    with torch.no_grad():  # neuron 0 of the first layer: incoming x scale, outgoing / scale
        model[0].weight[0] *= scale
        model[0].bias[0] *= scale
        model[2].weight[:, 0] /= scale
    after = rs.path_regions(model, path)
    np.testing.assert_allclose(after.t0, before.t0, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(after.output_end, before.output_end, rtol=1e-9, atol=1e-9)


def test_values_kept_for_unlinked_sites_give_the_same_pieces(monkeypatch):
    """LeNet's max-pool stages have no link from their predecessor: one plain pass gives the
    values of a run of them, and each split adds only its new breakpoints' rows. The pieces
    must be those of a plain pass per site."""
    import reluscope.regions.path1d as path1d
    from reluscope.nets.zoo import LeNet

    torch.manual_seed(0)
    model = LeNet().eval()
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(4, 1, 28, 28, generator=gen, dtype=torch.float64)
    paths = [rs.Path.segment(x[0], x[1]), rs.Path.polyline(x[1:])]
    kept = rs.path_regions(model, paths)
    monkeypatch.setattr(path1d, "AHEAD_WIDTH", 0)  # every site's values from its own pass
    plain = rs.path_regions(model, paths)
    assert kept.n_pieces == plain.n_pieces > 100
    for name in ("piece_offsets", "boundary_site", "boundary_neuron", "boundary_count"):
        np.testing.assert_array_equal(getattr(kept, name), getattr(plain, name))
    np.testing.assert_allclose(kept.t0, plain.t0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(kept.output_end, plain.output_end, rtol=1e-10, atol=1e-10)
    assert all(np.array_equal(a, b) for a, b in zip(kept.patterns, plain.patterns, strict=True))
