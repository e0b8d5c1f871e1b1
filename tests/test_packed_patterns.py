"""Activation patterns stored by reference: equal to the dense copies they replace."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import reluscope as rs
from reluscope._kernels.bits import POPCOUNT, bit_at, differing_bits, xor_popcount
from reluscope.regions.patterns import PackedPatterns


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
