"""Affine maps per face (masked passes, links, sibling updates, the walk) equal full propagation
and give the partition of vertex values."""

import numpy as np
import pytest
import torch
from torch import nn

from conftest import square
from reluscope.nets.plane_network import Network
from test_slice_architectures import ResNetish


def _random_masks(net: Network, n: int, upto: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(n, s.size, generator=gen) > 0.5 for s in net.sites[:upto]]


def _compare(model: nn.Module, plane, seed: int = 0) -> None:
    net = Network(model, plane)
    coords = torch.rand(7, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for site in range(1, len(net.sites)):
        masks = _random_masks(net, 7, site, seed + site)
        fast = net.affine_maps(coords, masks, site)
        slow = net._generic_maps(coords, masks, site)
        for a, b in zip(fast, slow, strict=True):
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_mlp_links_exist_and_agree():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 9), nn.ReLU(), nn.Linear(9, 7), nn.LeakyReLU(0.3),
                          nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 1)).eval()
    net = Network(model, square())
    assert all(net.link(m) is not None for m in (1, 2))
    _compare(model, square())


def test_cnn_links_agree():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    from reluscope import Plane
    _compare(model, Plane.through(x[0], x[1], x[2]))


def test_skip_connections_fall_back_to_the_generic_path():
    torch.manual_seed(3)
    model = ResNetish().eval()
    net = Network(model, square())
    links = [net.link(m) for m in range(1, len(net.sites))]
    # the second ReLU of each residual block sees the block input too: no chain link there
    assert links[1] is None and links[3] is None
    assert links[0] is not None
    _compare(model, square())
    assert np.isfinite(net.affine_maps(torch.zeros(1, 2, dtype=torch.float64),
                                       _random_masks(net, 1, 4, 0), 4)[0].numpy()).all()


@pytest.mark.parametrize("tight", [False, True])
def test_propagated_maps_match_full_propagation(tight):
    """Maps walked across shared edges (rank-1 terms) equal the full propagation.

    `tight`: anchors every few steps, a tiny pair buffer, line vectors recomputed after
    3 updates and two walkers side by side, so every way the walk pauses, resumes and
    splits is exercised.
    """
    import reluscope as rs

    walk = {}
    if tight:
        walk = {"walk_anchor_steps": 7, "walk_buffer_pairs": 1, "walk_line_refresh": 3,
                "walk_parallel_faces": 1, "walk_max_threads": 2}

    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(2, 24), nn.ReLU(), nn.Linear(24, 24), nn.LeakyReLU(0.1),
                          nn.Linear(24, 24), nn.ReLU(), nn.Linear(24, 24), nn.ReLU(),
                          nn.Linear(24, 1)).eval()
    # per-face maps (not vertex values), propagated across edges
    fast = rs.slice_regions(model, square(2.0), options=rs.EngineOptions(
        values_max_entries=0, walk_min_width=1, **walk))
    # every face in full, and from site 0
    full = rs.slice_regions(model, square(2.0), options=rs.EngineOptions(
        values_max_entries=0, walk_min_width=10**9, cache_entries=0))
    assert fast.n_regions == full.n_regions
    assert np.allclose(fast.vertices, full.vertices, rtol=0, atol=1e-12)
    assert np.array_equal(fast.face_vertices, full.face_vertices)
    assert fast.verify(model).ok


def test_walk_buffers_grow_when_full_and_change_nothing():
    """The walk's pair buffers start at 1/16 of ``walk_buffer_pairs`` and grow 4x when a
    face's candidates do not fit: the partition is the one of buffers that never fill."""
    import reluscope as rs
    from reluscope.regions.slice2d import walk

    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(2, 24), nn.ReLU(), nn.Linear(24, 24), nn.ReLU(),
                          nn.Linear(24, 24), nn.ReLU(), nn.Linear(24, 1)).eval()
    options = {"values_max_entries": 0, "walk_min_width": 1}
    roomy = rs.slice_regions(model, square(2.0), options=rs.EngineOptions(
        walk_buffer_pairs=1 << 20, **options))
    sizes: list[int] = []
    real = walk._Walker._buffers

    def counted(capacity: int) -> tuple[np.ndarray, ...]:
        sizes.append(capacity)
        return real(capacity)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(walk._Walker, "_buffers", staticmethod(counted))
        grown = rs.slice_regions(model, square(2.0), options=rs.EngineOptions(
            walk_buffer_pairs=1 << 10, **options))
    assert 64 in sizes and 256 in sizes and 1024 in sizes  # 1/16 first, then 4x, up to the most
    assert max(sizes) == 1024
    assert np.array_equal(grown.vertices, roomy.vertices)
    assert np.array_equal(grown.face_vertices, roomy.face_vertices)
    assert grown.verify(model).ok
    # buffers smaller than one face's candidates (1 pair, then 4, up to the site's 24 neurons):
    # a face that does not fit is screened again after the buffers grow, and anchors fall
    # where they would with room, so the vertices are the same to the bit
    sizes.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(walk._Walker, "_buffers", staticmethod(counted))
        tiny = rs.slice_regions(model, square(2.0), options=rs.EngineOptions(
            walk_buffer_pairs=16, walk_anchor_steps=5, **options))
        tiny_roomy = rs.slice_regions(model, square(2.0), options=rs.EngineOptions(
            walk_buffer_pairs=1 << 20, walk_anchor_steps=5, **options))
    assert 1 in sizes and 4 in sizes and 24 in sizes
    assert np.array_equal(tiny.vertices, tiny_roomy.vertices)
    assert np.array_equal(tiny.face_vertices, tiny_roomy.face_vertices)


def test_sibling_updates_match_full_propagation():
    """Narrow layers: anchor maps plus rank-1 chord terms equal the full propagation."""
    import reluscope as rs

    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(2, 20), nn.ReLU(), nn.Linear(20, 20), nn.LeakyReLU(0.2),
                          nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 1)).eval()
    # per-face maps, not vertex values; then every face in full
    fast = rs.slice_regions(model, square(2.0), options=rs.EngineOptions(values_max_entries=0))
    full = rs.slice_regions(model, square(2.0), options=rs.EngineOptions(values_max_entries=0,
                                                                         sibling_cost=10**9))
    assert np.array_equal(fast.face_vertices, full.face_vertices)
    assert np.allclose(fast.vertices, full.vertices, rtol=0, atol=1e-12)
    assert fast.verify(model).ok


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_vertex_values_give_the_same_partition_as_face_maps(kind):
    """Chords found from values at the vertices equal those from per-face affine maps."""
    import reluscope as rs

    torch.manual_seed(6)
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.LeakyReLU(0.1),
                              nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)).eval()
        plane = square(2.0)
    else:
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1),
                              nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3)).eval()
        x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(1))
        plane = rs.Plane.through(x[0], x[1], x[2], margin=0.3)
    values = rs.slice_regions(model, plane)
    assert "vertex values" in values.timings
    maps = rs.slice_regions(model, plane, options=rs.EngineOptions(values_max_entries=0))
    assert "vertex values" not in maps.timings
    assert values.n_regions == maps.n_regions
    assert np.sort(values.areas()) == pytest.approx(np.sort(maps.areas()), rel=1e-9, abs=1e-14)
    assert values.verify(model).ok


class _InputSkip(nn.Module):
    """Site 1 sees the input directly too (no link from site 0), site 2 is a chained linear layer:
    the walk at site 2 cannot cross site-0 edges, so it runs one component per site-0 face."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.a, self.b, self.skip = nn.Linear(2, 10), nn.Linear(10, 10), nn.Linear(2, 10)
        self.c, self.out = nn.Linear(10, 12), nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.b(torch.relu(self.a(x))) + self.skip(x))
        return self.out(torch.relu(self.c(h)))


def _graph(ptr: np.ndarray, dst: np.ndarray):
    """A walk graph with these edges and zero terms (for the component search)."""
    from reluscope.regions.slice2d.walk import WalkGraph

    zeros = np.zeros(len(dst), np.int32)
    return WalkGraph(ptr, dst.astype(np.int32), zeros.astype(np.int8), zeros, zeros,
                     np.ones(len(dst), np.int8), np.zeros((1, 3)), np.zeros((1, 3)), np.ones(2))


@pytest.mark.parametrize("batch", [1, 3, 128])
def test_walk_roots_computed_in_batches_give_the_full_maps_partition(batch):
    import reluscope as rs
    from reluscope.regions.slice2d.walk import component_roots

    model = _InputSkip().eval()
    walked = rs.slice_regions(model, square(2.0), options=rs.EngineOptions(
        values_max_entries=0, walk_min_width=1, walk_root_batch=batch))
    full = rs.slice_regions(model, square(2.0), options=rs.EngineOptions(
        values_max_entries=0, walk_min_width=10**9))
    assert walked.n_regions == full.n_regions > 50
    assert np.allclose(walked.vertices, full.vertices, rtol=0, atol=1e-12)
    assert np.array_equal(walked.face_vertices, full.face_vertices)
    assert walked.verify(model).ok
    # the roots: lowest face of each component within a strip (faces 0-1-2 | 3-4 | 5, strips 0, 0, 0, 1, 1, 1)
    graph = _graph(np.array([0, 1, 3, 4, 5, 6, 6]), np.array([1, 0, 2, 1, 4, 3]))
    assert component_roots(graph, np.zeros(6, np.int64)).tolist() == [0, 3, 5]
    assert component_roots(graph, np.array([0, 0, 1, 1, 1, 1])).tolist() == [0, 2, 3, 5]


def test_root_maps_come_a_batch_at_a_time_as_the_walkers_reach_them():
    import threading

    from reluscope.regions.slice2d.walk import _RootMaps

    def map_of(face: int) -> np.ndarray:
        return np.full((3, 4), float(face))

    singles: list[int] = []
    batches: list[list[int]] = []

    def one(face: int) -> np.ndarray:
        singles.append(face)
        return map_of(face)

    def many(faces: np.ndarray) -> np.ndarray:
        batches.append(faces.tolist())
        return np.stack([map_of(int(f)) for f in faces], axis=1)

    maps = _RootMaps(one, many, np.array([0, 3, 5, 9, 12, 14]), np.array([0, 1, 0, 1, 0, 1]), 2,
                     threading.Lock())
    # two walkers (strips 0 and 1) ask for their roots in increasing order, interleaved; 4 is
    # an anchor
    for face in [0, 3, 5, 4, 9, 12, 14]:
        assert np.array_equal(maps(face), map_of(face))
    # a batch: the asking walker's roots from the one asked for on, not yet computed
    assert batches == [[0, 5], [3, 9]]
    assert singles == [4, 12, 14]  # an anchor, and roots left alone in their batch
    assert maps.ready == {}  # nothing held once every root is reached
    assert maps(0).shape == (3, 4) and singles[-1] == 0  # asked again: computed again


def test_component_roots_equal_a_graph_search_on_random_graphs():
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    from reluscope.regions.slice2d.walk import component_roots

    rng = np.random.default_rng(3)
    for n, m in [(1, 0), (50, 20), (400, 300), (2000, 2500)]:
        src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
        order = np.argsort(src, kind="stable")
        src, dst = src[order], dst[order]
        ptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(src, minlength=n), out=ptr[1:])
        strip = rng.integers(0, 3, n)
        keep = strip[src] == strip[dst]
        graph = _graph(ptr, dst)
        _, label = connected_components(csr_matrix((np.ones(int(keep.sum())), (src[keep], dst[keep])),
                                                   shape=(n, n)), directed=False)
        lowest = np.full(label.max() + 1, n)
        np.minimum.at(lowest, label, np.arange(n))
        assert component_roots(graph, strip).tolist() == sorted(lowest.tolist())
