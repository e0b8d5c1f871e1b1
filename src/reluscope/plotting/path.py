"""Draw a path's linear regions with the network's outputs along it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from reluscope._validation import describe, message
from reluscope.errors import InputTypeError, InputValueError
from reluscope.regions.partition1d import Partition1D


def plot_path_profile(part: Partition1D, path: int = 0, ax: Any = None, *,
                      outputs: Sequence[int] | None = None, interpolation: bool = True,
                      boundaries: bool = True, class_names: Sequence[str] | None = None) -> Any:
    """Region boundaries along one path, with the outputs and their affine interpolation.

    Parameters
    ----------
    part : Partition1D
    path : int
        Which path of the batch.
    ax : matplotlib Axes, optional
    outputs : sequence of int, optional
        Output indices to draw (default: all, up to 10).
    interpolation : bool
        Also draw (dashed) the affine interpolation of each output between the path's ends,
        the reference of the absolute-deviation measure.
    boundaries : bool
        Draw a thin vertical line at each region boundary, coloured by the site that made it.
    class_names : sequence of str, optional
        Names of the outputs (e.g. ``reluscope.data.DATASETS["mnist"].classes``) for the
        legend, instead of "output k".

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    if not isinstance(part, Partition1D):
        raise InputTypeError(message("`part` of plot_path_profile", "a Partition1D", describe(part),
                                     "Compute one with reluscope.path_regions."))
    if not (0 <= int(path) < part.n_paths):
        raise InputValueError(message("`path` of plot_path_profile", f"in [0, {part.n_paths})",
                                      repr(path), "Pick a path of the batch."))
    n_out = part.output_start.shape[1]
    chosen = list(range(min(n_out, 10))) if outputs is None else [int(o) for o in outputs]
    if any(not 0 <= o < n_out for o in chosen):
        raise InputValueError(message("`outputs` of plot_path_profile", f"indices in [0, {n_out})",
                                      repr(outputs), "Pick existing outputs."))
    if class_names is not None and (isinstance(class_names, str) or len(class_names) != n_out
                                    or not all(isinstance(c, str) for c in class_names)):
        raise InputValueError(message("`class_names` of plot_path_profile", f"{n_out} names (one per output)",
                                      describe(class_names), "Pass the dataset's class names, e.g. "
                                      "reluscope.data.DATASETS['mnist'].classes."))
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    lo, hi = part.path_offsets[path], part.path_offsets[path + 1]
    s0, s1 = part.arc()
    s0, s1 = s0[lo:hi], s1[lo:hi]
    f0, f1 = part.output_start[lo:hi], part.output_end[lo:hi]
    arc = np.concatenate([s0, s1[-1:]])  # the output is continuous: values at the breakpoints
    values = np.concatenate([f0, f1[-1:]])
    length = float(part.path_lengths[path])
    palette = plt.get_cmap("tab10")
    for k, o in enumerate(chosen):
        name = f"output {o}" if class_names is None else class_names[o]
        ax.plot(arc, values[:, o], color=palette(k % 10), linewidth=1.2, label=name)
        if interpolation:
            end = values[0, o] if part.paths[path].closed else values[-1, o]
            ax.plot([0.0, length], [values[0, o], end], color=palette(k % 10), linewidth=0.8,
                    linestyle="--")
    if boundaries:
        site = part.boundary_site[lo:hi]
        inner = site >= 0
        if inner.any():
            sites = plt.get_cmap("Set1")
            ymin, ymax = ax.get_ylim()
            segs = np.stack([np.stack([s0[inner], np.full(inner.sum(), ymin)], 1),
                             np.stack([s0[inner], np.full(inner.sum(), ymax)], 1)], 1)
            ax.add_collection(LineCollection(segs, colors=sites(site[inner] % 9),  # type: ignore[arg-type]
                                             linewidths=0.3,
                                             alpha=0.5, zorder=0))
            ax.set_ylim(ymin, ymax)
    corners = s0[part.boundary_site[lo:hi] < 0][1:]
    for c in corners:  # a path's corners (a handful)
        ax.axvline(c, color="black", linewidth=0.8, linestyle=":")
    n_regions = int(part.region_counts()[path])
    ax.set_xlim(0.0, length)
    ax.set_xlabel("arc length along the path (input space)")
    ax.set_ylabel("output")
    ax.set_title(f"{n_regions:,} linear regions along the path")
    if chosen:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return ax
