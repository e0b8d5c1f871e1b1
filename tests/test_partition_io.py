"""Saving, loading and converting partitions."""

import numpy as np
import pytest
import shapely
import torch

import reluscope as rs
from conftest import random_mlp, square


@pytest.fixture(scope="module")
def part():
    return rs.slice_regions(random_mlp(7, [8, 8]), square(2.0))


def test_save_load_roundtrip(part, tmp_path):
    path = part.save(tmp_path / "slice")
    assert path.name == "slice.npz"
    back = rs.Partition2D.load(path)
    assert back.n_regions == part.n_regions
    for name in ("vertices", "face_offsets", "face_vertices", "edges", "edge_faces",
                 "edge_site", "edge_neuron"):
        assert np.array_equal(getattr(back, name), getattr(part, name))
    assert all(np.array_equal(a, b) for a, b in zip(back.patterns, part.patterns, strict=True))
    assert back.sites == part.sites
    assert torch.equal(back.plane.basis, part.plane.basis)
    assert back.verify(random_mlp(7, [8, 8])).ok
    assert not list(tmp_path.glob("*.tmp"))


def test_load_errors(tmp_path):
    with pytest.raises(rs.PartitionFileError, match="does not exist"):
        rs.Partition2D.load(tmp_path / "missing.npz")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(rs.PartitionFileError, match="could not be read.*recompute"):
        rs.Partition2D.load(broken)
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.frombuffer(b'{"format": "x"}', dtype=np.uint8))
    with pytest.raises(rs.PartitionFileError, match="written by Partition2D.save"):
        rs.Partition2D.load(other)


def test_to_shapely_matches_areas_and_tiles_the_domain(part):
    polys = part.to_shapely()
    assert len(polys) == part.n_regions
    assert np.all(shapely.is_valid(polys))
    assert shapely.area(polys) == pytest.approx(part.areas(), rel=1e-12, abs=1e-15)
    union = shapely.union_all(polys)
    assert union.area == pytest.approx(16.0, rel=1e-12)


def test_region_of_and_face(part):
    pts = part.interior_points()[:20]
    assert np.array_equal(part.region_of(pts), np.arange(20))
    assert part.region_of([[100.0, 100.0]]).tolist() == [-1]
    assert part.face(0).shape[1] == 2
    with pytest.raises(rs.InputValueError, match="in \\[0, "):
        part.face(part.n_regions)
    with pytest.raises(rs.InputValueError, match="Sites are numbered"):
        part.active(5)
    assert "Partition2D(n_regions=" in repr(part)
