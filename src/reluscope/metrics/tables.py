"""A partition as a table: one row per linear region (or per path), ready to join, filter
and plot.

``Partition2D.to_frame()`` calls :func:`region_table`, ``Partition1D.to_frame()``
:func:`path_table`. Every column is computed for all
regions at once (flat arrays); the pattern hash is a 64-bit FNV-1a over the bit-packed
patterns of every site, so regions with the same activation pattern on two planes (or two
checkpoints of one network) share it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from reluscope._validation import describe, message
from reluscope.errors import InputTypeError
from reluscope.metrics.polytope import (
    eccentricities,
    isoperimetric_quotients,
    perimeters,
    second_moments,
    vertex_counts,
)

if TYPE_CHECKING:
    import pandas as pd

    from reluscope.regions.partition1d import Partition1D
    from reluscope.regions.partition2d import Partition2D

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
#: Outputs up to this many get one logit column each (more: only the predicted class).
MAX_LOGIT_COLUMNS = 16


def pattern_hashes(part: Partition2D) -> np.ndarray:
    """(F,) uint64 FNV-1a hash of each region's bit-packed patterns over all sites."""
    h = np.full(part.n_regions, _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):  # the hash multiplies modulo 2^64 on purpose
        for packed in part.patterns:
            for column in packed.T:  # bytes of a site's pattern, not regions
                h ^= column.astype(np.uint64)
                h *= _FNV_PRIME
    return h


def region_table(part: Partition2D, model: torch.nn.Module | None = None, batch: int = 65536
                 ) -> pd.DataFrame:
    """One row per region of `part`.

    Columns: ``region``, ``area``, ``perimeter``, ``n_vertices``, ``eccentricity``,
    ``axis_ratio``, ``isoperimetric``, ``centroid_s/t`` (plane coordinates of the centre of
    mass), ``point_s/t`` (a point strictly inside), ``pattern_hash`` (uint64), ``active_site{l}``
    (active neurons of each site) and, with `model`, ``predicted`` (argmax of the output at the
    interior point) and ``logit{j}`` for up to ``MAX_LOGIT_COLUMNS`` outputs.

    Parameters
    ----------
    part : Partition2D
    model : nn.Module, optional
        The network the partition was computed for (it is affine on each region, so one
        point per region gives its output map's value there).
    batch : int
        Interior points evaluated per forward pass.
    """
    from reluscope._extras import require

    require(("pandas",), "experiments", "Partition2D.to_frame")
    import pandas as pd

    area, centroid, _, _ = second_moments(part)
    ecc, axis = eccentricities(part)
    inside = part.interior_points()
    columns: dict[str, Any] = {
        "region": np.arange(part.n_regions), "area": area, "perimeter": perimeters(part),
        "n_vertices": vertex_counts(part), "eccentricity": ecc, "axis_ratio": axis,
        "isoperimetric": isoperimetric_quotients(part), "centroid_s": centroid[:, 0],
        "centroid_t": centroid[:, 1], "point_s": inside[:, 0], "point_t": inside[:, 1],
        "pattern_hash": pattern_hashes(part),
    }
    for site in range(len(part.sites)):
        columns[f"active_site{site}"] = part.patterns.popcounts(site)
    if model is not None:
        columns.update(_outputs(part, model, inside, batch))
    return pd.DataFrame(columns)


@torch.no_grad()
def _outputs(part: Partition2D, model: torch.nn.Module, inside: np.ndarray, batch: int) -> dict[str, Any]:
    if not isinstance(model, torch.nn.Module):
        raise InputTypeError(message("`model` of Partition2D.to_frame", "a torch.nn.Module", describe(model),
                                     "Pass the network the partition was computed for."))
    parameter = next(iter(model.parameters()), None)
    dtype = parameter.dtype if parameter is not None else torch.float64
    device = parameter.device if parameter is not None else torch.device("cpu")
    outputs = []
    for lo in range(0, len(inside), batch):
        x = part.plane.to_input(inside[lo : lo + batch]).to(device=device, dtype=dtype)
        outputs.append(model(x).reshape(len(x), -1).double().cpu())
    out = torch.cat(outputs).numpy() if outputs else np.zeros((0, 1))
    found: dict[str, Any] = {"predicted": out.argmax(axis=1)}
    if out.shape[1] <= MAX_LOGIT_COLUMNS:
        found.update({f"logit{j}": out[:, j] for j in range(out.shape[1])})
    return found


def path_table(part: Partition1D, per_output: bool = False) -> pd.DataFrame:
    """Each path's measures (:func:`reluscope.metrics.path_metrics`) as a DataFrame.

    Parameters
    ----------
    part : Partition1D
    per_output : bool
        False: one row per path; the per-output measures (``total_variation``,
        ``abs_deviation``, ``mean_abs_deviation``) as their mean over the outputs. True: one
        row per (path, output) with those measures for that output, beside the path's own.

    Returns
    -------
    pandas.DataFrame
        Columns ``path``, (``output``), ``closed``, ``length``, ``n_pieces``, ``n_regions``,
        ``n_boundaries``, ``boundary_density``, ``region_length_mean`` / ``_median`` /
        ``_min``, ``total_variation``, ``abs_deviation``, ``mean_abs_deviation``.
    """
    from reluscope._extras import require
    from reluscope.metrics.path import path_metrics

    require(("pandas",), "experiments", "Partition1D.to_frame")
    import pandas as pd

    found = path_metrics(part)  # validates `part`
    per_path = {k: v for k, v in found.items() if np.ndim(v) == 1}
    outputs = {k: v for k, v in found.items() if np.ndim(v) == 2}
    columns: dict[str, Any] = {"path": np.arange(part.n_paths),
                               "closed": np.array([p.closed for p in part.paths], dtype=bool), **per_path}
    if not per_output:
        return pd.DataFrame({**columns, **{k: v.mean(axis=1) for k, v in outputs.items()}})
    n_out = next(iter(outputs.values())).shape[1]
    long = {k: np.repeat(v, n_out) for k, v in columns.items()}
    long["output"] = np.tile(np.arange(n_out), part.n_paths)
    long.update({k: v.ravel() for k, v in outputs.items()})  # row-major: path, then output
    return pd.DataFrame(long)
