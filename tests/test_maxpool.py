"""Max-pooling in the exact engines, against an independent oracle.

The oracle reads each window's argmax with numpy from the layer's input (the first of
equal maxima wins, as in the engines) and each ReLU's sign from plain torch, on a dense
grid of the plane and along paths. Regions must be exactly the cells of constant state:
every grid point's state is its region's, and no two regions share a state.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reluscope as rs
from reluscope.data import load_idx_images
from reluscope.metrics import local_complexity
from reluscope.metrics.local_complexity import cross_polytope_lc, random_frames
from reluscope.regions.pools import canonical, keep_pool_switches, pool_groups, pool_states


class PoolNet(nn.Module):
    """conv -> [ReLU ->] max-pool [-> ReLU] -> linear -> ReLU -> linear (small, random)."""

    def __init__(self, seed: int, kernel: int = 2, stride: int = 2, relu_first: bool = True,
                 size: int = 8, channels: int = 2) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.kernel, self.stride, self.relu_first, self.size = kernel, stride, relu_first, size
        self.conv = nn.Conv2d(1, channels, 3)
        out = (size - 2 - kernel) // stride + 1
        self.fc = nn.Linear(channels * out * out, 6)
        self.head = nn.Linear(6, 2)
        self.double().eval()

    def forward(self, x):
        z = self.conv(x)
        if self.relu_first:
            z = F.relu(z)
        z = F.max_pool2d(z, self.kernel, self.stride)
        if not self.relu_first:
            z = F.relu(z)
        return self.head(F.relu(self.fc(z.flatten(1))))

    def states(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(N, k) integer state per unit (ReLU signs, window argmaxes) and (N, k) bool:
        clear of rounding (ambiguous entries are False)."""
        with torch.no_grad():
            z = self.conv(x).numpy()
        parts, sure = [], []

        def relu(v: np.ndarray) -> np.ndarray:
            parts.append((v > 0).reshape(len(v), -1).astype(np.int64))
            scale = np.abs(v).reshape(len(v), -1).max(axis=1, keepdims=True)
            sure.append(np.abs(v.reshape(len(v), -1)) > 1e-9 * scale)
            return np.maximum(v, 0.0)

        if self.relu_first:
            z = relu(z)
        k, s = self.kernel, self.stride
        out = (z.shape[-1] - k) // s + 1
        windows = np.stack([z[:, :, dy: dy + s * out: s, dx: dx + s * out: s][:, :, :out, :out]
                            for dy in range(k) for dx in range(k)], axis=-1)
        arg = windows.argmax(axis=-1)  # first of equal maxima
        top = np.sort(windows, axis=-1)
        gap = top[..., -1] - top[..., -2]
        parts.append(arg.reshape(len(z), -1))
        sure.append(((gap > 1e-9 * np.abs(top[..., -1]).max()) | (gap == 0)).reshape(len(z), -1))
        pooled = windows.max(axis=-1)
        if not self.relu_first:
            pooled = relu(pooled)
        with torch.no_grad():
            hidden = self.fc(torch.from_numpy(pooled).flatten(1)).numpy()
        relu(hidden)
        return np.concatenate(parts, axis=1), np.concatenate(sure, axis=1)


def _region_states(part) -> np.ndarray:
    """(F, k) the partition's states (faces or pieces) in forward order, as the oracle
    lists them: ReLU bits, and one argmax per window for a max-pool."""
    active = [part.active(i) for i in range(len(part.sites))]
    states = pool_states(part.sites, active)
    groups = pool_groups(part.sites)
    stage_sites = {i for g in groups for i in g}
    cols, pool_done = [], 0
    for i, site in enumerate(part.sites):
        if i in stage_sites:
            if site.pool_stage == 1:
                cols.append(states[pool_done].astype(np.int64))
                pool_done += 1
            continue
        cols.append(active[i].astype(np.int64))
    return np.concatenate(cols, axis=1)


def _grid(plane: rs.Plane, n: int) -> np.ndarray:
    (s0, s1), (t0, t1) = plane.extent
    return np.stack(np.meshgrid(np.linspace(s0, s1, n + 2)[1:-1], np.linspace(t0, t1, n + 2)[1:-1]),
                    -1).reshape(-1, 2)


def _check_against_grid(net: PoolNet, part: rs.Partition2D, plane: rs.Plane, n: int = 300,
                        unseen_cells: float = 4.0) -> None:
    regions = _region_states(part)
    # one region per state
    assert len(np.unique(regions, axis=0)) == part.n_regions
    # the region's state at each interior point is the oracle's there
    inner, inner_sure = net.states(plane.to_input(torch.from_numpy(part.interior_points())))
    assert ((inner == regions) | ~inner_sure).all()
    # every grid point lies in the region of its state
    pts = _grid(plane, n)
    states, sure = net.states(plane.to_input(torch.from_numpy(pts)))
    where = part.region_of(pts)
    assert (where >= 0).all()
    ok = ((regions[where] == states) | ~sure).all(axis=1)
    assert ok.all(), f"{(~ok).sum()} grid points in a region of another state"
    # and every region the grid misses is smaller than a few grid cells
    (s0, s1), (t0, t1) = plane.extent
    cell = (s1 - s0) * (t1 - t0) / (n + 1) ** 2
    unseen = np.setdiff1d(np.arange(part.n_regions), where)
    assert (part.areas()[unseen] < unseen_cells * cell).all()
    assert len(unseen) < 0.5 * part.n_regions


@pytest.mark.parametrize("kernel,stride,relu_first", [(2, 2, True), (2, 2, False), (3, 3, True),
                                                      (3, 3, False)])
def test_max_pool_regions_are_the_cells_of_constant_argmax(slicer, kernel, stride, relu_first):
    net = PoolNet(0, kernel, stride, relu_first)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 1, 8, 8, generator=gen, dtype=torch.float64)
    plane = rs.Plane.through(x[0], x[1], x[2], margin=0.3)
    part = slicer(net, plane)
    assert part.verify(net).ok
    assert part.n_regions > 50
    _check_against_grid(net, part, plane)
    # the sites: ReLU, K-1 stages of one unit per window, ReLU
    stages = [s for s in part.sites if s.pool_stage]
    assert [s.pool_stage for s in stages] == list(range(1, kernel * kernel))
    assert all(s.pool_window == kernel * kernel for s in stages)


@pytest.mark.parametrize("kernel,stride,relu_first,seed", [
    (3, 2, True, 1), (3, 2, True, 2), (3, 2, False, 1), (3, 2, False, 2), (2, 1, True, 0),
    (2, 1, False, 0), (2, 1, False, 2), (3, 1, False, 0)])
def test_overlapping_max_pool_windows_against_the_oracle(slicer, kernel, stride, relu_first, seed):
    """Overlapping windows (AlexNet's 3/2, stride 1) compare some candidate pairs in two
    windows at different stages, so lines of different sites coincide and three or more
    meet at one point. These cases made zero-area slivers (two crossings of one edge a few
    ulps apart), edges named by a stage whose window keeps its argmax, and a singular fit
    before the engines treated them as one edge."""
    net = PoolNet(seed, kernel, stride, relu_first)
    gen = torch.Generator().manual_seed(3 + seed)
    x = torch.randn(3, 1, 8, 8, generator=gen, dtype=torch.float64)
    plane = rs.Plane.through(x[0], x[1], x[2], margin=0.3)
    part = slicer(net, plane)
    report = part.verify(net)
    assert report.ok, report
    assert report.coincident_edges > 0  # the coincident lines are really there
    assert part.n_regions > 100
    # thin regions between nearly concurrent lines can slip between grid points: a region
    # the grid misses is checked at its interior point, and must still be small
    _check_against_grid(net, part, plane, unseen_cells=16.0)
    ptr, site, neuron = part.edge_switches()
    inner = np.flatnonzero(part.edge_faces[:, 1] >= 0)
    # every inner edge names one of its real switches
    for e in inner[:: max(1, len(inner) // 300)]:
        named = (site[ptr[e]:ptr[e + 1]] == part.edge_site[e]) & (neuron[ptr[e]:ptr[e + 1]]
                                                                  == part.edge_neuron[e])
        assert named.any()


def test_merging_removes_exactly_the_cuts_that_change_no_argmax():
    """Without the merge the running maximum's cuts give more faces, and some pairs of
    neighbours share a state; after it, the count is that of the distinct states."""
    import reluscope.regions.slice2d as slice2d

    net = PoolNet(1, 3, 3, True, size=11)
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 1, 11, 11, generator=gen, dtype=torch.float64)
    plane = rs.Plane.through(x[0], x[1], x[2], margin=0.3)
    merged = rs.slice_regions(net, plane)
    original = slice2d.merge_pool_faces
    slice2d.merge_pool_faces = lambda part: part
    try:
        raw = rs.slice_regions(net, plane)
    finally:
        slice2d.merge_pool_faces = original
    assert raw.n_regions > merged.n_regions
    raw_states = canonical(raw.sites, [raw.active(i) for i in range(len(raw.sites))])
    distinct = np.unique(np.concatenate(raw_states, axis=1), axis=0)
    assert len(distinct) == merged.n_regions
    np.testing.assert_allclose(merged.areas().sum(), plane.area, rtol=1e-12)
    # a window's argmax change is one switch, at stage max(a, b)
    ptr, site, neuron = merged.edge_switches()
    inner = merged.edge_faces[:, 1] >= 0
    states = pool_states(merged.sites, [merged.active(i) for i in range(len(merged.sites))])[0]
    first_stage = next(s.index for s in merged.sites if s.pool_stage == 1)
    for e in np.flatnonzero(inner & (merged.edge_site >= first_stage)
                            & (merged.edge_site < first_stage + 8))[:200]:
        left, right = merged.edge_faces[e]
        changed = np.flatnonzero(states[left] != states[right])
        pool = (site[ptr[e]:ptr[e + 1]] >= first_stage) & (site[ptr[e]:ptr[e + 1]] < first_stage + 8)
        assert sorted(neuron[ptr[e]:ptr[e + 1]][pool]) == sorted(changed)
        for unit in changed:
            got = site[ptr[e]:ptr[e + 1]][pool][neuron[ptr[e]:ptr[e + 1]][pool] == unit]
            assert list(got) == [first_stage - 1 + max(states[left, unit], states[right, unit])]


def _sites(net: nn.Module) -> list:
    from reluscope.nets.sites import InstrumentedModel

    return InstrumentedModel(net, torch.zeros(1, 1, 8, 8, dtype=torch.float64), "test").sites


def test_keep_pool_switches_keeps_the_highest_stage_of_each_window():
    sites = _sites(PoolNet(0))
    g = pool_groups(sites)[0]
    pair = np.array([0, 0, 0, 1, 1])
    site = np.array([g[0], g[2], 0, g[0], g[1]])
    neuron = np.array([4, 4, 4, 7, 8])
    np.testing.assert_array_equal(keep_pool_switches(sites, pair, site, neuron),
                                  [False, True, True, True, True])


def test_canonical_clears_the_stages_below_the_winner():
    sites = _sites(PoolNet(0))
    g = pool_groups(sites)[0]
    raw = [np.zeros((1, s.size), dtype=bool) for s in sites]
    raw[g[0]][0, :3] = [True, True, False]
    raw[g[1]][0, :3] = [True, False, False]
    raw[g[2]][0, :3] = [False, False, True]
    out = canonical(sites, raw)
    assert out[g[0]][0, :3].tolist() == [False, True, False]
    assert out[g[1]][0, :3].tolist() == [True, False, False]
    assert out[g[2]][0, :3].tolist() == [False, False, True]
    assert pool_states(sites, list(out))[0][0, :3].tolist() == [2, 1, 3]


@pytest.mark.parametrize("kernel,stride,relu_first,seed", [
    (2, 2, True, 2), (2, 2, False, 2), (2, 2, True, 0), (3, 3, True, 4), (3, 2, True, 0),
    (3, 2, False, 1), (2, 1, True, 2), (3, 1, True, 0)])
def test_paths_through_max_pool_nets_against_sampling(kernel, stride, relu_first, seed):
    """Seeds 0 and 4 after a ReLU have breakpoints where a candidate's ReLU switches inside
    a window of zeros: the stage is 0 on both sides, and rounding there once made it active
    (the 1D engine now treats values within TIE_RTOL as ties, like the 2D one)."""
    net = PoolNet(seed, kernel, stride, relu_first)
    gen = torch.Generator().manual_seed(5 + seed)
    a, b = torch.randn(2, 1, 8, 8, generator=gen, dtype=torch.float64)
    pieces = rs.path_regions(net, rs.Path.segment(a, b))
    assert pieces.n_pieces > 10
    # each piece's state is the oracle's at its middle, and neighbours differ
    states = _region_states(pieces)
    mid = 0.5 * (pieces.t0 + pieces.t1)
    oracle, sure = net.states(a[None] + torch.from_numpy(mid)[:, None, None, None] * (b - a)[None])
    assert ((oracle == states) | ~sure).all()
    assert (states[1:] != states[:-1]).any(axis=1).all()
    # sampled state changes: every one is a breakpoint
    ts = np.linspace(0, 1, 40001)[1:-1]
    sampled, sure_s = net.states(a[None] + torch.from_numpy(ts)[:, None, None, None] * (b - a)[None])
    piece = np.searchsorted(pieces.t1, ts)
    assert ((oracle[piece] == sampled) | ~sure_s).all()
    assert np.unique(piece).size >= 0.9 * pieces.n_pieces
    # one switch per argmax change, at the stage of the later candidate
    ptr, _, _ = pieces.boundary_switches()
    assert (np.diff(ptr)[1:] >= 1).all()
    at = pieces.boundary_site[1:] >= 0
    assert (pieces.boundary_count[1:][at] >= 1).all()


class Pooled(nn.Module):
    def __init__(self, pool) -> None:
        super().__init__()
        self.conv, self.pool, self.fc = nn.Conv2d(1, 2, 3), pool, nn.LazyLinear(1)

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)).flatten(1))


def test_max_pool_options_that_are_not_piecewise_linear_here_are_refused(slicer):
    cases = [
        (nn.MaxPool2d(2, padding=1), "padding"),
        (nn.MaxPool2d(4, ceil_mode=True), "ceil_mode"),
        (nn.AdaptiveMaxPool2d(4), "divides"),
        (lambda z: F.max_pool2d(z, 2, return_indices=True)[0], "return_indices"),
        (lambda z: F.max_pool1d(z.flatten(1), 2), r"of a torch.Tensor of shape \(1, 72\).*batched"),
    ]
    for pool, pattern in cases:
        model = Pooled(pool if isinstance(pool, nn.Module) else LambdaPool(pool))
        with torch.no_grad():
            model(torch.zeros(1, 1, 8, 8))
        with pytest.raises(rs.UnsupportedModelError, match=pattern):
            slicer(model.eval(), rs.Plane.through(*torch.randn(3, 1, 8, 8)))


class LambdaPool(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, z):
        return self.fn(z)


def test_max_pool_variants_compute_the_model():
    from reluscope.nets.sites import InstrumentedModel

    cases = [(nn.MaxPool2d(2, 3, dilation=2), (2, 11, 11)), (nn.MaxPool2d((2, 3), (2, 4)), (2, 7, 9)),
             (nn.MaxPool1d(3, 4), (3, 11)), (nn.AdaptiveMaxPool2d(2), (3, 6, 6)),
             (nn.MaxPool2d(3, 2), (2, 9, 9)), (nn.MaxPool2d(2, 1), (2, 5, 6)),
             (nn.MaxPool2d(3, 1, dilation=2), (1, 8, 8)), (nn.MaxPool1d(3, 1), (2, 7)),
             (nn.AdaptiveMaxPool1d(3), (2, 9))]
    for pool, shape in cases:
        model = nn.Sequential(pool, nn.Flatten()).double()
        x = torch.randn(5, *shape, dtype=torch.float64)
        net = InstrumentedModel(model, x[:1], "test")
        np.testing.assert_allclose(net.forward(x).output[0].numpy(), model(x).numpy(), atol=1e-14)
        assert net.sites and all(s.pool_stage for s in net.sites)


def test_partition_with_max_pool_saves_and_loads(tmp_path):
    net = PoolNet(0)
    plane = rs.Plane.through(*torch.randn(3, 1, 8, 8, dtype=torch.float64))
    part = rs.slice_regions(net, plane)
    back = rs.Partition2D.load(part.save(tmp_path / "p.npz"))
    assert back.sites == part.sites and back.n_regions == part.n_regions
    assert back.verify(net).ok


def test_local_complexity_counts_a_window_once_per_argmax_change():
    """Cross-polytope LC against the oracle's states at the vertices: ReLU neurons whose
    sign varies, and windows whose argmax varies (once each, whichever stages flip)."""
    net = PoolNet(0, 2, 2, True)
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(20, 1, 8, 8, generator=gen, dtype=torch.float64)
    frames = random_frames(20, (1, 8, 8), 6, gen)
    lc = cross_polytope_lc(net, x, 0.5, frames=frames)
    vertices = torch.cat([x[:, None] + 0.5 * frames, x[:, None] - 0.5 * frames], dim=1)
    states, _ = net.states(vertices.reshape(-1, 1, 8, 8))
    states = states.reshape(20, 12, -1)
    varies = (states != states[:, :1]).any(axis=1)
    sites = _sites(net)
    stages = [i for g in pool_groups(sites) for i in g]
    relu0, windows = sites[0].size, sites[stages[0]].size
    np.testing.assert_array_equal(lc.per_site[:, 0], varies[:, :relu0].sum(axis=1))
    np.testing.assert_array_equal(lc.per_site[:, stages].sum(axis=1),
                                  varies[:, relu0: relu0 + windows].sum(axis=1))
    np.testing.assert_array_equal(lc.per_site[:, -1], varies[:, relu0 + windows:].sum(axis=1))
    for name in ("ball_lc", "smooth_lc"):
        out = getattr(local_complexity, name)(net, x[:4], 0.2, probes=16)
        assert np.isfinite(out.per_site).all()


def test_lenet_on_mnist_planes_verifies(data_dir):
    """A LeNet-style CNN (max-pools after ReLUs: many exact ties at 0) on small squares of
    a plane through MNIST test images: verify certifies every partition."""
    from reluscope.nets.zoo import LeNet

    torch.manual_seed(0)
    for part in _verified_mnist_squares(LeNet().eval(), data_dir):
        groups = pool_groups(part.sites)
        assert len(groups) == 2 and all(len(g) == 3 for g in groups)


def _verified_mnist_squares(net: nn.Module, data_dir) -> list[rs.Partition2D]:
    """Partitions of `net` on squares of 1/100 the half-width of the margin-0.2 planes through
    MNIST test images 0-2 and 3-5, each certified by verify and of over 100 regions."""
    images, _ = load_idx_images("mnist", "test", data_dir)
    x = torch.from_numpy(images[:6]).double()[:, None]
    parts = []
    for i in (0, 3):
        plane = rs.Plane.through(x[i], x[i + 1], x[i + 2], margin=0.2)
        half = 0.01 * plane.extent[0][1]
        small = rs.Plane(plane.origin, plane.basis, ((-half, half), (-half, half)))
        part = rs.slice_regions(net, small)
        report = part.verify(net)
        assert report.ok, report
        assert part.n_regions > 100
        parts.append(part)
    return parts


class OverlappingPools(nn.Module):
    """AlexNet-style pooling (3 x 3 windows, stride 2) after each ReLU of a small CNN."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 4, 5), nn.Conv2d(4, 8, 3)
        self.fc, self.out = nn.Linear(8 * 4 * 4, 32), nn.Linear(32, 10)

    def forward(self, x):
        z = F.max_pool2d(F.relu(self.c1(x)), 3, 2)  # 24 -> 11
        z = nn.MaxPool2d(3, stride=2)(F.relu(self.c2(z)))  # 9 -> 4
        return self.out(F.relu(self.fc(z.flatten(1))))


def test_overlapping_pools_on_mnist_planes_verify(data_dir):
    """Overlapping windows after ReLUs on MNIST images: exact ties at 0 and coincident
    lines of different stages together; verify certifies the partitions."""
    torch.manual_seed(0)
    for part in _verified_mnist_squares(OverlappingPools().double().eval(), data_dir):
        assert [len(g) for g in pool_groups(part.sites)] == [8, 8]


def test_a_difference_of_conv_outputs_is_not_mistaken_for_a_link(slicer):
    """torch.maximum over conv outputs of one channel: each site's input depends on the
    network's input through differences of conv outputs, which a constant shift of the
    input leaves unchanged. The link test must not take that for "depends only on the
    previous site" (it did, with shifted inputs as probes: wrong regions)."""

    class RunningMax(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(18, 3)

        def forward(self, x):
            z = self.conv(x)
            w = z.unfold(2, 2, 2).unfold(3, 2, 2).reshape(*z.shape[:2], 3, 3, 4)
            m = w[..., 0]
            for k in range(1, 4):
                m = torch.maximum(w[..., k], m)
            return self.fc(F.relu(m).flatten(1))

    torch.manual_seed(0)
    model = RunningMax().double().eval()
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    from reluscope.nets.sites import InstrumentedModel

    net = InstrumentedModel(model, x[:1], "test")
    assert net.link(2) is None and net.link(3) is None
    part = slicer(model, rs.Plane.through(x[0], x[1], x[2], margin=0.3))
    assert part.verify(model).ok


class _PoolWithInputSkip(nn.Module):
    """conv -> ReLU -> max-pool -> linear, plus a term of the input itself: the layers after
    the first site see the input, not only its activation."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head, self.skip = nn.Conv2d(1, 2, 3), nn.Linear(2 * 3 * 3, 4), nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.max_pool2d(torch.relu(self.conv(x)), 2)
        return torch.relu(self.head(pooled.flatten(1)) + self.skip(x.flatten(1)))


class _ReshapeByInputBatch(nn.Module):
    """A forward that reshapes by its input's batch size after the first site (the recorder
    lets a pass from the first site's activation widen one input to many there too)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv2d(1, 2, 3), nn.Linear(2 * 3 * 3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.max_pool2d(torch.relu(self.conv(x)), 2)
        return torch.relu(self.head(pooled.reshape(x.shape[0], -1)))


@pytest.mark.parametrize("kind", ["plain", "skip", "reshape"])
def test_passes_from_the_first_sites_activation_only_where_nothing_else_reaches_later(kind):
    from reluscope.nets.plane_network import Network

    torch.manual_seed(4)
    model = {"skip": _PoolWithInputSkip, "reshape": _ReshapeByInputBatch,
             "plain": lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                            nn.Linear(18, 4), nn.ReLU())}[kind]().eval()
    skip = kind == "skip"
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    plane = rs.Plane.through(x[0], x[1], x[2])
    net = Network(model, plane)
    assert net.cut_at_first_site is not skip
    coords = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    direct = net.plane_preactivations(coords)
    if not skip:  # the same values as a pass from the input, to rounding
        after = net.preactivations_after_first_site(net.site0_values(coords))
        for a, b in zip(after, direct, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # either way the partition passes its certificate
    part = rs.slice_regions(model, plane)
    assert part.verify(model).ok and part.n_regions > 10


def test_lenet_partition_does_not_depend_on_memory_budgets(data_dir):
    """Per-face maps through the pools' links (values_max_entries=0), stage values from the
    pooled site's (pool_values) or from forward passes, keeping
    later sites' values from one forward pass (ahead_max_entries), and the row blocks of
    tie detection and first-site values (chunk_entries) only change the cost:
    the partition is the same, vertex for vertex (to rounding: batch sizes change the
    order of sums, and maps per face put crossings where fitted vertex values put them to
    ~1e-12 of the square), and verify certifies it."""
    from reluscope.nets.zoo import LeNet

    torch.manual_seed(0)
    net = LeNet().eval()
    images, _ = load_idx_images("mnist", "test", data_dir)
    x = torch.from_numpy(images[:3]).double()[:, None]
    plane = rs.Plane.through(x[0], x[1], x[2], margin=0.2)
    half = 0.01 * plane.extent[0][1]
    small = rs.Plane(plane.origin, plane.basis, ((-half, half), (-half, half)))
    parts = [rs.slice_regions(net, small, options=rs.EngineOptions(**kw))
             for kw in ({}, {"ahead_max_entries": 0}, {"ahead_max_entries": 1 << 30},
                        {"chunk_entries": 4096}, {"pool_values": False},
                        {"pool_values": False, "ahead_max_entries": 0},
                        {"values_max_entries": 0},
                        {"values_max_entries": 0, "pool_link_difference": 1e-9})]
    reference = parts[0]
    assert reference.n_regions > 100
    for part in parts[1:]:
        assert part.n_regions == reference.n_regions
        np.testing.assert_allclose(part.vertices, reference.vertices, rtol=0, atol=1e-10 * half)
        assert part.verify(net).ok


class LeakyPools(nn.Module):
    """LeakyReLU -> 2x2 max-pool, then ReLU -> overlapping 3/2 max-pool, then a linear head
    (the pooled site's activation is not a plain ReLU's; the second pool's windows share
    candidates)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 3, 3), nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 2 * 2, 6)

    def forward(self, x):
        z = F.max_pool2d(F.leaky_relu(self.c1(x), 0.2), 2)  # 12 -> 10 -> 5
        z = F.max_pool2d(F.relu(self.c2(z)), 2, 1)  # 5 -> 3 -> 2
        return F.relu(self.fc(z.flatten(1)))


@pytest.mark.parametrize("kind", ["poolnet", "overlapping", "leaky"])
def test_stage_values_from_the_pooled_site_equal_forward_passes(kind):
    """A max-pool of a site's activation takes its stages' values at the vertices from that
    site's (gathered windows, the recorder's running maximum) and the next site's through
    the pool's link; forward passes at every vertex (pool_values=False) give the same
    partition, vertex for vertex, and the oracle agrees."""
    if kind == "poolnet":
        net: nn.Module = PoolNet(1, 2, 2, True)
        x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    elif kind == "overlapping":
        net = PoolNet(2, 3, 2, True)
        x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    else:
        torch.manual_seed(0)
        net = LeakyPools().double().eval()
        x = torch.randn(3, 1, 12, 12, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    plane = rs.Plane.through(x[0], x[1], x[2], margin=0.3)
    fast = rs.slice_regions(net, plane)
    slow = rs.slice_regions(net, plane, options=rs.EngineOptions(pool_values=False))
    assert fast.n_regions == slow.n_regions > 50
    np.testing.assert_allclose(fast.vertices, slow.vertices, rtol=0, atol=1e-9 * plane.diameter)
    for site in range(len(fast.sites)):
        assert (fast.active(site) == slow.active(site)).all()
    report = fast.verify(net)
    assert report.ok, report
    if isinstance(net, PoolNet):
        _check_against_grid(net, fast, plane, unseen_cells=16.0)


def test_linear_from_first_equals_the_product_for_dense_and_sparse_links():
    """A link's product of row blocks as each block's first row's plus the differences
    through the columns where rows differ; None past the given fraction of columns."""
    from reluscope.nets.links import Link, SparseColumns

    gen = torch.Generator().manual_seed(3)
    matrix = torch.randn(7, 10, generator=gen, dtype=torch.float64)
    matrix[matrix.abs() < 0.7] = 0.0
    bias = torch.randn(7, generator=gen, dtype=torch.float64)
    columns = SparseColumns.from_dense(matrix.numpy())
    links = [Link(bias, dense=matrix),
             Link(bias, columns=columns, operator=lambda a: a @ matrix.T + bias)]
    rows = torch.randn(3, 1, 10, generator=gen, dtype=torch.float64).repeat(1, 6, 1)
    rows[:, 2:, 4] += torch.randn(3, 4, generator=gen, dtype=torch.float64)
    rows[1, 5, 8] = 0.0
    for link in links:
        out = link.linear_from_first(rows, 0.25)
        assert out is not None
        np.testing.assert_allclose(out.numpy(), (rows @ matrix.T).numpy(), rtol=0, atol=1e-13)
        assert link.linear_from_first(rows, 0.15) is None  # 2 of 10 inputs differ
        same = rows[:, :1].repeat(1, 4, 1)  # no row differs: the first row's product
        np.testing.assert_allclose(link.linear_from_first(same, 0.1).numpy(),
                                   (same @ matrix.T).numpy(), rtol=0, atol=1e-13)


def test_pool_sources_and_links_against_torch():
    """The recorder's candidate table gives F.max_pool2d's maxima and argmax positions, and
    the link from a pool's output to the next site is that layer's autograd Jacobian; a pool
    of something other than a site's activation has no source."""
    from reluscope.nets.plane_network import Network
    from reluscope.nets.zoo import LeNet

    torch.manual_seed(0)
    model = LeNet().double().eval()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    net = Network(model, rs.Plane.through(x[0], x[1], x[2]))
    gen = torch.Generator().manual_seed(2)
    for first, pooled_site, conv_shape in ((1, 0, (6, 24, 24)), (5, 4, (16, 8, 8))):
        source = net.pool_source(first)
        assert source is not None and source.site == pooled_site
        assert net.pool_source(first + 2) is source  # every stage of the pool
        act = torch.rand(4, *conv_shape, generator=gen, dtype=torch.float64)
        best, where = F.max_pool2d(act, 2, return_indices=True)
        cand = torch.tensor(source.candidates)  # (the table is read-only)
        flat = act.reshape(4, -1)
        np.testing.assert_array_equal(flat[:, cand].max(dim=1).values.numpy(), best.reshape(4, -1).numpy())
        stage = flat[:, cand].argmax(dim=1)  # distinct random values: one argmax
        channel = torch.arange(cand.shape[1]) // (where.shape[2] * where.shape[3])
        spatial = conv_shape[1] * conv_shape[2]
        np.testing.assert_array_equal(cand[stage, torch.arange(cand.shape[1])] - channel * spatial,
                                      where.reshape(4, -1))
    assert net.pool_link(2) is None and net.pool_link(5) is None  # no pool ends before these
    for site, layer, shape in ((4, model[3], (6, 12, 12)), (8, nn.Sequential(model[6], model[7]),
                                                                 (16, 4, 4))):
        link = net.pool_link(site)
        assert link is not None
        zero = torch.zeros(int(np.prod(shape)), dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(
            lambda a, layer=layer, shape=shape: layer(a.reshape(1, *shape)).reshape(-1), zero)
        matrix = link.columns.dense_columns(np.arange(len(zero))).T if link.sparse else link.dense.numpy()
        np.testing.assert_allclose(matrix, jac.numpy(), rtol=1e-12, atol=1e-12)
        pooled = torch.rand(3, len(zero), generator=gen, dtype=torch.float64)
        with torch.no_grad():
            direct = layer(pooled.reshape(3, *shape)).reshape(3, -1)
        np.testing.assert_allclose(link.apply(pooled).numpy(), direct.numpy(), rtol=1e-12, atol=1e-12)
    before = PoolNet(0, 2, 2, relu_first=False)  # conv -> max-pool -> ReLU: no site pooled
    y = torch.randn(3, 1, 8, 8, generator=gen, dtype=torch.float64)
    plain = Network(before, rs.Plane.through(y[0], y[1], y[2]))
    assert plain.sites[0].pool_stage == 1 and plain.pool_source(0) is None


@pytest.mark.parametrize("kind", ["lenet", "overlapping", "leaky", "pool-then-relu"])
def test_maps_through_max_pools_equal_forward_mode_passes(kind):
    """chain_maps goes through a max-pool of a site's activation (stages by gathered
    candidates under forced patterns, the pool's output through its link): the same maps
    as the generic masked forward-mode pass, for random forced patterns of every site."""
    from reluscope.nets.plane_network import Network
    from reluscope.nets.zoo import LeNet

    torch.manual_seed(0)
    size = 12
    if kind == "lenet":
        model: nn.Module = LeNet(channels=(2, 3), hidden=8).double().eval()
        size = 28
    elif kind == "overlapping":
        model = PoolNet(2, 3, 2, True)
    elif kind == "leaky":
        model = LeakyPools().double().eval()
    else:
        model = PoolNet(0, 2, 2, relu_first=False)
    if isinstance(model, PoolNet):
        size = 8
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(3, 1, size, size, generator=gen, dtype=torch.float64)
    net = Network(model, rs.Plane.through(x[0], x[1], x[2]))
    coords = torch.zeros(5, 2, dtype=torch.float64)
    checked = 0
    for site in range(1, len(net.sites)):
        masks = [torch.rand(5, s.size, generator=gen) > 0.5 for s in net.sites[:site]]
        maps = net.chain_maps(masks, site)
        if kind == "pool-then-relu":  # a pool of conv outputs (no site): no chain
            assert maps is None and not net.chained(site)
            continue
        assert maps is not None and net.chained(site)
        generic = torch.stack(net._generic_maps(coords, masks, site))
        scale = float(generic.abs().max()) + 1.0
        np.testing.assert_allclose(maps.numpy(), generic.numpy(), rtol=0, atol=1e-12 * scale)
        # through the pools' links as the first region's product plus the differences:
        # regions that differ anywhere, and regions that share all but a few bits
        near = [m[:1].repeat(5, 1) for m in masks]
        for m in near:
            m[1:, : m.shape[1] // 7 + 1] = torch.rand(4, m.shape[1] // 7 + 1, generator=gen) > 0.5
        for forced in (masks, near):
            plain = net.chain_maps(forced, site)
            by_difference = net.chain_maps(forced, site, pool_difference=1.0)
            assert plain is not None and by_difference is not None
            np.testing.assert_allclose(by_difference.numpy(), plain.numpy(), rtol=0, atol=1e-12 * scale)
        checked += 1
    assert kind == "pool-then-relu" or checked == len(net.sites) - 1
