"""A partition as a zoomable vector drawing: an SVG of its edges and a self-contained page
that pans and zooms it in the browser.

A raster of a dense slice (10^5 regions) loses the small regions near the data; the
edges as vectors keep them at any zoom. Each site's edges are one SVG ``<path>`` (one
element per layer, not per edge, so a browser draws 10^5 edges smoothly), with strokes
that keep their screen width while zooming. Coordinates are the plane's, scaled to an
integer grid of ``options.grid`` steps across the domain's longer side (1e-6 of the
domain by default: far below a screen pixel at any useful zoom).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reluscope._files import write_bytes
from reluscope._validation import check_int, check_positive, describe, message
from reluscope.errors import InputTypeError, InputValueError
from reluscope.regions.partition2d import Partition2D

#: Edge colours by site (matplotlib's Set1, as in plot_partition), then the domain boundary.
SITE_COLOURS = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33", "#a65628", "#f781bf",
                "#999999")
BOUNDARY_COLOUR = "#000000"


@dataclass(frozen=True)
class ZoomOptions:
    """How a zoomable partition is drawn.

    Attributes
    ----------
    grid : int
        Integer steps across the domain's longer side (the coordinate resolution).
    stroke : float
        Edge width in screen pixels (it does not grow when zooming in).
    max_zoom : float
        Largest magnification the page allows.
    """

    grid: int = 1_000_000
    stroke: float = 0.6
    max_zoom: float = 20_000.0

    def __post_init__(self) -> None:
        check_int(self.grid, "`grid` of ZoomOptions", low=2, example=1_000_000)
        check_positive(self.stroke, "`stroke` of ZoomOptions")
        if check_positive(self.max_zoom, "`max_zoom` of ZoomOptions") < 1:
            raise InputValueError(message("`max_zoom` of ZoomOptions", "a magnification >= 1",
                                          repr(self.max_zoom), "Pass e.g. max_zoom=20000."))


def partition_svg(part: Partition2D, options: ZoomOptions | None = None) -> str:
    """The partition's edges as an SVG document, one ``<path>`` per site.

    Parameters
    ----------
    part : Partition2D
    options : ZoomOptions, optional

    Returns
    -------
    str
        An ``<svg>`` element whose ``viewBox`` is the domain (y pointing up, as in the plane),
        with a ``<title>`` per site path naming the site.
    """
    if not isinstance(part, Partition2D):
        raise InputTypeError(message("`part` of partition_svg", "a Partition2D", describe(part),
                                     "Compute one with reluscope.slice_regions."))
    opts = options or ZoomOptions()
    (x0, x1), (y0, y1) = part.plane.extent
    scale = opts.grid / max(x1 - x0, y1 - y0)
    width, height = round((x1 - x0) * scale), round((y1 - y0) * scale)
    xy = np.empty_like(part.vertices)
    xy[:, 0] = (part.vertices[:, 0] - x0) * scale
    xy[:, 1] = (y1 - part.vertices[:, 1]) * scale  # SVG's y points down
    ends = np.rint(xy[part.edges]).astype(np.int64)  # (E, 2 ends, 2 coordinates)
    paths = []
    for site in range(-1, len(part.sites)):  # one element per site (a handful), not per edge
        chosen = ends[part.edge_site == site]
        if not len(chosen):
            continue
        tokens = np.empty((len(chosen), 6), dtype=object)
        tokens[:, 0], tokens[:, 3] = "M", "L"
        tokens[:, [1, 2, 4, 5]] = chosen.reshape(-1, 4).astype(str)
        colour = BOUNDARY_COLOUR if site < 0 else SITE_COLOURS[site % len(SITE_COLOURS)]
        name = "domain boundary" if site < 0 else f"site {site}: {part.sites[site].name}"
        data = " ".join(tokens.ravel())
        paths.append(f'<path class="site" data-site="{site}" stroke="{colour}" '
                     f'vector-effect="non-scaling-stroke" d="{data}">'
                     f"<title>{html.escape(name)} ({len(chosen):,} edges)</title></path>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'preserveAspectRatio="xMidYMid meet" data-width="{width}" data-height="{height}">'
            f'<g fill="none" stroke-width="{opts.stroke}" '
            f'stroke-linecap="round">{"".join(paths)}</g></svg>')


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ margin: 0; font: 14px system-ui, sans-serif; display: flex; flex-direction: column; height: 100vh; }}
header {{ padding: 6px 10px; border-bottom: 1px solid #ccc; display: flex; gap: 12px; align-items: center;
  flex-wrap: wrap; }}
#view {{ flex: 1; min-height: 0; cursor: grab; background: #fff; }}
#view svg {{ width: 100%; height: 100%; display: block; }}
.key {{ display: inline-block; width: 14px; height: 3px; vertical-align: middle; margin-right: 4px; }}
</style></head><body>
<header><strong>{title}</strong><span>{summary}</span>
<button id="in">zoom in</button><button id="out">zoom out</button><button id="reset">reset</button>
<span id="zoom">1x</span><span>{legend}</span>
<span>wheel: zoom at the pointer; drag: pan</span></header>
<div id="view">{svg}</div>
<script>
(function () {{
  const svg = document.querySelector("#view svg");
  const W = +svg.dataset.width, H = +svg.dataset.height, MAX = {max_zoom};
  let box = [0, 0, W, H];
  const show = () => {{
    svg.setAttribute("viewBox", box.join(" "));
    document.getElementById("zoom").textContent = (W / box[2]).toPrecision(3) + "x";
  }};
  const point = (ev) => {{  // the pointer in viewBox units
    const m = svg.getScreenCTM().inverse(), p = svg.createSVGPoint();
    p.x = ev.clientX; p.y = ev.clientY;
    return p.matrixTransform(m);
  }};
  const zoom = (factor, cx, cy) => {{
    const w = Math.min(W, Math.max(W / MAX, box[2] / factor)), f = box[2] / w;
    box = [cx - (cx - box[0]) / f, cy - (cy - box[1]) / f, w, box[3] / f];
    show();
  }};
  svg.addEventListener("wheel", (ev) => {{
    ev.preventDefault();
    const p = point(ev);
    zoom(Math.exp(-ev.deltaY / 300), p.x, p.y);
  }}, {{ passive: false }});
  let drag = null;
  svg.addEventListener("pointerdown", (ev) => {{ drag = point(ev); svg.setPointerCapture(ev.pointerId); }});
  svg.addEventListener("pointermove", (ev) => {{
    if (!drag) return;
    const p = point(ev);
    box[0] -= p.x - drag.x; box[1] -= p.y - drag.y;
    show();
  }});
  svg.addEventListener("pointerup", () => {{ drag = null; }});
  const centre = () => [box[0] + box[2] / 2, box[1] + box[3] / 2];
  document.getElementById("in").onclick = () => zoom(2, ...centre());
  document.getElementById("out").onclick = () => zoom(0.5, ...centre());
  document.getElementById("reset").onclick = () => {{ box = [0, 0, W, H]; show(); }};
  const hash = new URLSearchParams(location.hash.slice(1));  // e.g. #zoom=100 opens magnified
  if (hash.has("zoom")) zoom(+hash.get("zoom"), W / 2, H / 2);
  window.reluscopeZoom = {{ zoom, box: () => box.slice() }};
}})();
</script></body></html>
"""


def write_zoom_page(part: Partition2D, path: str | Path, title: str = "Partition",
                    options: ZoomOptions | None = None) -> Path:
    """Write a self-contained HTML page showing `part` as a pannable, zoomable vector drawing.

    Parameters
    ----------
    part : Partition2D
    path : str or Path
        The ``.html`` file to write (atomically).
    title : str
        Heading of the page.
    options : ZoomOptions, optional

    Returns
    -------
    Path
        The page written. Open it in any browser: the wheel zooms at the pointer, dragging
        pans, and ``#zoom=100`` in the address opens it magnified 100x at the centre.
    """
    opts = options or ZoomOptions()
    svg = partition_svg(part, opts)
    legend = " ".join(f'<span><span class="key" style="background:{SITE_COLOURS[k % len(SITE_COLOURS)]}">'
                      f"</span>site {k}: {html.escape(s.name)}</span>" for k, s in enumerate(part.sites))
    legend += f' <span><span class="key" style="background:{BOUNDARY_COLOUR}"></span>domain boundary</span>'
    summary = f"{part.n_regions:,} regions, {part.n_edges:,} edges"
    page = _PAGE.format(title=html.escape(title), summary=summary, legend=legend, svg=svg,
                        max_zoom=float(opts.max_zoom))
    return write_bytes(Path(path), page.encode())
