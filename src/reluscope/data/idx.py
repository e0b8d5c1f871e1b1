"""Reading the IDX files of MNIST / Fashion-MNIST (gzipped or not).

IDX: big-endian header (magic, then one uint32 per dimension), then the data;
magic 2051 for images (count, rows, cols, uint8), 2049 for labels (count, uint8).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np

from reluscope._validation import message
from reluscope.errors import InputValueError

_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

#: Folder names of the datasets inside a data directory.
DATASETS = {"mnist": "mnist", "fashion-mnist": "fashion-mnist"}


def find_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: the argument, else ``$RELUSCOPE_DATA``, else ``~/.cache/reluscope``."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("RELUSCOPE_DATA")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "reluscope"


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into an array with the file's shape and dtype."""
    source = Path(path)
    if not source.is_file():
        raise InputValueError(message("`path` of read_idx", "an existing IDX file",
                                      f"{str(source)!r}, which does not exist",
                                      "Point RELUSCOPE_DATA (or data_dir) at the dataset folder."))
    raw = gzip.decompress(source.read_bytes()) if source.suffix == ".gz" else source.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise InputValueError(message("`path` of read_idx", "an IDX file", f"{str(source)!r} "
                                      "with an unknown header", "Re-download the file."))
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise InputValueError(message("`path` of read_idx", f"{expected} data bytes after the header",
                                      f"{len(raw) - offset} in {str(source)!r} (truncated?)",
                                      "Re-download the file."))
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(dims)


def load_idx_images(dataset: str, split: str = "test",
                    data_dir: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images scaled to [0, 1] (N, 28, 28) float32 and labels (N,) int64 of one split."""
    if dataset not in DATASETS:
        raise InputValueError(message("`dataset` of load_idx_images", f"one of {sorted(DATASETS)}",
                                      repr(dataset), "Pick a supported dataset."))
    if split not in ("train", "test"):
        raise InputValueError(message("`split` of load_idx_images", "'train' or 'test'",
                                      repr(split), "Pick a split."))
    prefix = "train" if split == "train" else "t10k"
    folder = find_data_dir(data_dir) / DATASETS[dataset]
    def pick(stem: str) -> Path:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
        return folder / (stem + ".gz")
    images = read_idx(pick(f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(pick(f"{prefix}-labels-idx1-ubyte"))
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)
