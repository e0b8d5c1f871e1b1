"""Atomic .npz files with a JSON header (shared by the partition types)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from reluscope._files import atomic_write
from reluscope._validation import message
from reluscope.errors import PartitionFileError
from reluscope.nets.sites import Site


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


def read_npz(path: str | os.PathLike[str], fmt: str, where: str
             ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a file written by :func:`write_npz` whose header says ``format == fmt``.

    Raises
    ------
    PartitionFileError
        The file is missing, truncated, or of another kind.
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
            arrays = {name: data[name] for name in data.files if name != "meta"}
    except Exception as exc:
        raise PartitionFileError(message(
            f"`path` of {where}", f"a file written by {fmt.split('.')[-1]}.save",
            f"{str(source)!r}, which could not be read ({type(exc).__name__}: {exc})",
            "The file is truncated or of another kind; recompute it.")) from exc
    return meta, arrays


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


def patterns_to_arrays(patterns: tuple[np.ndarray, ...],
                       arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add the packed pattern of each site to `arrays` as ``pattern_<site>``; returns `arrays`."""
    for i, packed in enumerate(patterns):
        arrays[f"pattern_{i}"] = packed
    return arrays


def patterns_from_arrays(arrays: dict[str, np.ndarray], n_sites: int) -> tuple[np.ndarray, ...]:
    """Inverse of :func:`patterns_to_arrays`."""
    return tuple(arrays[f"pattern_{i}"] for i in range(n_sites))
