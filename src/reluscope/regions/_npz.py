"""Atomic .npz files with a JSON header (shared by the partition types)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reluscope._files import atomic_write
from reluscope._validation import message
from reluscope.errors import PartitionFileError
from reluscope.nets.sites import Site
from reluscope.regions.patterns import ColumnSubset, PackedPatterns


def write_npz(path: str | os.PathLike[str], meta: dict[str, Any], arrays: dict[str, np.ndarray]
              ) -> Path:
    """Write `arrays` and the JSON-able `meta` to a compressed .npz, atomically.

    The file is written next to its target and renamed into place, so a crash leaves
    either the old file or the new one, never half of one. Returns the path written
    (``.npz`` is appended if missing).
    """
    target = Path(path)
    if target.suffix != ".npz":
        target = target.with_name(target.name + ".npz")
    payload = dict(arrays)
    payload["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return atomic_write(target, lambda handle: np.savez_compressed(handle, **payload))  # type: ignore[arg-type]


def read_npz(path: str | os.PathLike[str], fmt: str, where: str, newest: int = 1
             ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a file written by :func:`write_npz` whose header says ``format == fmt`` and a
    ``version`` of at most `newest` (the newest this code reads).

    Raises
    ------
    PartitionFileError
        The file is missing, truncated, of another kind, or of a newer version.
    """
    source = Path(path)
    if not source.is_file():
        raise PartitionFileError(message(f"`path` of {where}", "an existing .npz file",
                                         f"{str(source)!r}, which does not exist",
                                         "Check the path (save() appends .npz)."))
    try:
        with np.load(source, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("format") != fmt:
                raise KeyError(f"format is {meta.get('format')!r}, not {fmt!r}")
            version = meta.get("version", 1)
            if isinstance(version, int) and version > newest:
                raise _NewerFile(version)
            arrays = {name: data[name] for name in data.files if name != "meta"}
    except _NewerFile as exc:
        raise PartitionFileError(message(
            f"`path` of {where}", f"a {fmt.split('.')[-1]} file of format version {newest} or older",
            f"{str(source)!r}, of version {exc.version} (written by a newer reluscope)",
            "Upgrade reluscope to read it.")) from None
    except Exception as exc:
        raise PartitionFileError(message(
            f"`path` of {where}", f"a file written by {fmt.split('.')[-1]}.save",
            f"{str(source)!r}, which could not be read ({type(exc).__name__}: {exc})",
            "The file is truncated or of another kind; recompute it.")) from exc
    return meta, arrays


class _NewerFile(Exception):
    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


def sites_meta(sites: tuple[Site, ...] | list[Site]) -> list[dict[str, Any]]:
    """JSON-able description of a model's sites."""
    records = []
    for s in sites:
        record = {"index": s.index, "name": s.name, "shape": list(s.shape),
                  "negative_slope": s.negative_slope}
        if s.pool_stage:
            record.update(pool_stage=s.pool_stage, pool_window=s.pool_window)
        records.append(record)
    return records


def sites_from_meta(records: list[dict[str, Any]]) -> tuple[Site, ...]:
    """Inverse of :func:`sites_meta`."""
    return tuple(Site(s["index"], s["name"], tuple(s["shape"]), float(s["negative_slope"]),
                      int(s.get("pool_stage", 0)), int(s.get("pool_window", 0)))
                 for s in records)


def patterns_to_arrays(patterns: Sequence[np.ndarray],
                       arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add the packed pattern of each site to `arrays` as ``pattern_<site>``; returns `arrays`.

    Patterns stored by reference are written that way: ``pattern_<site>`` holds the site's
    rows and ``pattern_owner_<site>`` each face's row; rows of a column subset keep it in
    ``pattern_columns_<site>`` and ``pattern_reference_<site>``.
    """
    if isinstance(patterns, PackedPatterns):
        for i, (rows, owner, subset) in enumerate(zip(patterns.rows, patterns.owner, patterns.subset,
                                                      strict=True)):
            arrays[f"pattern_{i}"] = rows
            if owner is not None:
                arrays[f"pattern_owner_{i}"] = owner
            if subset is not None:
                arrays[f"pattern_columns_{i}"] = subset.columns
                arrays[f"pattern_reference_{i}"] = subset.reference
        return arrays
    for i, packed in enumerate(patterns):
        arrays[f"pattern_{i}"] = packed
    return arrays


def patterns_from_arrays(arrays: dict[str, np.ndarray], n_sites: int) -> tuple[np.ndarray, ...]:
    """Inverse of :func:`patterns_to_arrays` for dense patterns."""
    return tuple(arrays[f"pattern_{i}"] for i in range(n_sites))


def packed_patterns_from_arrays(arrays: dict[str, np.ndarray], sites: Sequence[Site], n_faces: int,
                                where: str) -> PackedPatterns:
    """Inverse of :func:`patterns_to_arrays`, checked against the sites and the face count.

    Raises
    ------
    PartitionFileError
        A site's rows or face-to-row index are missing or do not fit (a damaged file).
    """
    rows: list[np.ndarray] = []
    owners: list[np.ndarray | None] = []
    subsets: list[ColumnSubset | None] = []
    for i, site in enumerate(sites):
        packed = arrays.get(f"pattern_{i}")
        owner = arrays.get(f"pattern_owner_{i}")
        subset, problem = _column_subset(arrays, i, site)
        width = (site.size + 7) // 8 if subset is None else subset.width
        problem = problem or _rows_problem(packed, owner, i, width, n_faces)
        if problem is not None:
            raise PartitionFileError(message(
                f"the patterns of {where}", f"one packed pattern per face for each of {len(sites)} sites",
                problem, "The file is damaged or was edited; recompute it."))
        assert packed is not None
        rows.append(packed)
        owners.append(None if owner is None else owner.astype(np.int64))
        subsets.append(subset)
    return PackedPatterns(rows, owners, subsets)


def _rows_problem(packed: np.ndarray | None, owner: np.ndarray | None, i: int, width: int,
                  n_faces: int) -> str | None:
    """What is wrong with site `i`'s stored rows and face-to-row index, or None."""
    if packed is None or packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != width:
        return (f"pattern_{i} is {None if packed is None else (packed.dtype, packed.shape)}, "
                f"not uint8 rows of {width} bytes")
    if owner is None and len(packed) != n_faces:
        return f"pattern_{i} has {len(packed)} rows for {n_faces} faces"
    if owner is not None and (owner.dtype.kind not in "iu" or owner.shape != (n_faces,)
                              or (n_faces and (owner.min() < 0 or owner.max() >= len(packed)))):
        return f"pattern_owner_{i} is not one row index in [0, {len(packed)}) per face"
    return None


def _column_subset(arrays: dict[str, np.ndarray], i: int, site: Site
                   ) -> tuple[ColumnSubset | None, str | None]:
    """Site `i`'s column subset if the file has one, and what is wrong with it (or None)."""
    columns = arrays.get(f"pattern_columns_{i}")
    reference = arrays.get(f"pattern_reference_{i}")
    if columns is None and reference is None:
        return None, None
    width = (site.size + 7) // 8
    if columns is None or reference is None:
        return None, f"only one of pattern_columns_{i} and pattern_reference_{i} is present"
    if columns.dtype.kind not in "iu" or columns.ndim != 1 or (
            len(columns) and (columns.min() < 0 or columns.max() >= site.size
                              or (np.diff(columns) <= 0).any())):
        return None, f"pattern_columns_{i} is not increasing neuron indices in [0, {site.size})"
    if reference.dtype != np.uint8 or reference.shape != (width,):
        return None, f"pattern_reference_{i} is not one uint8 row of {width} bytes"
    subset = ColumnSubset(columns.astype(np.int64), reference)
    if (reference[subset.columns >> 3] & (128 >> (subset.columns & 7))).any():
        return None, f"pattern_reference_{i} has bits set at stored columns"
    return subset, None
