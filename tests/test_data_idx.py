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
