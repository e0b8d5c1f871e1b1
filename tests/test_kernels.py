"""The 2D engine's compiled and sorting kernels agree with plain numpy / scipy."""

import numpy as np
import pytest
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from reluscope._kernels.bits import POPCOUNT, xor_popcount
from reluscope._kernels.hashing import KeyTable
from reluscope._kernels.sorting import (
    argsort_int,
    lexsort_int,
    unique_first,
    unique_first_inverse,
    unique_values,
)
from reluscope.regions.slice2d.arrangement import _components, _permutation_cycles


@pytest.mark.parametrize("high", [3, 10**6, 10**13, 2**61])
def test_integer_sorts_match_numpy(high):
    rng = np.random.default_rng(high % 1000)
    key = rng.integers(0, high, 50_000)
    assert np.array_equal(argsort_int(key), np.argsort(key, kind="stable"))
    other = rng.integers(0, 7, len(key))
    assert np.array_equal(lexsort_int((other, key)), np.lexsort((other, key)))
    values, first = unique_first(key)
    expect_values, expect_first, expect_inverse = np.unique(key, return_index=True,
                                                            return_inverse=True)
    assert np.array_equal(values, expect_values) and np.array_equal(first, expect_first)
    assert np.array_equal(unique_values(key), expect_values)
    _, first2, inverse = unique_first_inverse(key)
    assert np.array_equal(first2, expect_first) and np.array_equal(inverse, expect_inverse)


def test_negative_keys_sort_too():
    key = np.random.default_rng(0).integers(-10**9, 10**9, 20_000)
    assert np.array_equal(argsort_int(key), np.argsort(key, kind="stable"))


def test_key_table_finds_every_key_and_refuses_others():
    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(0, 2**40, 30_000))
    values = rng.random(len(keys))
    table = KeyTable(np.concatenate([keys, keys[:50]]), np.concatenate([values, values[:50]]))
    pick = rng.integers(0, len(keys), 100_000)
    assert np.array_equal(table(keys[pick]), values[pick])
    missing = np.setdiff1d(np.arange(100), keys)[:1]
    with pytest.raises(KeyError):
        table(missing)


def test_permutation_cycles_match_scipy_and_ranks():
    rng = np.random.default_rng(2)
    successor = rng.permutation(5000)
    count, cycle, dist = _permutation_cycles(successor)
    graph = coo_matrix((np.ones(5000), (np.arange(5000), successor)), shape=(5000, 5000))
    expect_count, expect = connected_components(graph, directed=True, connection="weak")
    assert count == expect_count
    assert np.array_equal(cycle, expect)  # both number cycles by their lowest element
    # the lowest element of each cycle is farthest from the end; each step is one closer
    lowest = np.full(count, 5000)
    np.minimum.at(lowest, cycle, np.arange(5000))
    assert np.array_equal(dist[lowest], np.bincount(cycle) - 1)
    after = successor != lowest[cycle]
    assert np.array_equal(dist[successor[after]], dist[after] - 1)


def test_permutation_cycles_refuse_a_map_that_is_not_a_permutation():
    assert _permutation_cycles(np.array([1, 2, 1]))[0] == -1
    assert _permutation_cycles(np.array([0, 5]))[0] == -1


def test_components_match_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 3000, 2000), rng.integers(0, 3000, 2000)
    count, label = _components(3000, a, b)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(3000, 3000))
    expect_count, expect = connected_components(graph, directed=False)
    assert count == expect_count
    assert np.array_equal(label, expect)


def test_xor_popcount_counts_differing_bits():
    rng = np.random.default_rng(4)
    first = rng.integers(0, 256, (300, 5)).astype(np.uint8)
    f, g = rng.integers(0, 300, 1000), rng.integers(0, 300, 1000)
    expect = POPCOUNT[first[f] ^ first[g]].sum(axis=1)
    assert np.array_equal(xor_popcount(first, f, g), expect)


def test_xor_popcount_of_many_word_rows_split_over_threads(monkeypatch):
    """Rows of whole 64-bit words, compared a word at a time, in one slice of the pairs per
    thread once there are enough of them: the counts are the per-byte ones, in order."""
    import reluscope._kernels.bits as bits

    monkeypatch.setattr(bits.os, "cpu_count", lambda: 3)  # three slices, even on one core
    rng = np.random.default_rng(5)
    rows = rng.integers(0, 256, (200, 24)).astype(np.uint8)
    rows[1::2] = rows[::2]  # and pairs differing in one bit
    rows[1::2, 3] ^= 16
    f, g = rng.integers(0, 200, 5000), rng.integers(0, 200, 5000)
    f[:100], g[:100] = np.arange(0, 200, 2), np.arange(1, 200, 2)
    expect = POPCOUNT[rows[f] ^ rows[g]].sum(axis=1)
    monkeypatch.setattr(bits, "PARALLEL_WORDS", 1000)
    got = xor_popcount(rows, f, g)
    assert np.array_equal(got, expect)
    assert (got[:100] == 1).all()


@pytest.mark.parametrize("width", [1, 8, 13, 40])
def test_distinct_rows_are_numpys_unique_rows(width, monkeypatch):
    import reluscope._kernels.sorting as sorting

    rng = np.random.default_rng(width)
    base = rng.integers(0, 256, (300, width), dtype=np.uint8)
    rows = base[rng.integers(0, 300, 5000)]  # many repeats
    rows[::7, 0] ^= 1  # and near-repeats differing in one bit
    expected = np.unique(rows, axis=0, return_inverse=True)[1].ravel()
    for hashed in (True, False):
        if not hashed:  # every hash equal: the collision check must fall back to exact bytes
            monkeypatch.setattr(sorting, "row_hashes", lambda words: np.zeros(len(words), np.uint64))
        ids = sorting.distinct_rows(rows)
        assert ids.max() + 1 == expected.max() + 1
        # the same partition of the rows into classes
        pairs = np.unique(np.stack([ids, expected], 1), axis=0)
        assert len(pairs) == expected.max() + 1
    assert sorting.distinct_rows(np.zeros((0, 4), np.uint8)).shape == (0,)



def test_xor_popcount_by_words_equals_the_byte_count():
    rng = np.random.default_rng(7)
    for width in (8, 16, 784):  # whole 64-bit words: compared a word at a time
        rows = rng.integers(0, 256, (50, width)).astype(np.uint8)
        near = rows.copy()
        near[np.arange(50), rng.integers(0, width, 50)] ^= np.uint8(1)  # neighbours: one bit
        both = np.concatenate([rows, near])
        f, g = rng.integers(0, 100, 500), rng.integers(0, 100, 500)
        f[:50], g[:50] = np.arange(50), 50 + np.arange(50)
        expect = POPCOUNT[both[f] ^ both[g]].sum(axis=1)
        assert np.array_equal(xor_popcount(both, f, g), expect)
        assert (expect[:50] == 1).all()
    assert len(xor_popcount(np.zeros((0, 8), np.uint8), np.zeros(0, int), np.zeros(0, int))) == 0


def test_set_and_clear_bits_match_numpys_unbuffered_ops():
    """The compiled bit setters against ufunc.at, with repeated (row, bit) entries and on a
    view of rows (the engine fills one site's rows through views)."""
    from reluscope._kernels.bits import clear_bit, set_bit

    rng = np.random.default_rng(8)
    packed = rng.integers(0, 256, (60, 7)).astype(np.uint8)
    expect = packed.copy()
    rows, bit = rng.integers(0, 30, 500), rng.integers(0, 56, 500)
    set_bit(packed[20:50], rows, bit)
    np.bitwise_or.at(expect, (rows + 20, bit >> 3), (128 >> (bit & 7)).astype(np.uint8))
    assert np.array_equal(packed, expect)
    clear_bit(packed, rows[:250], bit[:250])
    np.bitwise_and.at(expect, (rows[:250], bit[:250] >> 3), ~(128 >> (bit[:250] & 7)).astype(np.uint8))
    assert np.array_equal(packed, expect)


def _sorted_twins(ptr, vid):
    """The sort-based reference: slots grouped by undirected edge key, lowest two per group."""
    from reluscope._kernels.rings import next_slot

    b = vid[next_slot(ptr)]
    key = np.minimum(vid, b) * (int(vid.max()) + 1) + np.maximum(vid, b)
    order = np.argsort(key, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(key[order])) + 1)
    first = np.array([g[0] for g in groups])
    second = np.array([g[1] if len(g) > 1 else -1 for g in groups])
    return first, second, b[first]


@pytest.mark.parametrize("seed", [0, 1])
def test_ring_edges_pairs_each_edge_like_a_sort_by_edge_key(seed):
    import torch

    import reluscope as rs
    from reluscope._kernels.rings import edge_twins, ring_edges, ring_ids

    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(2, 24), torch.nn.ReLU(), torch.nn.Linear(24, 24),
                              torch.nn.ReLU(), torch.nn.Linear(24, 1))
    part = rs.slice_regions(net, rs.Plane(torch.zeros(2), torch.eye(2), ((-3, 3), (-3, 3))))
    ptr, vid = part.face_offsets, part.face_vertices
    first, second, head, ring_first, ring_second = ring_edges(ptr, vid, part.n_vertices)
    want_first, want_second, want_head = _sorted_twins(ptr, vid)
    assert np.array_equal(first, want_first) and np.array_equal(second, want_second)
    assert np.array_equal(head, want_head)
    assert np.array_equal(np.stack(edge_twins(ptr, vid)), np.stack([first, second]))
    ring = ring_ids(ptr)
    assert np.array_equal(ring_first, ring[first])
    assert np.array_equal(ring_second, np.where(second >= 0, ring[np.maximum(second, 0)], -1))
    # every interior edge has exactly one twin, running the other way
    inner = second >= 0
    assert np.array_equal(vid[second[inner]], head[inner])


def test_ring_edges_of_rings_sharing_an_edge_three_times():
    from reluscope._kernels.rings import ring_edges

    # three rings along edge 0-1 (not a partition; the kernel keeps the lowest two slots)
    ptr = np.array([0, 3, 6, 9])
    vid = np.array([0, 1, 2, 1, 0, 3, 0, 1, 4])
    first, second, head, _, _ = ring_edges(ptr, vid, 5)
    want_first, want_second, want_head = _sorted_twins(ptr, vid)
    assert np.array_equal(first, want_first) and np.array_equal(second, want_second)
    assert np.array_equal(head, want_head)


def test_merge_faces_copies_rings_in_parent_order():
    from reluscope.regions.patterns import PackedPatterns
    from reluscope.regions.slice2d.faces import Faces, merge_faces

    rng = np.random.default_rng(3)

    def faces(n, parents):
        lengths = rng.integers(3, 7, n)
        ptr = np.concatenate([[0], np.cumsum(lengths)])
        vid = rng.integers(0, 1000, ptr[-1])
        return Faces(ptr, vid, vid * 10 + 1, PackedPatterns(), np.asarray(parents))

    sets = [faces(5, [0, 2, 2, 4, 7]), faces(4, [1, 2, 5, 7]), faces(3, [0, 3, 7])]
    rows = np.arange(12, dtype=np.uint8)[:, None]
    merged = merge_faces(sets, rows)
    rings = [f.vid[f.ptr[i]:f.ptr[i + 1]] for f in sets for i in range(f.count)]
    parents = np.concatenate([f.parent for f in sets])
    order = np.argsort(parents, kind="stable")
    assert np.array_equal(merged.parent, np.sort(parents))
    for r, source in enumerate(order):
        got = merged.vid[merged.ptr[r]:merged.ptr[r + 1]]
        assert np.array_equal(got, rings[source])
        assert np.array_equal(merged.lab[merged.ptr[r]:merged.ptr[r + 1]], got * 10 + 1)
    assert np.array_equal(merged.patterns.of(0)[:, 0], order)


def test_interpolated_rows_equal_numpys_to_the_bit():
    from reluscope._kernels.interpolate import interpolate_rows

    rng = np.random.default_rng(5)
    n_old, n, width = 50, 400, 37
    rows = np.zeros((n, width))
    rows[:n_old] = rng.normal(size=(n_old, width)) * 1e3
    a = np.full(n, -1, np.int64)
    b = np.full(n, -1, np.int64)
    t = rng.random(n)
    for v in range(n_old, n):  # each vertex on a segment between two earlier ones
        a[v], b[v] = rng.integers(0, v, 2)
    want = rows.copy()
    for v in range(n_old, n):
        want[v] = (want[b[v]] - want[a[v]]) * t[v] + want[a[v]]
    interpolate_rows(rows, a, b, t, n_old, n)
    assert np.array_equal(rows, want)


@pytest.mark.parametrize("size", [1, 8, 13, 64, 1000])
def test_differing_bits_match_unpacked_rows(size):
    from reluscope._kernels.bits import differing_bits

    rng = np.random.default_rng(size)
    # random rows, padding bits included (they must be ignored), and near-equal pairs
    packed = [rng.integers(0, 256, (40, (s + 7) // 8), dtype=np.uint8) for s in (size, 5)]
    packed[0][20:] = packed[0][:20] ^ (rng.random((20, packed[0].shape[1])) < 0.05) * np.uint8(1 << 3)
    left, right = rng.integers(0, 40, 300), rng.integers(0, 40, 300)
    pair, site, neuron = differing_bits(packed, [size, 5], left, right)
    want = []
    for s, (rows, bits) in enumerate(zip(packed, [size, 5], strict=True)):
        diff = np.unpackbits(rows[left] ^ rows[right], axis=1)[:, :bits]
        p, k = np.nonzero(diff)
        want.append(np.stack([p, np.full(len(p), s), k]))
    assert np.array_equal(np.stack([pair, site, neuron]), np.concatenate(want, axis=1))


def test_batch_bounds_cover_every_item_in_runs_of_about_the_batch():
    from reluscope._kernels.rings import batch_bounds

    rng = np.random.default_rng(0)
    for n, batch in [(0, 5), (1, 5), (50, 1), (50, 7), (200, 1000), (200, 40)]:
        lengths = rng.integers(1, 30, n)
        bounds = batch_bounds(lengths, batch)
        assert bounds[0] == 0 and bounds[-1] == n and (np.diff(bounds) > 0).all()
        sums = np.add.reduceat(lengths, bounds[:-1]) if n else np.zeros(0)
        # runs end where the running total passes a multiple of the batch: a run goes past
        # the batch only by its first item
        runs = np.split(lengths, bounds[1:-1])
        assert all(r[1:].sum() <= batch for r in runs)
        assert len(runs) <= lengths.sum() // batch + 1
        assert sums.sum() == lengths.sum()


def test_crossing_chord_pairs_equal_a_brute_force_interleaving_test():
    from reluscope.regions.slice2d.arrangement import _crossing_pairs

    rng = np.random.default_rng(1)
    face = np.sort(rng.integers(0, 6, 80))
    ends = np.sort(rng.integers(0, 12, (80, 2)), axis=1)
    ends[:, 1] += ends[:, 0] == ends[:, 1]
    drawn = rng.random(80) > 0.1
    p, q = _crossing_pairs(face, ends[:, 0], ends[:, 1], drawn)
    want = [(i, j) for i in range(80) for j in range(i + 1, 80)
            if face[i] == face[j] and drawn[i] and drawn[j]
            and not set(ends[i]) & set(ends[j])
            and (ends[i, 0] < ends[j, 0] < ends[i, 1]) != (ends[i, 0] < ends[j, 1] < ends[i, 1])]
    assert list(zip(p.tolist(), q.tolist(), strict=True)) == want and len(want) > 10


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_window_values_are_the_recorders_running_maximum(slope):
    """Each stage's x_s - m_{s-1} and the pool's output m_{K-1}, the same float64 operations
    as the recorder's torch ones: equal to the bit."""
    from reluscope._kernels.windows import window_values

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(7, 30))
    rows[:, :5] = rows[:, 5:10]  # equal candidates: ties
    candidates = rng.permutation(30)[:24].reshape(4, 6)
    act = torch.from_numpy(rows)
    act = torch.where(act > 0, act, act * slope) if slope else torch.relu(act)
    best = act[:, candidates[0]]
    for stage in range(1, 5):
        out = np.empty((7, 6))
        window_values(rows, candidates, stage, slope, out)
        if stage < 4:
            z = act[:, candidates[stage]] - best
            np.testing.assert_array_equal(out, z.numpy())
            best = best + torch.relu(z)
        else:
            np.testing.assert_array_equal(out, best.numpy())


def test_zero_ties_sets_small_nonzero_values_to_zero():
    from reluscope._kernels.windows import zero_ties

    rng = np.random.default_rng(1)
    values = rng.normal(size=(50, 9)) * 10.0 ** rng.integers(-14, 1, size=(50, 9))
    values[3, 4] = 0.0
    before = values.copy()
    rows, cols, old = zero_ties(values, 1e-9)
    want_r, want_c = np.nonzero((np.abs(before) <= 1e-9) & (before != 0))
    np.testing.assert_array_equal(rows, want_r)
    np.testing.assert_array_equal(cols, want_c)
    np.testing.assert_array_equal(old, before[want_r, want_c])
    expected = before.copy()
    expected[want_r, want_c] = 0.0
    np.testing.assert_array_equal(values, expected)
    assert len(rows) > 0
