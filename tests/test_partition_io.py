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


def test_to_frame_has_one_checked_row_per_region():
    model = random_mlp(7, [8, 8])
    part = rs.slice_regions(model, square(2.0))
    frame = part.to_frame(model)
    assert len(frame) == part.n_regions and frame["region"].tolist() == list(range(part.n_regions))
    assert frame["area"].to_numpy() == pytest.approx(part.areas(), rel=1e-12, abs=1e-15)
    polys = part.to_shapely()
    assert frame["perimeter"].to_numpy() == pytest.approx(shapely.length(polys), rel=1e-12)
    centroids = shapely.get_coordinates(shapely.centroid(polys))
    assert frame[["centroid_s", "centroid_t"]].to_numpy() == pytest.approx(centroids, rel=1e-9, abs=1e-12)
    assert np.all(shapely.contains_xy(polys, frame["point_s"], frame["point_t"]))
    for site in range(len(part.sites)):
        assert frame[f"active_site{site}"].tolist() == part.active(site).sum(axis=1).tolist()
    # equal hashes exactly for equal patterns (all sites)
    bits = np.concatenate([part.active(s) for s in range(len(part.sites))], axis=1)
    _, first = np.unique(bits, axis=0, return_inverse=True)
    hashes = frame["pattern_hash"].to_numpy()
    assert len(set(hashes.tolist())) == len(set(first.ravel().tolist()))
    with torch.no_grad():
        out = model(part.plane.to_input(part.interior_points()).float())
    assert frame["predicted"].tolist() == out.argmax(1).tolist()
    assert frame["logit0"].to_numpy() == pytest.approx(out[:, 0].double().numpy(), rel=1e-5, abs=1e-6)
    assert "predicted" not in part.to_frame().columns


def test_geo_interface_and_geopandas():
    part = rs.slice_regions(random_mlp(3, [4]), square())
    geo = part.__geo_interface__
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == part.n_regions
    shapes = [shapely.geometry.shape(f["geometry"]) for f in geo["features"]]
    assert [s.area for s in shapes] == pytest.approx(part.areas().tolist(), rel=1e-12)
    try:
        import geopandas  # noqa: F401
    except ImportError:
        with pytest.raises(rs.InputValueError, match="pip install geopandas"):
            part.to_geopandas()
    else:
        assert len(part.to_geopandas()) == part.n_regions


def test_direct_point_location_agrees_with_the_spatial_index(part):
    rng = np.random.default_rng(5)
    inside = rng.uniform(-2.0, 2.0, (39, 2))
    outside = np.array([[2.5, 0.0], [0.0, -2.0 - 1e-6], [9.0, 9.0]])
    corners = np.array([[-2.0, -2.0], [2.0, 2.0]])  # on the domain's boundary
    on_edges = part.vertices[part.edges[:10]].mean(axis=1)  # midpoints of region edges
    pts = np.vstack([inside, outside, corners, on_edges, part.vertices[:10]])
    direct, tree = part.region_of(pts), part.region_of(pts, direct_limit=0)
    assert len(pts) <= 64  # the direct path
    assert np.array_equal(direct[:42], tree[:42]) and (direct[39:42] == -1).all()
    polys = part.to_shapely()
    # on a boundary either adjacent region is right: the one chosen touches the point
    assert (direct[42:] >= 0).all()
    assert np.all(shapely.distance(polys[direct[42:]], shapely.points(pts[42:])) < 1e-12)
    with pytest.raises(ValueError, match=r"`direct_limit` of Partition2D.region_of must be an integer >= 0"):
        part.region_of(pts, direct_limit=-1)


def test_files_of_a_newer_format_version_are_refused_and_older_ones_read(part, tmp_path):
    import json

    path = part.save(tmp_path / "slice")
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(bytes(arrays["meta"]).decode())
    assert meta["version"] == 2
    for version, readable in [(1, True), (3, False)]:
        meta["version"] = version
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        np.savez(tmp_path / f"v{version}.npz", **arrays)
        if readable:
            assert rs.Partition2D.load(tmp_path / f"v{version}.npz").n_regions == part.n_regions
        else:
            with pytest.raises(rs.PartitionFileError, match="version 3 .written by a newer.*Upgrade"):
                rs.Partition2D.load(tmp_path / f"v{version}.npz")


def test_stored_rows_must_have_their_column_subsets_width():
    from reluscope.regions.patterns import ColumnSubset, PackedPatterns

    bits = np.array([[1, 0, 1, 0, 0, 0, 0, 0, 0, 1], [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]], bool)
    full = np.packbits(bits, axis=1)
    subset = ColumnSubset.of(full, 10, np.array([2], np.int64))
    assert subset.columns.tolist() == [1, 2] and subset.width == 1
    PackedPatterns([subset.gather(full)], subset=[subset])
    with pytest.raises(rs.InputValueError, match=r"\(rows, 1\) bytes.*shape \(2, 2\).*subset.gather"):
        PackedPatterns([full], subset=[subset])
