"""Activation patterns stored by reference: equal to the dense copies they replace."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import reluscope as rs
from reluscope._kernels.bits import POPCOUNT, bit_at, differing_bits, varying_columns, xor_popcount
from reluscope.regions.options import EngineOptions
from reluscope.regions.patterns import ColumnSubset, PackedPatterns


def _composed():
    """Three sites cut in turn, rows held in another order at site 1 (as a merge holds
    them); with the dense arrays the copies would have been."""
    rng = np.random.default_rng(5)
    site0 = rng.integers(0, 256, (6, 3)).astype(np.uint8)
    site1 = rng.integers(0, 256, (9, 2)).astype(np.uint8)
    parent1, order1 = rng.integers(0, 6, 9), rng.permutation(9)
    patterns = PackedPatterns([site0]).inherit(parent1, PackedPatterns([site1], [order1]))
    site2 = rng.integers(0, 256, (14, 4)).astype(np.uint8)
    parent2 = rng.integers(0, 9, 14)
    patterns = patterns.inherit(parent2, PackedPatterns([site2]))
    return patterns, [site0[parent1][parent2], site1[order1][parent2], site2]


def test_inherited_patterns_read_as_the_dense_arrays():
    patterns, expect = _composed()
    assert len(patterns) == 3
    for got, want in zip(patterns, expect, strict=True):
        assert np.array_equal(got, want)
    assert np.array_equal(patterns[-1], expect[-1])
    assert [p.shape for p in patterns[1:]] == [e.shape for e in expect[1:]]
    with pytest.raises(IndexError):
        patterns[3]
    with pytest.raises(rs.InputValueError, match="one entry .* per site: 2.*1 entries.*None"):
        PackedPatterns(patterns.rows[:2], [None])
    faces = np.array([13, 0, 5, 5])
    taken = patterns.take(faces)
    for s, want in enumerate(expect):
        assert np.array_equal(patterns.of(s, faces), want[faces])
        assert np.array_equal(taken[s], want[faces])
        assert np.array_equal(patterns.rows[s][patterns.owners(s)], want)


def test_shared_row_queries_equal_the_dense_ones():
    patterns, expect = _composed()
    rng = np.random.default_rng(6)
    f, g = rng.integers(0, 14, 200), rng.integers(0, 14, 200)
    sizes = [20, 13, 30]
    for s, dense in enumerate(expect):
        assert np.array_equal(patterns.flips(s, f, g), xor_popcount(dense, f, g))
        assert np.array_equal(patterns.popcounts(s), POPCOUNT[dense].sum(axis=1))
        neuron = rng.integers(0, sizes[s], 200)
        assert np.array_equal(patterns.bits(s, f, neuron), bit_at(dense, f, neuron))
    got = patterns.differing(sizes, f, g)
    want = differing_bits(expect, sizes, f, g)
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a, b)


@pytest.fixture(scope="module")
def cnn_slice():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 10), nn.ReLU(), nn.Linear(10, 3)).double().eval()
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    return model, rs.slice_regions(model, rs.Plane.through(x[0], x[1], x[2], margin=0.3))


def test_a_conv_slice_keeps_its_early_sites_by_reference(cnn_slice, tmp_path):
    model, part = cnn_slice
    assert part.n_regions > 100
    assert part.patterns.owner[0] is not None and len(part.patterns.rows[0]) < part.n_regions
    assert part.verify(model).ok
    for s in range(len(part.sites)):
        assert part.patterns[s].shape == (part.n_regions, (part.sites[s].size + 7) // 8)
        assert np.array_equal(part.active(s), np.unpackbits(part.patterns[s], axis=1,
                                                            count=part.sites[s].size).astype(bool))
    # saved by reference, read back the same
    back = rs.Partition2D.load(part.save(tmp_path / "cnn"))
    assert back.patterns.owner[0] is not None
    for a, b in zip(back.patterns, part.patterns, strict=True):
        assert np.array_equal(a, b)
    assert back.verify(model).ok
    # dense arrays given back (an edit, an earlier layout) are wrapped, not refused
    dense = dataclasses.replace(part, patterns=tuple(p.copy() for p in part.patterns))
    assert isinstance(dense.patterns, PackedPatterns) and dense.verify(model).ok


def test_a_damaged_row_index_is_refused_on_load(cnn_slice, tmp_path):
    _, part = cnn_slice
    path = part.save(tmp_path / "cnn")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["pattern_owner_0"] = arrays["pattern_owner_0"] + len(arrays["pattern_0"])
    np.savez(path, **arrays)
    with pytest.raises(rs.PartitionFileError, match="pattern_owner_0.*damaged"):
        rs.Partition2D.load(path)
    del arrays["pattern_owner_0"]
    np.savez(path, **arrays)
    with pytest.raises(rs.PartitionFileError, match="pattern_0 has .* rows for"):
        rs.Partition2D.load(path)


def _with_column_subsets(patterns, sizes, rng):
    """`patterns` with every site's rows stored as a column subset: the neurons that vary
    over its rows plus a few constant ones (as chords that end up on one side)."""
    rows, subsets = [], []
    for s, size in enumerate(sizes):
        full = patterns.rows[s]
        extra = rng.choice(size, 3, replace=False)
        subset = ColumnSubset.of(full, size, extra)
        rows.append(subset.gather(full))
        subsets.append(subset)
    return PackedPatterns(rows, patterns.owner, subsets)


def test_column_subset_rows_answer_every_query_like_full_rows():
    rng = np.random.default_rng(8)
    sizes = [20, 13, 30]
    patterns, _ = _composed()
    # padding bits zero, and a constant neuron in every site (what a subset leaves out)
    for s, size in enumerate(sizes):
        bits = np.unpackbits(patterns.rows[s], axis=1, count=size).astype(bool)
        bits[:, 2] = True
        patterns.rows[s] = np.packbits(bits, axis=1)
    expect = [patterns.of(s) for s in range(3)]
    stored = _with_column_subsets(patterns, sizes, rng)
    for s in range(len(sizes)):
        subset = stored.subset[s]
        assert 2 not in subset.columns
        assert np.array_equal(stored[s], expect[s])
        assert np.array_equal(stored.distinct(s), patterns.rows[s])
        assert np.array_equal(stored.popcounts(s), POPCOUNT[expect[s]].sum(axis=1))
    f, g = rng.integers(0, 14, 300), rng.integers(0, 14, 300)
    faces = np.array([3, 0, 13, 3])
    for s, size in enumerate(sizes):
        assert np.array_equal(stored.flips(s, f, g), xor_popcount(expect[s], f, g))
        neuron = rng.integers(0, size, 300)
        assert np.array_equal(stored.bits(s, f, neuron), bit_at(expect[s], f, neuron))
        assert np.array_equal(stored.take(faces)[s], expect[s][faces])
    for a, b in zip(stored.differing(sizes, f, g), differing_bits(expect, sizes, f, g), strict=True):
        assert np.array_equal(a, b)
    # inherited pieces keep the subsets of the sites they inherit
    more = stored.inherit(np.array([0, 0, 5]), PackedPatterns([np.zeros((3, 1), np.uint8)]))
    assert more.subset[:3] == stored.subset and np.array_equal(more[1], expect[1][[0, 0, 5]])


def test_column_subset_kernels_against_a_brute_force_copy():
    rng = np.random.default_rng(9)
    bits = rng.random((50, 77)) < 0.5
    bits[:, rng.choice(77, 30, replace=False)] = rng.random(30) < 0.5  # constant columns
    packed = np.packbits(bits, axis=1)
    varying = np.flatnonzero((bits != bits[:1]).any(axis=0))
    also = np.array([0, 76, int(varying[0])])
    columns = varying_columns(packed, 77, also)
    assert np.array_equal(columns, np.union1d(varying, also))
    subset = ColumnSubset.of(packed, 77, also)
    stored = subset.gather(packed)
    assert np.array_equal(np.unpackbits(stored, axis=1, count=len(columns)).astype(bool), bits[:, columns])
    rows = rng.integers(0, 50, 40)
    assert np.array_equal(subset.expand(stored, rows), packed[rows])
    assert (subset.position[columns] == np.arange(len(columns))).all()
    assert (np.delete(subset.position[:77], columns) == -1).all()


@pytest.mark.parametrize("scale", [0.03, 0.1])
def test_slices_with_column_subsets_equal_slices_with_full_rows(scale, data_dir):
    """The engine's stored rows change nothing a user reads: SmallCNN squares on MNIST
    (the walk reads its gates from subset rows) and an MLP, both ways."""
    from reluscope.data import load_idx_images
    from reluscope.nets.zoo import SmallCNN

    images, _ = load_idx_images("mnist", "test", data_dir)
    x = torch.from_numpy(images[:3]).double()[:, None]
    plane = rs.Plane.through(x[0], x[1], x[2], margin=0.2)
    half = scale * plane.extent[0][1]
    square = rs.Plane(plane.origin, plane.basis, ((-half, half), (-half, half)))
    torch.manual_seed(0)
    model = SmallCNN().eval()
    on = rs.slice_regions(model, square)
    off = rs.slice_regions(model, square, options=EngineOptions(column_subsets=False))
    assert all(s is not None for s in on.patterns.subset)
    assert all(s is None for s in off.patterns.subset)
    assert on.n_regions == off.n_regions > 1000
    for name in ("face_offsets", "face_vertices", "edges", "edge_faces", "edge_site", "edge_neuron"):
        assert np.array_equal(getattr(on, name), getattr(off, name)), name
    for s in range(len(on.sites)):
        assert np.array_equal(on.patterns[s], off.patterns[s])
        assert np.array_equal(on.patterns.popcounts(s), off.patterns.popcounts(s))
    assert on.patterns.nbytes * 10 < off.patterns.nbytes
    if scale == 0.03:
        assert on.verify(model).ok


def test_column_subsets_are_saved_and_a_damaged_one_refused(cnn_slice, tmp_path):
    _, part = cnn_slice
    assert any(s is not None for s in part.patterns.subset)
    path = part.save(tmp_path / "cnn")
    back = rs.Partition2D.load(path)
    for a, b in zip(back.patterns, part.patterns, strict=True):
        assert np.array_equal(a, b)
    assert [s is None for s in back.patterns.subset] == [s is None for s in part.patterns.subset]
    site = next(i for i, s in enumerate(part.patterns.subset) if s is not None)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    columns = arrays[f"pattern_columns_{site}"]
    for damage, match in ((columns[::-1], "not increasing"), (columns + 10**6, "not increasing"),
                          (None, "only one of")):
        edited = dict(arrays)
        if damage is None:
            del edited[f"pattern_columns_{site}"]
        else:
            edited[f"pattern_columns_{site}"] = damage
        np.savez(path, **edited)
        with pytest.raises(rs.PartitionFileError, match=match):
            rs.Partition2D.load(path)
