"""Property tests on random networks (hypothesis)."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import reluscope as rs
from conftest import random_mlp, square

# every test runs with both ways the 2D engine finds chords

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@SETTINGS
@given(seed=st.integers(0, 10_000), depth=st.integers(1, 3), width=st.integers(1, 10),
       half=st.floats(0.5, 4.0))
def test_random_mlp_partitions_verify(slicer, seed, depth, width, half):
    model = random_mlp(seed, [width] * depth)
    part = slicer(model, square(half))
    report = part.verify(model)
    assert report.ok, report
    assert part.areas().sum() == pytest.approx((2 * half) ** 2, rel=1e-12)
    assert part.n_degenerate == 0


@SETTINGS
@given(seed=st.integers(0, 10_000), d_in=st.integers(3, 12))
def test_random_planes_in_higher_dimension(slicer, seed, d_in):
    model = random_mlp(seed, [8, 8], d_in=d_in)
    gen = torch.Generator().manual_seed(seed)
    plane = rs.Plane.around(torch.randn(d_in, generator=gen), 2.0, gen)
    part = slicer(model, plane)
    assert part.verify(model).ok


@SETTINGS
@given(seed=st.integers(0, 10_000), channels=st.integers(1, 3))
def test_random_cnn_partitions_verify(slicer, seed, channels):
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, channels, 3), nn.ReLU(), nn.Conv2d(channels, 2, 3, padding=1),
                        nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(2 * 2 * 2, 3))
    for p in net.parameters():
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.7)
    x = torch.rand(3, 1, 6, 6, generator=gen)
    plane = rs.Plane.through(x[0], x[1], x[2], margin=0.3)
    part = slicer(net.eval(), plane)
    assert part.verify(net).ok


@SETTINGS
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 10.0))
def test_positive_rescaling_of_a_neuron_changes_nothing(slicer, seed, scale):
    # float64 parameters, so the rescaling itself is exact to rounding
    model = random_mlp(seed, [6, 6]).double()
    part = slicer(model, square(2.0))
    scaled = random_mlp(seed, [6, 6]).double()
    with torch.no_grad():  # scale neuron 2 of layer 1 (and undo it in the next layer)
        scaled[0].weight[2] *= scale
        scaled[0].bias[2] *= scale
        scaled[2].weight[:, 2] /= scale
    other = slicer(scaled, square(2.0))
    assert other.n_regions == part.n_regions
    assert np.sort(other.areas()) == pytest.approx(np.sort(part.areas()), rel=1e-9, abs=1e-12)


def test_neighbours_differ_exactly_across_their_shared_edge(slicer):
    model = random_mlp(11, [10, 10, 10])
    part = slicer(model, square(2.0))
    inner = part.edge_faces[:, 1] >= 0
    for site in range(3):
        act = part.active(site)
        on = inner & (part.edge_site == site)
        left, right = part.edge_faces[on, 0], part.edge_faces[on, 1]
        flips = act[left] ^ act[right]
        assert (flips[np.arange(on.sum()), part.edge_neuron[on]]).all()
        assert (flips.sum(axis=1) == 1).all()


@SETTINGS
@given(seed=st.integers(0, 10_000), depth=st.integers(1, 3), width=st.integers(2, 12))
def test_arrangements_equal_cutting_in_rounds(slicer, seed, depth, width):
    """Cutting every face by all its chords at once gives the partition of one chord at a
    time (same regions, same areas), at every site."""
    from reluscope.regions.slice2d import cutting

    model = random_mlp(seed, [width] * depth)
    calls: list[bool] = []
    arrange_faces = cutting.Cutter.arrange_faces

    def counted(self, *args):
        result = arrange_faces(self, *args)
        calls.append(result is not None)
        return result

    with pytest.MonkeyPatch.context() as patch:  # counts calls, changes nothing
        patch.setattr(cutting.Cutter, "arrange_faces", counted)
        arranged = slicer.replace(arrange_min_chords=1)(model, square(2.0))  # every face with a chord
        rounds = slicer.replace(arrange=False)(model, square(2.0))
    assert all(calls)  # no site fell back to rounds on these generic networks
    assert arranged.n_regions == rounds.n_regions
    assert np.sort(arranged.areas()) == pytest.approx(np.sort(rounds.areas()), rel=1e-9, abs=1e-15)
    assert arranged.verify(model).ok


def test_arrangement_batches_fail_alone_and_change_nothing(slicer):
    """Faces cut all at once are arranged in batches of about ``arrange_batch_chords``
    chords: any batch size gives the same partition, and a batch whose arrangement is
    inconsistent (here: made to fail) sends only its own faces to rounds."""
    from reluscope.regions.slice2d import cutting

    model = random_mlp(5, [12, 12, 12])
    reference = slicer.replace(arrange=False)(model, square(2.0))
    real, calls = cutting.Cutter.arrange_faces, []

    def second_fails(self, faces, site, chords, canonical, base, busy):
        calls.append((site.index, len(busy)))
        assert np.array_equal(np.unique(chords.face), busy)  # each batch gets its own chords
        if len(calls) == 2:
            return None
        return real(self, faces, site, chords, canonical, base, busy)

    rounds_skip = []
    real_rounds = cutting.Cutter.cut_rounds

    def rounds(self, faces, site, chords, canonical, base, skip=None):
        rounds_skip.append(None if skip is None else int(skip.sum()))
        return real_rounds(self, faces, site, chords, canonical, base, skip)

    for budget in (1, 7, 1 << 16):
        calls.clear()
        rounds_skip.clear()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cutting.Cutter, "arrange_faces", second_fails)
            patch.setattr(cutting.Cutter, "cut_rounds", rounds)
            part = slicer.replace(arrange_min_chords=1, arrange_batch_chords=budget)(
                model, square(2.0))
        assert part.n_regions == reference.n_regions
        assert np.sort(part.areas()) == pytest.approx(np.sort(reference.areas()), rel=1e-9,
                                                      abs=1e-15)
        assert part.verify(model).ok
        by_site = {}
        for site, n in calls:
            by_site.setdefault(site, []).append(n)
        if budget == 1:  # one face per batch; the failed one is the only face of its batch
            assert all(n == 1 for _, n in calls)
        failed_site = calls[1][0]
        batches = by_site[failed_site]
        if len(batches) > 1:  # rounds skip the other batches' faces only
            assert rounds_skip[failed_site] == sum(batches) - calls[1][1]


class _PReLUCNN(nn.Module):
    """conv -> per-channel PReLU (two coincident neurons per unit) -> conv -> ReLU -> linear."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.c1, self.act = nn.Conv2d(1, 3, 3), nn.PReLU(3)
        self.c2, self.fc = nn.Conv2d(3, 4, 3, stride=2), nn.Linear(4 * 2 * 2, 3)
        with torch.no_grad():
            self.act.weight.copy_(torch.tensor([0.1, -0.4, 0.7]))

    def forward(self, x):
        return self.fc(torch.relu(self.c2(self.act(self.c1(x)))).flatten(1))


@pytest.mark.parametrize("case", ["mlp", "prelu cnn"])
def test_flooded_chord_bits_equal_evaluated_ones(slicer, case):
    """A face with many chords gets its pieces' chord bits by flooding from its largest
    piece across chord edges (flipping the crossed chord and those coincident with it);
    evaluating every chord at every piece gives the very same rows."""
    if case == "mlp":
        model, plane = random_mlp(3, [24, 24, 24]), square(2.0)
    else:
        model = _PReLUCNN().double().eval()
        gen = torch.Generator().manual_seed(2)
        plane = rs.Plane.through(*torch.randn(3, 1, 8, 8, generator=gen, dtype=torch.float64),
                                 margin=0.3)
    flooded = slicer.replace(dense_chords=4)(model, plane)  # every arranged face floods
    evaluated = slicer.replace(dense_chords=10**9)(model, plane)
    assert flooded.n_regions == evaluated.n_regions > 200
    np.testing.assert_array_equal(flooded.face_offsets, evaluated.face_offsets)
    for s in range(len(flooded.sites)):
        np.testing.assert_array_equal(flooded.patterns.of(s), evaluated.patterns.of(s))
    assert flooded.verify(model).ok


def _pattern_rows(part: rs.Partition2D) -> np.ndarray:
    """(F, total neurons) uint8 activation patterns, rows sorted (order-free comparison)."""
    rows = np.concatenate([part.active(s).astype(np.uint8) for s in range(len(part.sites))], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


def test_a_cnn_cut_in_rounds_equals_its_arrangement(data_dir):
    """The first site of a CNN on an MNIST plane cuts its one face by dozens of chords (35
    here: several bytes of chord bits per piece): cut in rounds (each piece's chord bits
    scattered into its pattern row at the end), the partition has the same regions, areas
    and patterns as the arrangement's."""
    from reluscope.data import load_idx_images
    from reluscope.nets.zoo import SmallCNN

    images, _ = load_idx_images("mnist", "test", data_dir)
    x = torch.from_numpy(images[:3]).double()[:, None]
    plane = rs.Plane.through(x[0], x[1], x[2], margin=0.2)
    half = 0.01 * plane.extent[0][1]
    small = rs.Plane(plane.origin, plane.basis, ((-half, half), (-half, half)))
    torch.manual_seed(0)
    model = SmallCNN().eval()
    arranged = rs.slice_regions(model, small)
    rounds = rs.slice_regions(model, small, options=rs.EngineOptions(arrange=False))
    assert rounds.n_regions == arranged.n_regions > 500
    assert np.sort(rounds.areas()) == pytest.approx(np.sort(arranged.areas()), rel=1e-9, abs=1e-15)
    np.testing.assert_array_equal(_pattern_rows(rounds), _pattern_rows(arranged))
    assert rounds.verify(model).ok


def test_an_inconsistent_arrangement_is_retried_with_a_smaller_snap(slicer):
    """When the arrangement at the snap distance is inconsistent (here: made to fail), it is
    built again with ``arrange_retry_snap`` of it before its faces go to rounds; the
    partition is the same."""
    from reluscope.regions.slice2d import cutting

    model = random_mlp(3, [10, 10])
    reference = slicer(model, square(2.0))
    real, snaps = cutting.arrange, []

    def first_fails(*args):
        snaps.append(args[8])  # arrange(ptr, vid, lab, xy, face, label, sign, evaluate, snap, ...)
        return None if len(snaps) == 1 else real(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cutting, "arrange", first_fails)
        retried = slicer.replace(arrange_min_chords=1)(model, square(2.0))
    assert len(snaps) >= 2 and snaps[1] == pytest.approx(1e-3 * snaps[0])
    assert retried.n_regions == reference.n_regions
    assert retried.verify(model).ok


def test_memory_batches_and_pool_compaction_change_nothing(slicer):
    """The batches that bound the engine's temporaries (edge crossings found and inserted,
    and an arrangement's chord signs, ``slot_batch`` slots at a time; the walk's output
    ``walk_buffer_pairs`` at a time) and the compaction of the rounds' ring pool give the
    same partition, bit for bit."""
    from reluscope.regions.slice2d.faces import RingPool

    model = random_mlp(5, [12, 12, 12])
    arranged = slicer.replace(arrange_min_chords=1)(model, square(2.0))
    for batch in (1, 7):
        part = slicer.replace(arrange_min_chords=1, slot_batch=batch, sign_batch=batch)(model, square(2.0))
        np.testing.assert_array_equal(part.vertices, arranged.vertices)
        np.testing.assert_array_equal(part.face_vertices, arranged.face_vertices)
        np.testing.assert_array_equal(_pattern_rows(part), _pattern_rows(arranged))
    reference = slicer.replace(arrange=False)(model, square(2.0))
    real, compactions = RingPool.compact, []

    def counted(self, starts, lengths):
        compactions.append(self.size)
        return real(self, starts, lengths)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RingPool, "compact", counted)
        for batch in (1, 7, 1 << 20):
            part = slicer.replace(arrange=False, slot_batch=batch, pool_compact_slots=1,
                                  walk_buffer_pairs=1)(model, square(2.0))
            np.testing.assert_array_equal(part.vertices, reference.vertices)
            np.testing.assert_array_equal(part.face_vertices, reference.face_vertices)
            np.testing.assert_array_equal(_pattern_rows(part), _pattern_rows(reference))
    assert compactions  # the pool was compacted (every round: a pool of 1 slot is too many)
    assert part.verify(model).ok


def test_released_vertex_values_change_nothing():
    """A site whose values at the vertices are not kept after its cut (the next site walks)
    keeps only its chords' neurons' columns for the cut (``VertexLookup.columns``): the same
    partition, bit for bit, as with the full table."""
    from reluscope.regions.slice2d.pairs import VertexLookup

    model = random_mlp(3, [96, 12, 12])
    options = rs.EngineOptions(walk_min_width=32)
    plane = square(0.3)
    real, compact = VertexLookup.columns, []

    def counted(self, neurons):
        out = real(self, neurons)
        compact.append(out.position is not None)
        return out

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(VertexLookup, "columns", counted)
        released = rs.slice_regions(model, plane, options=options)
        patch.setattr(VertexLookup, "columns", lambda self, neurons: self)
        full = rs.slice_regions(model, plane, options=options)
    assert any(compact)
    np.testing.assert_array_equal(released.vertices, full.vertices)
    np.testing.assert_array_equal(released.face_vertices, full.face_vertices)
    np.testing.assert_array_equal(_pattern_rows(released), _pattern_rows(full))
    assert released.verify(model).ok


def test_vertex_lookup_columns_read_the_same_values():
    from reluscope.regions.slice2d.pairs import VertexLookup

    values = np.random.default_rng(0).normal(size=(5, 40))
    neurons = np.array([3, 17, 3, 39])
    sub = VertexLookup(values).columns(neurons)
    assert sub.position is not None and sub.values.shape == (5, 4)  # 3 columns and a NaN one
    vertex = np.array([0, 4, 2, 1])
    np.testing.assert_array_equal(sub(vertex, neurons), values[vertex, neurons])
    assert np.isnan(sub(np.array([0]), np.array([5])))[0]
    assert VertexLookup(values).columns(np.arange(30)).position is None  # most of the site: kept
