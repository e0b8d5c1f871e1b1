"""Datasets of the user's own, by name, wherever a dataset name is taken (``grid.datasets``,
``reluscope train --dataset``, the analysis):

* ``"npz:path/file.npz"``: one NumPy file of arrays (:mod:`reluscope.data.arrays`);
* ``"folder:path"``: an image folder, ``path/train/<class>/*.png`` and
  ``path/test/<class>/*.png`` (any format Pillow reads; converted to grayscale), classes
  numbered in the sorted order of their folder names (as torchvision's ``ImageFolder``);
* ``"py:package.module:factory"``: a function returning ``(train, test)``, each a torch
  ``Dataset`` (or any sequence) of ``(image, label)`` pairs: images ``(28, 28)`` or
  ``(1, 28, 28)`` tensors / arrays (floats in [0, 1] or uint8) or PIL images. Importing a
  module runs its code, so, as for backbones, this needs ``--allow-imports`` (or
  ``RELUSCOPE_ALLOW_IMPORTS=1``).

Every source gives the same arrays as the built-in datasets: grayscale 28 x 28 images as
float32 in [0, 1], integer labels in [0, 10), checked by
:func:`reluscope.data.arrays.check_split`. Folders are read once per version of their
files (a change to any file is noticed), factories once per process.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from reluscope._extras import require
from reluscope._validation import describe, message
from reluscope.data.arrays import PREFIX as NPZ_PREFIX
from reluscope.data.arrays import check_split, load_array_split
from reluscope.errors import InputValueError

FOLDER_PREFIX = "folder:"
FACTORY_PREFIX = "py:"
#: Image files a folder dataset reads.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm")


def is_own_dataset(name: object) -> bool:
    """Whether `name` names a dataset of the user's own (``npz:``, ``folder:`` or ``py:``)."""
    return isinstance(name, str) and any(name.startswith(p) and len(name) > len(p)
                                         for p in (NPZ_PREFIX, FOLDER_PREFIX, FACTORY_PREFIX))


def own_dataset_problem(name: str) -> str | None:
    """What is wrong with an own dataset's name before loading it (None: nothing visible),
    e.g. a missing file or folder; used to report config errors early."""
    if name.startswith(NPZ_PREFIX) and not Path(name[len(NPZ_PREFIX):]).is_file():
        return "no such .npz file"
    if name.startswith(FOLDER_PREFIX):
        root = Path(name[len(FOLDER_PREFIX):])
        missing = [s for s in ("train", "test") if not (root / s).is_dir()]
        if missing:
            return f"no {' or '.join(missing)} subfolder"
    if name.startswith(FACTORY_PREFIX):
        from reluscope.nets.custom import is_import_path

        if not is_import_path(name[len(FACTORY_PREFIX):]):
            return "not a package.module:factory path"
    return None


def load_own_split(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) float32 in [0, 1] and labels (N,) int64 of one split (fresh copies)."""
    if name.startswith(NPZ_PREFIX):
        return load_array_split(name, split)
    if name.startswith(FOLDER_PREFIX):
        root = os.path.abspath(name[len(FOLDER_PREFIX):])
        images, labels = _read_folder(root, _folder_listing(root, name))[split]
    else:
        images, labels = _call_factory(name[len(FACTORY_PREFIX):])[split]
    return images.copy(), labels.copy()


def own_train_size(name: str) -> int:
    """Images in the training split of an own dataset."""
    return len(load_own_split(name, "train")[1])


#: One split of an image folder: its class names, and (file, class index, size, mtime) per
#: image; the whole listing is the cache key, so a change to any file is noticed.
Listing = tuple[tuple[str, tuple[str, ...], tuple[tuple[str, int, int, int], ...]], ...]


def _folder_listing(root: str, name: str) -> Listing:
    """Every image of both splits, in sorted order, with its class and file version."""
    listing = []
    for split in ("train", "test"):
        base = Path(root) / split
        if not base.is_dir():
            raise InputValueError(message(f"the dataset {name!r}",
                                          f"a folder with {split}/<class>/<image> files",
                                          f"no {split} subfolder in {root!r}",
                                          "Lay it out as path/train/<class>/*.png, path/test/<class>/*.png."))
        classes = tuple(sorted(p.name for p in base.iterdir() if p.is_dir()))
        files = []
        for k, c in enumerate(classes):
            for f in sorted((base / c).iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    stat = f.stat()
                    files.append((str(f), k, stat.st_size, stat.st_mtime_ns))
        listing.append((split, classes, tuple(files)))
    return tuple(listing)


@functools.lru_cache(maxsize=2)
def _read_folder(root: str, listing: Listing) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    require(("PIL",), "plot", "an image-folder dataset (folder:...)")
    from PIL import Image, UnidentifiedImageError

    where = f"the image folder {root!r}"
    train_classes = listing[0][1]
    out = {}
    for split, classes, files in listing:
        if classes != train_classes:
            raise InputValueError(message(f"the classes of {split}/ in {where}",
                                          f"the train/ classes {list(train_classes)}", repr(list(classes)),
                                          "Give both splits the same class folders."))
        if not files:
            raise InputValueError(message(f"{split}/ of {where}", "image files in class folders",
                                          "no images", f"Put images ({', '.join(IMAGE_SUFFIXES)}) in "
                                          f"{split}/<class>/."))
        pixels = []
        for path, *_ in files:  # one decode per file: Pillow has no batch decoder
            try:
                with Image.open(path) as image:
                    pixels.append(np.asarray(image.convert("L")))
            except (OSError, UnidentifiedImageError) as exc:
                raise InputValueError(message(f"the image {path!r}", "an image file Pillow reads",
                                              f"{type(exc).__name__}: {exc}",
                                              "Replace or remove it.")) from exc
        shapes = sorted({p.shape for p in pixels})
        if shapes != [(28, 28)]:
            raise InputValueError(message(f"the images of {split}/ in {where}", "28 x 28 pixels",
                                          f"sizes {shapes[:3]}", "Resize or crop the images to 28 x 28."))
        labels = np.array([k for _, k, *_ in files], dtype=np.int64)
        out[split] = check_split(np.stack(pixels), labels, split, where)
    return out


@functools.lru_cache(maxsize=2)
def _call_factory(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from reluscope.nets.custom import import_factory

    where = f"the dataset factory {path!r}"
    made = import_factory(path, where)()
    if not (isinstance(made, tuple | list) and len(made) == 2):
        raise InputValueError(message(where, "a function returning (train, test) datasets", describe(made),
                                      "Return the two splits, e.g. two torch Datasets of (image, label)."))
    return {split: check_split(*_materialise(data, f"the {split} split of {where}"), split, where)
            for split, data in zip(("train", "test"), made, strict=True)}


def _materialise(data: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A sequence of (image, label) pairs as (N, 28, 28) and (N,) arrays."""
    try:
        n = len(data)
    except TypeError as exc:
        raise InputValueError(message(where, "a sized dataset of (image, label) pairs", describe(data),
                                      "Return torch Datasets (with __len__) or lists.")) from exc
    images, labels = [], []
    for i in range(n):
        item = data[i]
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise InputValueError(message(f"item {i} of {where}", "an (image, label) pair", describe(item),
                                          "Return the image and its class index."))
        image, label = item
        pixels = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
        if pixels.ndim == 3 and pixels.shape[0] == 1:
            pixels = pixels[0]  # (1, 28, 28): one channel
        images.append(pixels)
        labels.append(int(label))
    shapes = sorted({p.shape for p in images}) if images else [(0,)]
    if len(shapes) != 1:
        raise InputValueError(message(f"the images of {where}", "grayscale 28 x 28 images, one shape",
                                      f"shapes {shapes[:3]}", "Convert to grayscale and resize to 28 x 28."))
    return np.stack(images) if images else np.zeros((0, 28, 28)), np.array(labels, dtype=np.int64)
