"""The per-checkpoint analysis: shortcuts that must equal the plain computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reluscope import metrics
from reluscope.experiments.analyze import Probes, local_complexity, shared_cross_polytope
from reluscope.experiments.config import config_from_dict
from reluscope.nets.zoo import build_backbone
from reluscope.train.objectives import build_objective


def _probes(n: int = 12) -> Probes:
    images = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    return Probes([[0, 1, 2]], [False], [[0, 1]], [False], images, torch.arange(n) % 10)


@pytest.mark.parametrize("name", ["supervised", "simclr", "dino"])
def test_one_pass_on_the_full_network_gives_both_networks_local_complexity(name):
    torch.manual_seed(0)
    objective = build_objective(name, build_backbone("mlp", 16, 2)).eval()
    analysis = config_from_dict({"analysis": {"lc_points": 10, "lc_directions": 4, "lc_radius": 0.5,
                                              "networks": ["backbone", "full"]}}).analysis
    probes = _probes()
    shared = shared_cross_polytope(objective, probes, analysis)
    points = probes.test_x[:10].double()
    for key, network in (("backbone", objective.backbone), ("full", objective.trained_network())):
        alone = metrics.cross_polytope_lc(network, points, 0.5, 4, generator=torch.Generator().manual_seed(0))
        np.testing.assert_array_equal(shared[key].per_site, alone.per_site)
        assert shared[key].summary() == alone.summary()
        # and through the analysis' own entry point, with and without the shortcut
        assert local_complexity(network, probes, analysis, cross=shared[key]) == \
            local_complexity(network, probes, analysis)
    assert shared["full"].per_site.shape[1] == shared["backbone"].per_site.shape[1] + (name != "supervised")


def test_the_shortcut_needs_both_networks():
    objective = build_objective("simclr", build_backbone("mlp", 8, 1)).eval()
    analysis = config_from_dict({"analysis": {"lc_points": 4, "networks": ["backbone"]}}).analysis
    assert shared_cross_polytope(objective, _probes(), analysis) == {}


def test_first_sites_refuses_more_sites_than_it_has():
    lc = metrics.LocalComplexity(np.ones((3, 2)), "cross_polytope", {}, ("a", "b"))
    assert lc.first_sites(1).site_names == ("a",)
    with pytest.raises(ValueError, match=r"`n` of LocalComplexity.first_sites must be in \[0, 2\]"):
        lc.first_sites(3)


def test_grid_workers_get_one_blas_pool_per_torch_thread(monkeypatch):
    import multiprocessing
    import os
    from concurrent import futures

    from reluscope.experiments.runner import NATIVE_THREAD_VARIABLES, native_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    pool = futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    with pool:
        with native_threads(1):
            seen = [pool.submit(os.getenv, name) for name in NATIVE_THREAD_VARIABLES]
        assert [f.result() for f in seen] == ["1"] * len(NATIVE_THREAD_VARIABLES)
    assert os.environ["OMP_NUM_THREADS"] == "7" and "OPENBLAS_NUM_THREADS" not in os.environ


def test_an_affine_head_reuses_the_backbones_path_pieces():
    from reluscope.experiments.analyze import (
        head_is_affine,
        path_metrics,
        path_partition,
        through_affine_head,
    )

    torch.manual_seed(1)
    objective = build_objective("supervised", build_backbone("mlp", 16, 2)).eval()
    probes = _probes()
    features = objective.backbone(probes.test_x[:2])
    assert head_is_affine(objective.trained_head(), features)
    assert not head_is_affine(build_objective("simclr", objective.backbone).eval().trained_head(), features)
    with pytest.raises(ValueError, match="training mode"):  # BatchNorm on batch statistics: refused
        head_is_affine(build_objective("simclr", objective.backbone).train().trained_head(), features)
    assert not head_is_affine(torch.nn.Sequential(torch.nn.Linear(16, 4), torch.nn.Hardtanh()), features)
    reused = through_affine_head(path_partition(objective.backbone, probes), objective.trained_head())
    direct = path_partition(objective.trained_network(), probes)
    np.testing.assert_array_equal(reused.piece_offsets, direct.piece_offsets)
    np.testing.assert_allclose(reused.output_start, direct.output_start, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(reused.output_end, direct.output_end, rtol=1e-12, atol=1e-12)
    a = path_metrics(objective.trained_network(), probes, part=reused)
    b = path_metrics(objective.trained_network(), probes)
    assert a.keys() == b.keys() and all(np.isclose(a[k], b[k], rtol=1e-10, atol=1e-12) for k in a)
    assert objective.trained_head().weight.dtype == torch.float32  # the objective's head untouched
