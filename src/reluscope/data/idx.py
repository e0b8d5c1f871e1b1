"""Reading the IDX files of MNIST / Fashion-MNIST, verified by checksum, downloaded if missing.

IDX: big-endian header (magic, then one uint32 per dimension), then the data;
magic 2051 for images (count, rows, cols, uint8), 2049 for labels (count, uint8).

Where files come from: ``data_dir`` if given, else ``$RELUSCOPE_DATA``, else
``~/.cache/reluscope``; each dataset in its own folder (``mnist/``, ``fashion-mnist/``)
as ``<stem>.gz`` or uncompressed ``<stem>``. The MD5 of the *uncompressed* bytes is
checked against the registry on every load (a few tenths of a second per file).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from reluscope._files import write_bytes
from reluscope._validation import message
from reluscope.data.registry import DATASETS
from reluscope.errors import InputValueError, ReluscopeError
from reluscope.progress import progress_bar

_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
                           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class DataFileError(ReluscopeError, ValueError):
    """A dataset file is missing, truncated or corrupt (and could not be downloaded)."""


def find_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: the argument, else ``$RELUSCOPE_DATA``, else ``~/.cache/reluscope``."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("RELUSCOPE_DATA")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "reluscope"


def parse_idx(raw: bytes, source: str) -> np.ndarray:
    """Parse uncompressed IDX bytes into an array with the file's shape and dtype."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise InputValueError(message("`path` of read_idx", "an IDX file", f"{source!r} "
                                      "with an unknown header", "Re-download the file."))
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise InputValueError(message("`path` of read_idx", f"{expected} data bytes after the header",
                                      f"{len(raw) - offset} in {source!r} (truncated?)",
                                      "Re-download the file."))
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(dims)


def _decompressed(source: Path) -> bytes:
    data = source.read_bytes()
    if source.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise DataFileError(message(f"dataset file {str(source)!r}", "a complete gzip file",
                                    f"one that does not decompress ({exc})",
                                    "Delete it and load again to re-download, or replace it.")) from exc


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into an array with the file's shape and dtype."""
    source = Path(path)
    if not source.is_file():
        raise InputValueError(message("`path` of read_idx", "an existing IDX file",
                                      f"{str(source)!r}, which does not exist",
                                      "Point RELUSCOPE_DATA (or data_dir) at the dataset folder."))
    return parse_idx(_decompressed(source), str(source))


def _download(urls: list[str], target: Path, quiet: bool) -> None:
    """Fetch the first URL that answers into `target` (atomically), with a progress bar."""
    errors = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                total = int(response.headers.get("Content-Length") or 0)
                chunks = []
                with progress_bar(total=total or None, desc=f"download {target.name}", unit="B",
                                  unit_scale=True, disable=quiet) as bar:
                    while chunk := response.read(1 << 16):
                        chunks.append(chunk)
                        bar.update(len(chunk))
            write_bytes(target, b"".join(chunks))
            return
        except OSError as exc:
            errors.append(f"{url}: {exc}")
    raise DataFileError("; ".join(errors))


def dataset_file(dataset: str, stem: str, data_dir: str | os.PathLike[str] | None = None, *,
                 download: bool = True, quiet: bool = False) -> bytes:
    """The verified, uncompressed bytes of one dataset file (downloaded if missing).

    Raises
    ------
    DataFileError
        The file is missing and could not be downloaded, or its content does not match
        the registry's MD5 (truncated or corrupt); the message names the file, the
        expected checksum and what to do.
    """
    info = DATASETS[dataset]
    folder = find_data_dir(data_dir) / info.name
    expected = info.md5[stem]
    found = [folder / name for name in (stem + ".gz", stem) if (folder / name).is_file()]
    if not found:
        target = folder / (stem + ".gz")
        if not download:
            raise DataFileError(message(
                f"dataset file {stem} of {dataset}", f"present in {str(folder)!r}",
                "no such file", f"Put the official {stem}.gz there (uncompressed MD5 {expected}), "
                "set RELUSCOPE_DATA to a folder holding it, or allow downloading."))
        try:
            _download([m + stem + ".gz" for m in info.mirrors], target, quiet)
        except DataFileError as exc:
            raise DataFileError(message(
                f"dataset file {stem} of {dataset}", f"present in {str(folder)!r} or downloadable",
                f"no file and no mirror reachable ({exc})",
                f"Copy the official {stem}.gz (uncompressed MD5 {expected}) into {str(folder)!r} "
                "or set RELUSCOPE_DATA to a folder that has it.")) from exc
        found = [target]
    raw = _decompressed(found[0])
    digest = hashlib.md5(raw).hexdigest()  # a checksum, not security
    if digest != expected:
        raise DataFileError(message(
            f"dataset file {str(found[0])!r}", f"uncompressed bytes with MD5 {expected}",
            f"MD5 {digest} ({len(raw):,} bytes: truncated or corrupt)",
            "Delete the file and load again to re-download it, or replace it with the official one."))
    return raw


def load_idx_images(dataset: str, split: str = "test", data_dir: str | os.PathLike[str] | None = None, *,
                    download: bool = True, quiet: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Images scaled to [0, 1] (N, 28, 28) float32 and labels (N,) int64 of one split.

    Parameters
    ----------
    dataset : {"mnist", "fashion-mnist"} or "npz:path"
        A built-in dataset, or your own as an ``.npz`` file (see :mod:`reluscope.data.arrays`).
    split : {"train", "test"}
    data_dir : path, optional
        Folder holding ``mnist/`` and ``fashion-mnist/`` (default: ``$RELUSCOPE_DATA``,
        else ``~/.cache/reluscope``).
    download : bool
        Fetch missing files from the dataset's mirrors (then verify them).
    quiet : bool
        No download progress bar.

    Files are decoded and verified once per process; each call returns fresh arrays.
    """
    from reluscope.data.own import is_own_dataset, load_own_split

    if split not in ("train", "test"):
        raise InputValueError(message("`split` of load_idx_images", "'train' or 'test'",
                                      repr(split), "Pick a split."))
    if is_own_dataset(dataset):
        return load_own_split(dataset, split)
    if dataset not in DATASETS:
        raise InputValueError(message("`dataset` of load_idx_images",
                                      f"one of {sorted(DATASETS)}, 'npz:file.npz', 'folder:path' or "
                                      "'py:package.module:factory'", repr(dataset),
                                      "Pick a supported dataset, or give your own (see reluscope.data.own)."))
    images, labels = _load(dataset, split, str(find_data_dir(data_dir).resolve()), download, quiet)
    return images.copy(), labels.copy()  # the cached arrays stay pristine


@functools.lru_cache(maxsize=4)
def _load(dataset: str, split: str, folder: str, download: bool,
          quiet: bool) -> tuple[np.ndarray, np.ndarray]:
    """Decode and verify once per process (read-only arrays; callers get copies)."""
    prefix = "train" if split == "train" else "t10k"
    arrays = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        stem = f"{prefix}-{kind}"
        raw = dataset_file(dataset, stem, folder, download=download, quiet=quiet)
        arrays.append(parse_idx(raw, stem))
    images = arrays[0].astype(np.float32) / 255.0
    labels = arrays[1].astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels
