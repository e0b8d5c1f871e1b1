"""Fine-tuning: class-balanced label subsets, bit-for-bit determinism, the backbone left
untouched, and fine-tuned accuracy in a grid's results at the chosen checkpoints."""

from __future__ import annotations

import torch

from reluscope.evaluate.finetune import FinetuneOptions, balanced_subset, finetune_accuracy, fraction_key
from reluscope.evaluate.quality import load_split
from reluscope.experiments.config import config_from_dict
from reluscope.experiments.runner import run_experiment
from reluscope.experiments.store import load_results
from reluscope.nets.zoo import MLP


def test_balanced_subsets_take_the_same_count_of_every_class_fixed_by_seed():
    labels = torch.arange(1000) % 10
    rows = balanced_subset(labels, 0.05, seed=3)
    assert len(rows) == 50 and torch.equal(torch.bincount(labels[rows]), torch.full((10,), 5))
    assert torch.equal(rows, balanced_subset(labels, 0.05, seed=3))
    assert not torch.equal(rows, balanced_subset(labels, 0.05, seed=4))
    assert len(balanced_subset(labels, 0.001, seed=0)) == 10  # at least one per class
    assert [fraction_key(f) for f in (1.0, 0.1, 0.01, 0.005)] == ["100", "10", "1", "0.5"]


def test_finetuning_is_deterministic_and_leaves_the_backbone_alone(data_dir):
    train_x, train_y = load_split("mnist", "train", data_dir, 3000)
    test_x, test_y = load_split("mnist", "test", data_dir, 500)
    torch.manual_seed(0)
    backbone = MLP([32, 32])
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    state = torch.random.get_rng_state()
    options = FinetuneOptions(steps=60, batch_size=64)
    first = finetune_accuracy(backbone, train_x, train_y, test_x, test_y, 0.1, options)
    again = finetune_accuracy(backbone, train_x, train_y, test_x, test_y, 0.1, options)
    assert first == again and first["labels"] == 300
    assert first["accuracy"] > 0.5  # 300 labels, 60 steps: well above chance (0.1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())


def test_a_grid_fine_tunes_the_chosen_checkpoints(tmp_path, data_dir):
    config = config_from_dict({
        "name": "finetune", "grid": {"objectives": ["mae"], "widths": [8], "depth": 1},
        "training": {"epochs": 2, "batch_size": 128, "subset": 256, "checkpoints_per_decade": 1},
        "analysis": {"planes": 1, "paths": 2, "lc_points": 4, "lc_directions": 2, "probe_train": 300,
                     "probe_test": 200, "finetune_fractions": [0.01, 1.0], "finetune_steps": 5,
                     "finetune_checkpoints": 2, "lc_estimators": ["cross_polytope", "ball", "smooth"],
                     "lc_probes": 4},
        "execution": {"workers": 1}})
    report = run_experiment(config, tmp_path / "exp", data_dir=data_dir, quiet=True)
    assert len(report.completed) == 1
    results = load_results(tmp_path / "exp")
    tuned = results[results["metric"] == "finetune1.accuracy"]
    steps = sorted(results["step"].unique())
    assert sorted(tuned["step"]) == [2, steps[-1]]  # end of epoch 1 (2 steps) and the last
    assert set(results[results["metric"] == "finetune100.accuracy"]["step"]) == set(tuned["step"])
    names = set(results["metric"])
    assert "full.path.mean_abs_deviation" in names  # the decoder is the full network's head
    assert {"lc.total", "lc_ball.total", "lc_smooth.total", "full.lc_ball.total",
            "path.total_variation_density"} <= names
