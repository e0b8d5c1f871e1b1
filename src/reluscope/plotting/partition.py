"""Draw a `Partition2D`: regions as one PolyCollection, edges coloured by layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from reluscope._validation import describe, message
from reluscope.errors import InputTypeError, InputValueError
from reluscope.regions.partition2d import Partition2D

_COLOR_BY = ("region", "active", "area")


def _face_values(part: Partition2D, color_by: str, rng: np.random.Generator) -> np.ndarray:
    if color_by == "region":
        return rng.permutation(part.n_regions).astype(np.float64)
    if color_by == "active":
        return sum(part.active(i).sum(axis=1) for i in range(len(part.sites))).astype(np.float64)
    return np.log10(np.maximum(part.areas(), 1e-300))


def plot_partition(part: Partition2D, ax: Any = None, *, color_by: str = "region",
                   edges: bool = True, anchors: Any = None, linewidth: float = 0.15,
                   cmap: str | None = None, seed: int = 0) -> Any:
    """Draw the regions of a partition (fast for 10^5-10^6 regions).

    Parameters
    ----------
    part : Partition2D
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure is made if None.
    color_by : {"region", "active", "area"}
        Random colour per region, number of active neurons, or log10 of the area.
    edges : bool
        Draw region boundaries, coloured by the site (layer) that created them.
    anchors : array-like (K, 2), optional
        Plane coordinates of points to mark (e.g. the images the plane passes through).
    linewidth : float
        Width of the boundary lines.
    cmap : str, optional
        Colormap for the faces.
    seed : int
        Seed of the random region colours.

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PolyCollection

    if not isinstance(part, Partition2D):
        raise InputTypeError(message("`part` of plot_partition", "a Partition2D", describe(part),
                                     "Compute one with reluscope.slice_regions."))
    if color_by not in _COLOR_BY:
        raise InputValueError(message("`color_by` of plot_partition", f"one of {_COLOR_BY}",
                                      repr(color_by), "Pick one of the listed options."))
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6))
    values = _face_values(part, color_by, np.random.default_rng(seed))
    # PolyCollection takes a list of (k, 2) arrays; split once (no per-region Python work).
    rings = np.split(part.vertices[part.face_vertices], part.face_offsets[1:-1])
    default_cmap = {"region": "tab20", "active": "viridis", "area": "magma"}[color_by]
    faces = PolyCollection(rings, array=values, cmap=cmap or default_cmap, edgecolors="none",
                           antialiaseds=False)
    ax.add_collection(faces)
    if edges:
        segments = part.vertices[part.edges]
        layer = part.edge_layer
        palette = plt.get_cmap("Set1")
        colors = np.where((layer < 0)[:, None], np.array([[0, 0, 0, 1.0]]),
                          palette(np.maximum(layer, 0) % 9))
        ax.add_collection(LineCollection(segments, colors=colors, linewidths=linewidth))
    if anchors is not None:
        pts = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
        ax.scatter(pts[:, 0], pts[:, 1], s=30, c="white", edgecolors="black", zorder=3)
    (s0, s1), (t0, t1) = part.plane.extent
    ax.set_xlim(s0, s1)
    ax.set_ylim(t0, t1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax
