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


def test_decision_boundary_anchor_images_and_path_profile(tmp_path):
    import torch

    from reluscope import metrics
    from reluscope.plotting import plot_path_profile

    model = random_mlp(2, [8, 8])
    part = rs.slice_regions(model, square(2.0))
    boundary = metrics.decision_boundary(part, model)
    ax = plot_partition(part, decision=boundary, anchors=np.zeros((2, 2)),
                        anchor_images=np.random.default_rng(0).random((2, 28, 28)))
    assert len(ax.images) == 2
    ax.figure.savefig(tmp_path / "d.png")
    plt.close(ax.figure)
    path = rs.path_regions(model, rs.Path.segment(torch.tensor([-2.0, -1.0]), torch.tensor([2.0, 1.5])))
    ax = plot_path_profile(path, outputs=[0, 2])
    assert len(ax.lines) >= 4  # two outputs and their interpolations
    ax.figure.savefig(tmp_path / "p.png")
    plt.close(ax.figure)
    with pytest.raises(rs.InputValueError, match="`outputs` of plot_path_profile"):
        plot_path_profile(path, outputs=[7])
    with pytest.raises(rs.InputValueError, match="`path` of plot_path_profile"):
        plot_path_profile(path, path=3)
    with pytest.raises(rs.InputValueError, match="one picture per anchor"):
        plot_partition(part, anchors=np.zeros((2, 2)), anchor_images=np.zeros((3, 28, 28)))


def test_raster_matches_point_location_and_draws_one_image(tmp_path):
    from reluscope.plotting.raster import edge_sites, region_raster

    part = rs.slice_regions(random_mlp(4, [16, 16]), square(2.0))
    ids = region_raster(part, 300, 200)
    assert ids.shape == (200, 300) and (ids >= 0).all()
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 200, 500), rng.integers(0, 300, 500)
    pts = np.stack([-2 + (cols + 0.5) * 4 / 300, 2 - (rows + 0.5) * 4 / 200], 1)
    assert (part.region_of(pts) == ids[rows, cols]).mean() > 0.99  # ties only on boundaries
    layers = edge_sites(part, ids)
    assert set(np.unique(layers)) <= {-2, -1, 0, 1}
    ax = plot_partition(part, raster=True, pixels=300)
    assert len(ax.images) == 1 and len(ax.collections) == 0
    ax.figure.savefig(tmp_path / "r.png")
    plt.close(ax.figure)


def test_partition_figures_have_a_legend_a_colorbar_units_and_vector_output(tmp_path):
    part = rs.slice_regions(random_mlp(3, [8, 8]), square(2.0))
    ax = plot_partition(part, color_by="active", axes_labels=True)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [f"site {k}: {part.sites[k].name}" for k in range(2)] + ["domain boundary"]
    assert len(ax.figure.axes) == 2 and "active neurons" in ax.figure.axes[1].get_ylabel()  # colour bar
    assert ax.get_xlabel() == "s (plane units)" and ax.get_ylabel() == "t (plane units)"
    for suffix in ("svg", "pdf"):
        ax.figure.savefig(tmp_path / f"p.{suffix}", bbox_inches="tight")
        assert (tmp_path / f"p.{suffix}").stat().st_size > 1000
    assert (tmp_path / "p.svg").read_text().count("<path") > part.n_regions  # every region a vector shape
    plt.close(ax.figure)
    plain = plot_partition(part, legend=False)
    assert plain.get_legend() is None and len(plain.figure.axes) == 1
    plt.close(plain.figure)


def test_path_profiles_name_the_classes():
    import torch

    from reluscope.data import DATASETS
    from reluscope.plotting import plot_path_profile

    net = random_mlp(4, [6], d_in=2)
    net = torch.nn.Sequential(*net[:-1], torch.nn.Linear(6, 10)).eval()
    part = rs.path_regions(net, rs.Path.segment(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.5])))
    names = DATASETS["fashion-mnist"].classes
    ax = plot_path_profile(part, class_names=names)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(names)
    plt.close(ax.figure)
    ax = plot_path_profile(part, outputs=[2])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["output 2"]
    plt.close(ax.figure)
    with pytest.raises(rs.InputValueError, match="`class_names` of plot_path_profile must be 10 names"):
        plot_path_profile(part, class_names=names[:3])
