"""plot_partition draws every region and rejects bad input."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

import reluscope as rs
from conftest import random_mlp, square
from reluscope.plotting import plot_partition


@pytest.mark.parametrize("color_by", ["region", "active", "area"])
def test_plot_partition_draws_regions_and_edges(tmp_path, color_by):
    part = rs.slice_regions(random_mlp(3, [8, 8]), square(2.0))
    ax = plot_partition(part, color_by=color_by, anchors=np.zeros((1, 2)))
    faces, lines = ax.collections[0], ax.collections[1]
    assert len(faces.get_paths()) == part.n_regions
    assert len(lines.get_segments()) == part.n_edges
    ax.figure.savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
    plt.close(ax.figure)


def test_plot_partition_rejects_bad_input():
    part = rs.slice_regions(random_mlp(3, [4]), square())
    with pytest.raises(rs.InputTypeError, match="a Partition2D.*slice_regions"):
        plot_partition("not a partition")  # type: ignore[arg-type]
    with pytest.raises(rs.InputValueError, match="`color_by` of plot_partition must be one of"):
        plot_partition(part, color_by="rainbow")


def test_region_of_rejects_bad_shape():
    part = rs.slice_regions(random_mlp(3, [4]), square())
    with pytest.raises(rs.InputValueError, match=r"of shape \(N, 2\)"):
        part.region_of(np.zeros(3))
