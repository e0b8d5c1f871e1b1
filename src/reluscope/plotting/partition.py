"""Draw a `Partition2D`: regions as one PolyCollection, edges coloured by layer, the
decision boundary and the anchor images."""

from __future__ import annotations

from typing import Any

import numpy as np

from reluscope._validation import describe, message
from reluscope.errors import InputTypeError, InputValueError
from reluscope.metrics.decision import DecisionBoundary
from reluscope.plotting.raster import edge_sites, region_raster
from reluscope.regions.partition2d import Partition2D

_COLOR_BY = ("region", "active", "area")
#: Above this many regions, plot_partition draws a raster image by default.
RASTER_ABOVE = 20_000


def _draw_raster(ax: Any, part: Partition2D, values: np.ndarray, colormap: Any, palette: Any,
                 edges: bool, width: int) -> None:
    """Regions (and edges, coloured by layer) as one RGBA image."""
    (s0, s1), (t0, t1) = part.plane.extent
    height = max(1, round(width * (t1 - t0) / (s1 - s0)))
    ids = region_raster(part, width, height)
    span = float(values.max() - values.min()) or 1.0
    rgba = colormap((values - values.min()) / span)[np.maximum(ids, 0)]
    rgba[ids < 0] = 0.0  # outside the domain: transparent
    if edges:
        layer = edge_sites(part, ids)
        on = layer >= -1
        rgba[on] = np.where((layer[on] < 0)[:, None], np.array([[0, 0, 0, 1.0]]),
                            palette(np.maximum(layer[on], 0) % 9))
    ax.imshow(rgba, extent=(s0, s1, t0, t1), origin="upper", interpolation="nearest", zorder=1)


def _draw_anchor_images(ax: Any, points: np.ndarray, images: Any, width: float,
                        top_right: tuple[float, float]) -> None:
    """Draw each anchor's picture just above and right of its point (images (K, ..., H, W)),
    kept inside the axes (`top_right` corner)."""
    pics = np.asarray(images, dtype=np.float64)
    if pics.ndim < 3 or pics.size != len(points) * pics.shape[-2] * pics.shape[-1]:
        raise InputValueError(message("`anchor_images` of plot_partition", f"{len(points)} images",
                                      describe(images), "Give one picture per anchor point."))
    pics = pics.reshape(len(points), pics.shape[-2], pics.shape[-1])
    for (x, y), pic in zip(points, pics, strict=True):
        height = width * pic.shape[0] / pic.shape[1]
        left = min(x + 0.02 * width, top_right[0] - width)
        bottom = min(y + 0.02 * width, top_right[1] - height)
        ax.imshow(pic, cmap="gray_r", extent=(left, left + width, bottom, bottom + height),
                  zorder=7, interpolation="nearest")
        ax.add_patch(_frame(left, bottom, width, height))


def _frame(x: float, y: float, width: float, height: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), width, height, fill=False, edgecolor="black", linewidth=0.8, zorder=8)


def _face_values(part: Partition2D, color_by: str, rng: np.random.Generator) -> np.ndarray:
    if color_by == "region":
        return rng.permutation(part.n_regions).astype(np.float64)
    if color_by == "active":
        return sum(part.active(i).sum(axis=1) for i in range(len(part.sites))).astype(np.float64)
    return np.log10(np.maximum(part.areas(), 1e-300))


def plot_partition(part: Partition2D, ax: Any = None, *, color_by: str = "region",
                   edges: bool = True, anchors: Any = None, linewidth: float = 0.15,
                   cmap: str | None = None, seed: int = 0, decision: DecisionBoundary | None = None,
                   anchor_images: Any = None, image_size: float = 0.12, raster: bool | None = None,
                   pixels: int = 1400, legend: bool = True, colorbar: bool = True,
                   axes_labels: bool = False) -> Any:
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
    decision : DecisionBoundary, optional
        Decision boundary to draw on top (from ``reluscope.metrics.decision_boundary``).
    anchor_images : array-like (K, H, W) or (K, 1, H, W), optional
        Pictures of the anchors, drawn next to their points (grayscale).
    image_size : float
        Width of each anchor picture as a fraction of the domain's width.
    raster : bool, optional
        Draw regions and edges as one image computed with numpy (seconds for 10^6
        regions) instead of vector polygons; default: when there are more than
        ``RASTER_ABOVE`` regions.
    pixels : int
        Width of the raster image in pixels.
    legend : bool
        With `edges`: a legend of the edge colours (one per site that made an edge).
    colorbar : bool
        For ``color_by="active"`` or ``"area"``: a colour bar saying what the colours mean.
    axes_labels : bool
        Show the plane coordinates (ticks and axis labels ``s``, ``t`` in plane units)
        instead of a bare square.

    Vector output: save the figure as SVG or PDF (``ax.figure.savefig("p.pdf")``); with
    ``raster=False`` every region and edge stays a vector shape.

    Returns
    -------
    matplotlib Axes
    """
    # Long for its parameter documentation (40 lines); the drawing is in the helpers above.
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
    default_cmap = {"region": "tab20", "active": "viridis", "area": "magma"}[color_by]
    colormap = plt.get_cmap(cmap or default_cmap)
    palette = plt.get_cmap("Set1")
    if raster if raster is not None else part.n_regions > RASTER_ABOVE:
        _draw_raster(ax, part, values, colormap, palette, edges, int(pixels))
    else:
        # PolyCollection takes a list of (k, 2) arrays; split once (no per-region Python work).
        rings = np.split(part.vertices[part.face_vertices], part.face_offsets[1:-1])
        faces = PolyCollection(rings, array=values, cmap=colormap, edgecolors="none", antialiaseds=False)
        ax.add_collection(faces)
        if edges:
            segments = part.vertices[part.edges]
            layer = part.edge_site
            colors = np.where((layer < 0)[:, None], np.array([[0, 0, 0, 1.0]]),
                              palette(np.maximum(layer, 0) % 9))
            ax.add_collection(LineCollection(segments, colors=colors, linewidths=linewidth))
    if decision is not None and len(decision.segments):
        ax.add_collection(LineCollection(decision.segments, colors="white",  # type: ignore[arg-type]
                                         linewidths=2.2, zorder=4))
        ax.add_collection(LineCollection(decision.segments, colors="black",  # type: ignore[arg-type]
                                         linewidths=1.0, zorder=5))
    (s0, s1), (t0, t1) = part.plane.extent
    if anchors is not None:
        pts = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
        ax.scatter(pts[:, 0], pts[:, 1], s=30, c="white", edgecolors="black", zorder=6)
        if anchor_images is not None:
            _draw_anchor_images(ax, pts, anchor_images, image_size * (s1 - s0), (s1, t1))
    ax.set_xlim(s0, s1)
    ax.set_ylim(t0, t1)
    ax.set_aspect("equal")
    if axes_labels:
        ax.set_xlabel("s (plane units)")
        ax.set_ylabel("t (plane units)")
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if edges and legend:
        _edge_legend(ax, part, palette)
    if colorbar and color_by != "region":
        _colorbar(ax, values, colormap, "active neurons" if color_by == "active" else "log10 region area")
    return ax


def _edge_legend(ax: Any, part: Partition2D, palette: Any) -> None:
    """One legend entry per site that made an edge (its colour), and the domain boundary."""
    from matplotlib.lines import Line2D

    made = np.unique(part.edge_site[part.edge_site >= 0])
    handles = [Line2D([], [], color=palette(k % 9), linewidth=2, label=f"site {k}: {part.sites[k].name}")
               for k in made]
    handles.append(Line2D([], [], color="black", linewidth=2, label="domain boundary"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
              title="edges made by", title_fontsize=8)


def _colorbar(ax: Any, values: np.ndarray, colormap: Any, label: str) -> None:
    """A colour bar for the face values beside the axes."""
    import matplotlib.cm
    import matplotlib.colors

    mappable = matplotlib.cm.ScalarMappable(
        norm=matplotlib.colors.Normalize(float(values.min()), float(values.max())), cmap=colormap)
    ax.figure.colorbar(mappable, ax=ax, fraction=0.046, pad=0.04, label=label)
