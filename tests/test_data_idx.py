"""IDX readers on the official files, and their errors."""

import gzip

import numpy as np
import pytest

import reluscope as rs
from reluscope.data import load_idx_images, read_idx


def test_mnist_test_split_loads_with_known_statistics(data_dir):
    images, labels = load_idx_images("mnist", "test", data_dir)
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    assert images.dtype == np.float32 and 0.0 <= images.min() and images.max() <= 1.0
    assert labels[:3].tolist() == [7, 2, 1]
    assert images.mean() == pytest.approx(0.1325, abs=1e-3)


def test_read_idx_errors(tmp_path):
    with pytest.raises(rs.InputValueError, match="does not exist.*RELUSCOPE_DATA"):
        read_idx(tmp_path / "missing-idx3-ubyte.gz")
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x01\x02\x03\x04rest"))
    with pytest.raises(rs.InputValueError, match="unknown header.*Re-download"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"\x00" * 3)
    with pytest.raises(rs.InputValueError, match=r"10 data bytes.*got 3.*truncated"):
        read_idx(short)


def test_load_idx_images_rejects_unknown_dataset_and_split(tmp_path):
    with pytest.raises(rs.InputValueError, match="one of"):
        load_idx_images("cifar", "test", tmp_path)
    with pytest.raises(rs.InputValueError, match="'train' or 'test'"):
        load_idx_images("mnist", "val", tmp_path)


def copy_split(src, dst, dataset="mnist", split="t10k"):
    import shutil

    (dst / dataset).mkdir(parents=True, exist_ok=True)
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        shutil.copy(src / dataset / f"{split}-{kind}.gz", dst / dataset / f"{split}-{kind}.gz")


def test_checksums_catch_corrupt_and_truncated_files(tmp_path, data_dir):
    from reluscope.data import DataFileError

    copy_split(data_dir, tmp_path)
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[100] ^= 1
    labels.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataFileError, match="MD5 27ae3e4e09519cfbb04c329615203637.*re-download"):
        load_idx_images("mnist", "test", tmp_path)
    labels.write_bytes(labels.read_bytes()[:50])
    with pytest.raises(DataFileError, match="does not decompress"):
        load_idx_images("mnist", "test", tmp_path)


def test_missing_files_are_downloaded_from_a_mirror_and_verified(tmp_path, data_dir, monkeypatch):
    from reluscope.data import DataFileError, registry

    empty = tmp_path / "empty"
    with pytest.raises(DataFileError, match=r"MD5 2646ac647ad5339dbf082846283269ea.*RELUSCOPE_DATA"):
        load_idx_images("mnist", "test", empty, download=False)
    info = registry.DATASETS["mnist"]
    mirror = (data_dir / "mnist").resolve().as_uri() + "/"
    monkeypatch.setitem(registry.DATASETS, "mnist",
                        registry.DatasetInfo(info.name, info.md5, ("file:///nowhere/", mirror),
                                             info.classes, info.mean, info.std))
    images, labels = load_idx_images("mnist", "test", empty, quiet=True)
    assert images.shape == (10_000, 28, 28) and labels[:3].tolist() == [7, 2, 1]
    assert (empty / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()
    monkeypatch.setitem(registry.DATASETS, "mnist",
                        registry.DatasetInfo(info.name, info.md5, ("file:///nowhere/",),
                                             info.classes, info.mean, info.std))
    with pytest.raises(DataFileError, match="no mirror reachable"):
        load_idx_images("mnist", "train", tmp_path / "other", quiet=True)
