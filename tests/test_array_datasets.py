"""Datasets of the user's own as an .npz file: checked on load, then used like MNIST by
training, evaluation and a whole grid."""

import numpy as np
import pytest

from reluscope.data import load_idx_images
from reluscope.experiments.config import config_from_dict
from reluscope.experiments.runner import run_experiment
from reluscope.experiments.store import load_results


def _write(path, n_train=300, n_test=120, **changes):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 3, n_train), "x_test": rng.random((n_test, 28, 28)),
              "y_test": rng.integers(0, 3, n_test)}
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return f"npz:{path}"


def test_an_npz_dataset_loads_scaled_and_checked(tmp_path):
    name = _write(tmp_path / "mine.npz")
    x, y = load_idx_images(name, "train")
    assert x.shape == (300, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == np.int64 and set(y) <= {0, 1, 2}
    x_test, _ = load_idx_images(name, "test")
    assert x_test.shape == (120, 28, 28)
    x[0, 0, 0] = 5.0  # callers get copies
    assert load_idx_images(name, "train")[0][0, 0, 0] <= 1
    bad = {"shape": {"x_train": np.zeros((10, 32, 32), np.uint8), "y_train": np.zeros(10, int)},
           "range": {"x_test": np.full((120, 28, 28), 3.0)},
           "labels": {"y_train": np.full(300, 12)},
           "missing": {"y_test": None}}
    messages = {"shape": "(N, 28, 28)", "range": "floats in [0, 1]", "labels": "integer labels in [0, 10)",
                "missing": "the arrays"}
    for case, changes in bad.items():
        with pytest.raises(ValueError, match=messages[case].replace("[", r"\[").replace("(", r"\(")
                           .replace(")", r"\)")):
            load_idx_images(_write(tmp_path / f"{case}.npz", **changes), "train")
    with pytest.raises(ValueError, match="no such file"):
        load_idx_images("npz:nowhere.npz", "train")
    (tmp_path / "pickled.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="a NumPy .npz file"):
        load_idx_images(f"npz:{tmp_path / 'pickled.npz'}", "train")


@pytest.mark.slow
def test_a_grid_runs_on_an_npz_dataset(tmp_path):
    name = _write(tmp_path / "mine.npz", n_train=256, n_test=200)
    config = config_from_dict({
        "name": "mine", "grid": {"datasets": [name], "objectives": ["supervised"], "widths": [8], "depth": 1},
        "training": {"epochs": 1, "batch_size": 128, "checkpoints_per_decade": 1},
        "analysis": {"planes": 2, "paths": 2, "lc_points": 5, "lc_directions": 2, "probe_train": 200,
                     "probe_test": 100, "knn_test": 50, "networks": ["backbone"]},
        "execution": {"workers": 1}})
    run_id = config.runs()[0].run_id
    assert ":" not in run_id and "/" not in run_id
    report = run_experiment(config, tmp_path / "exp", quiet=True)
    assert report.completed == [run_id] and not report.failed
    results = load_results(tmp_path / "exp")
    assert {"slice.n_regions", "probe_test_accuracy", "path.n_regions"} <= set(results["metric"])
    assert any(p.name.startswith("npz_") for p in (tmp_path / "exp" / "planes").iterdir())
    with pytest.raises(ValueError, match="datasets of your own that exist.*no such .npz file"):
        config_from_dict({"grid": {"datasets": ["npz:missing.npz"]}})


def test_the_published_studies_planes_are_drawn_again_the_same(data_dir):
    """Choosing triplets among the classes present keeps MNIST's draws (ten classes) as they were."""
    import json
    from pathlib import Path

    from reluscope.experiments.analyze import choose_probes

    published = Path(__file__).resolve().parents[1] / "results/paper-mnist/planes/mnist.json"
    stored = json.loads(published.read_text())
    config = config_from_dict({"analysis": {"planes": len(stored["triplets"]),
                                            "paths": len(stored["pairs"])}})
    _, fresh = choose_probes("mnist", config.analysis, data_dir, None)
    assert fresh["triplets"] == stored["triplets"] and fresh["pairs"] == stored["pairs"]
