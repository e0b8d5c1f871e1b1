"""Zoomable vector partitions: the SVG holds every edge exactly where it is, and the page
pans and zooms in a real browser."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import reluscope as rs
from conftest import browser_screenshot, random_mlp, square
from reluscope.plotting.zoom import ZoomOptions, partition_svg, write_zoom_page


@pytest.fixture(scope="module")
def part():
    return rs.slice_regions(random_mlp(7, [12, 12]), square(2.0))


def _segments(d: str) -> np.ndarray:
    numbers = re.findall(r"M (-?\d+) (-?\d+) L (-?\d+) (-?\d+)", d)
    return np.array(numbers, dtype=np.int64).reshape(-1, 2, 2)


def test_the_svg_holds_every_edge_of_each_site_at_its_place(part):
    grid = 10_000
    root = ET.fromstring(partition_svg(part, ZoomOptions(grid=grid)))
    assert root.get("viewBox") == f"0 0 {grid} {grid}"
    paths = root.findall(".//{http://www.w3.org/2000/svg}path")
    seen = 0
    for path in paths:
        site = int(path.get("data-site"))
        ends = _segments(path.get("d"))
        chosen = part.edges[part.edge_site == site]
        assert len(ends) == len(chosen)
        seen += len(ends)
        # back to plane coordinates: every vertex within half a grid step of its true place
        x = ends[..., 0] / grid * 4.0 - 2.0
        y = 2.0 - ends[..., 1] / grid * 4.0
        np.testing.assert_allclose(np.stack([x, y], -1), part.vertices[chosen], atol=0.5 * 4.0 / grid + 1e-12)
        assert path.find("{http://www.w3.org/2000/svg}title").text.startswith(
            "domain boundary" if site < 0 else f"site {site}")
    assert seen == part.n_edges


def test_bad_input_is_refused_with_the_fix():
    with pytest.raises(TypeError, match="`part` of partition_svg must be a Partition2D.*slice_regions"):
        partition_svg("not a partition")
    with pytest.raises(ValueError, match=r"`grid` of ZoomOptions must be an integer >= 2; got 0.*1000000"):
        ZoomOptions(grid=0)
    with pytest.raises(ValueError, match="`stroke` of ZoomOptions must be a positive finite number"):
        ZoomOptions(stroke=-1.0)
    with pytest.raises(ValueError, match=r"`max_zoom` of ZoomOptions must be a magnification >= 1; got 0.5"):
        ZoomOptions(max_zoom=0.5)


def test_the_page_renders_and_zooms_in_a_browser(part, tmp_path):
    page = write_zoom_page(part, tmp_path / "zoom.html", "a test partition")
    assert page.read_text().count("<path") == len(set(part.edge_site.tolist()))
    whole = browser_screenshot(page, tmp_path / "whole.png", width=900, height=700)
    close = browser_screenshot(page, tmp_path / "close.png", width=900, height=700, fragment="zoom=50")
    drawn = lambda shot: (shot[120:].min(axis=2) < 0.9).mean()  # noqa: E731 - pixels with ink
    assert drawn(whole) > 0.02  # the edges are drawn, not a blank page
    assert drawn(close) < 0.5 * drawn(whole)  # magnified 50x: far fewer edges in view
