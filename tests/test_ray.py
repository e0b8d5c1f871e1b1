"""The Ray engine: a two-run grid on a local Ray cluster (loopback only) gives the same
results as the local engine. Runs only where Ray is installed (``pip install ray``)."""

from __future__ import annotations

import numpy as np
import pytest

from reluscope.experiments.config import config_from_dict
from reluscope.experiments.runner import run_experiment
from reluscope.experiments.store import load_results

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")

GRID = {
    "name": "ray-pair",
    "grid": {"objectives": ["supervised", "simclr"], "widths": [12], "depth": 2},
    "training": {"epochs": 1, "batch_size": 128, "subset": 256, "checkpoints_per_decade": 1},
    "analysis": {"planes": 1, "paths": 2, "lc_points": 8, "lc_directions": 3, "probe_train": 400,
                 "probe_test": 200},
    "execution": {"workers": 1},
}


def test_a_two_run_grid_on_a_local_ray_cluster_equals_the_local_run(tmp_path, data_dir):
    local = run_experiment(config_from_dict(GRID), tmp_path / "local", data_dir=data_dir, quiet=True)
    assert len(local.completed) == 2 and not local.failed
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, configure_logging=False)
    try:
        on_ray = run_experiment(config_from_dict({**GRID, "execution": {"engine": "ray", "workers": 1}}),
                                tmp_path / "ray", data_dir=data_dir, quiet=True)
    finally:
        ray.shutdown()
    assert sorted(on_ray.completed) == sorted(local.completed) and not on_ray.failed
    key = ["run_id", "step", "metric"]
    a = load_results(tmp_path / "local").sort_values(key).reset_index(drop=True)
    b = load_results(tmp_path / "ray").sort_values(key).reset_index(drop=True)
    assert list(a[key].itertuples(index=False)) == list(b[key].itertuples(index=False))
    timing = a["metric"].str.startswith("time.")  # wall-clock seconds differ, nothing else
    np.testing.assert_array_equal(a.loc[~timing, "value"].to_numpy(), b.loc[~timing, "value"].to_numpy())
