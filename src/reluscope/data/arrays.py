"""Datasets of the user's own, as one NumPy ``.npz`` file: ``dataset = "npz:path/to/file.npz"``.

The file holds four arrays, read without unpickling (``allow_pickle=False``):
``x_train`` and ``x_test``, grayscale images ``(N, 28, 28)`` (uint8 0-255, or floats in
[0, 1]); ``y_train`` and ``y_test``, integer labels in ``[0, 10)``. Everything that takes
``"mnist"`` takes such a name: training, the probe and kNN, fine-tuning, the planes and
paths of the analysis. The path is relative to the working directory.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from reluscope._validation import message
from reluscope.errors import InputValueError

#: What starts the name of an array-file dataset.
PREFIX = "npz:"
_KEYS = ("x_train", "y_train", "x_test", "y_test")
#: Labels are class indices below this (the heads of the objectives have 10 outputs).
MAX_CLASSES = 10


def is_array_dataset(name: object) -> bool:
    """Whether `name` names an ``.npz`` dataset file (``"npz:path"``)."""
    return isinstance(name, str) and name.startswith(PREFIX) and len(name) > len(PREFIX)


def load_array_split(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) float32 in [0, 1] and labels (N,) int64 of one split (fresh copies)."""
    path = name[len(PREFIX):]
    if not os.path.isfile(path):
        raise InputValueError(message(f"the dataset {name!r}", "an existing .npz file",
                                      f"{path!r}: no such file",
                                      "Give the file's path after 'npz:' (relative to the working "
                                      "directory)."))
    stat = os.stat(path)
    images, labels = _read(os.path.abspath(path), stat.st_mtime_ns, stat.st_size)[split]
    return images.copy(), labels.copy()


def train_size(name: str) -> int:
    """Images in the file's training split."""
    return len(load_array_split(name, "train")[1])


@functools.lru_cache(maxsize=2)
def _read(path: str, _mtime: int, _size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Both splits, checked (cached per file version)."""
    where = f"the dataset file {path!r}"
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _KEYS if k not in data.files]
            if missing:
                raise InputValueError(message(where, f"the arrays {list(_KEYS)}", f"no {missing}",
                                              "Save it with np.savez(path, x_train=..., y_train=..., "
                                              "x_test=..., y_test=...)."))
            arrays = {k: np.asarray(data[k]) for k in _KEYS}
    except (OSError, ValueError) as exc:
        if isinstance(exc, InputValueError):
            raise
        raise InputValueError(message(where, "a NumPy .npz file of plain arrays",
                                      f"{type(exc).__name__}: {exc}",
                                      "Write it with np.savez (object arrays are refused).")) from exc
    return {split: check_split(arrays[f"x_{split}"], arrays[f"y_{split}"], split, where)
            for split in ("train", "test")}


def check_split(x: np.ndarray, y: np.ndarray, split: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One split of a dataset of the user's own as reluscope's arrays, or a clear error.

    Parameters
    ----------
    x : (N, 28, 28) uint8 pixels or floats in [0, 1]
    y : (N,) integer labels in [0, MAX_CLASSES)
    split : "train" or "test" (for the message)
    where : what the arrays come from (for the message)

    Returns
    -------
    images : (N, 28, 28) float32 in [0, 1], read-only
    labels : (N,) int64, read-only
    """
    if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) == 0:
        raise InputValueError(message(f"`x_{split}` of {where}", "grayscale images shaped (N, 28, 28)",
                                      f"shape {x.shape}", "Resize or crop the images to 28 x 28."))
    if x.dtype == np.uint8:
        images = x.astype(np.float32) / 255.0
    elif np.issubdtype(x.dtype, np.floating) and np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1:
        images = x.astype(np.float32)
    else:
        raise InputValueError(message(f"`x_{split}` of {where}", "uint8 pixels or floats in [0, 1]",
                                      f"dtype {x.dtype}", "Scale the pixels to [0, 1] (or store uint8)."))
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or \
            y.max() >= MAX_CLASSES:
        raise InputValueError(message(f"`y_{split}` of {where}",
                                      f"{len(x)} integer labels in [0, {MAX_CLASSES})",
                                      f"shape {y.shape}, dtype {y.dtype}", "One class index per image."))
    images.flags.writeable = False
    labels = y.astype(np.int64)
    labels.flags.writeable = False
    return images, labels
