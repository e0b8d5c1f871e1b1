"""Datasets of the user's own as an image folder or a Python factory of torch Datasets:
read like MNIST, checked, and refused with the fix when wrong."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from reluscope.cli import main
from reluscope.data import load_idx_images
from reluscope.experiments.config import config_from_dict


def _images(data_dir, n):
    x, y = load_idx_images("mnist", "test", data_dir)
    return (x[:n] * 255).round().astype(np.uint8), y[:n] % 3


def _write_folder(root, data_dir, n_train=60, n_test=30):
    x, y = _images(data_dir, n_train + n_test)
    names = ["cat", "dog", "emu"]  # class folders, numbered in sorted order
    for split, rows in (("train", range(n_train)), ("test", range(n_train, n_train + n_test))):
        for i in rows:
            folder = root / split / names[y[i]]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i]).save(folder / f"{i:05d}.png")
    return x, y


def test_an_image_folder_reads_as_the_images_it_holds(tmp_path, data_dir):
    x, y = _write_folder(tmp_path / "imgs", data_dir)
    images, labels = load_idx_images(f"folder:{tmp_path / 'imgs'}", "train")
    # PNG is lossless and files are read in sorted order: class by class, then by name
    order = np.lexsort((np.arange(60), y[:60]))
    np.testing.assert_array_equal(images, x[:60][order].astype(np.float32) / 255.0)
    np.testing.assert_array_equal(labels, y[:60][order])
    assert load_idx_images(f"folder:{tmp_path / 'imgs'}", "test")[0].shape == (30, 28, 28)
    # a changed file is noticed (the cache follows the files)
    first = sorted((tmp_path / "imgs" / "train" / "cat").iterdir())[0]
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(first)
    assert load_idx_images(f"folder:{tmp_path / 'imgs'}", "train")[0][0].max() == 0.0


def test_a_bad_folder_says_what_is_wrong(tmp_path, data_dir):
    _write_folder(tmp_path / "imgs", data_dir, 12, 6)
    big = tmp_path / "imgs" / "test" / "dog" / "big.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(big)
    with pytest.raises(ValueError, match=r"28 x 28 pixels; got sizes \[\(28, 28\), \(32, 32\)\]"):
        load_idx_images(f"folder:{tmp_path / 'imgs'}", "test")
    big.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="an image file Pillow reads"):
        load_idx_images(f"folder:{tmp_path / 'imgs'}", "test")
    (tmp_path / "half" / "train" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no test subfolder"):
        load_idx_images(f"folder:{tmp_path / 'half'}", "train")
    with pytest.raises(ValueError, match=r"grid.datasets.*'folder:nowhere': no train or test subfolder"):
        config_from_dict({"grid": {"datasets": ["folder:nowhere"]}})


@pytest.fixture
def factory_module(tmp_path, data_dir, monkeypatch):
    x, y = _images(data_dir, 90)
    np.savez(tmp_path / "arrays.npz", x=x, y=y)
    (tmp_path / "my_data.py").write_text(textwrap.dedent(f"""
        import numpy as np
        import torch
        from torch.utils.data import TensorDataset

        def splits():
            data = np.load({str(tmp_path / 'arrays.npz')!r})
            x = torch.from_numpy(data["x"]).float()[:, None] / 255.0   # (N, 1, 28, 28) in [0, 1]
            y = torch.from_numpy(data["y"])
            return TensorDataset(x[:60], y[:60]), TensorDataset(x[60:], y[60:])

        def not_two():
            return [1, 2, 3]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield x, y
    sys.modules.pop("my_data", None)


def test_a_factory_of_torch_datasets_needs_the_opt_in_then_reads_them(factory_module, monkeypatch):
    x, y = factory_module
    from reluscope.data.own import _call_factory

    _call_factory.cache_clear()
    monkeypatch.delenv("RELUSCOPE_ALLOW_IMPORTS", raising=False)
    with pytest.raises(ValueError, match="imports not allowed.*--allow-imports"):
        load_idx_images("py:my_data:splits", "train")
    monkeypatch.setenv("RELUSCOPE_ALLOW_IMPORTS", "1")
    images, labels = load_idx_images("py:my_data:splits", "test")
    np.testing.assert_allclose(images, x[60:] / 255.0, atol=1e-7)
    np.testing.assert_array_equal(labels, y[60:])
    with pytest.raises(ValueError, match=r"returning \(train, test\) datasets"):
        load_idx_images("py:my_data:not_two", "train")
    with pytest.raises(ValueError, match="an importable module"):
        load_idx_images("py:no_such_module:f", "train")
    _call_factory.cache_clear()


@pytest.mark.slow
def test_train_runs_on_a_factory_dataset_from_the_command_line(factory_module, tmp_path, capsys):
    from reluscope.data.own import _call_factory

    _call_factory.cache_clear()
    out = tmp_path / "run"
    args = ["train", "--objective", "supervised", "--dataset", "py:my_data:splits", "--epochs", "1",
            "--batch-size", "30", "--width", "8", "--depth", "1", "--out", str(out), "--allow-imports"]
    assert main(args) == 0
    assert "trained supervised on py:my_data:splits" in capsys.readouterr().out
    assert list((out / "checkpoints").glob("step_*.pt"))
    _call_factory.cache_clear()
