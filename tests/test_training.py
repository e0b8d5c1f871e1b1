"""Training: objectives step, checkpoints, determinism, resume after kill -9, proof of life."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import reluscope as rs
from reluscope.evaluate import collapse_indicators, extract_features, knn_accuracy, linear_probe
from reluscope.nets.zoo import MLP, LeNet, SmallCNN, build_backbone
from reluscope.train import OBJECTIVES, Batch, TrainConfig, build, checkpoint_steps, load_checkpoint, train

pytestmark = pytest.mark.slow  # trains networks / runs grids end to end


def tiny_batch(n: int = 16) -> Batch:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 28, 28, generator=g)
    return Batch(x, torch.randint(0, 10, (n,), generator=g), (x + 0.01, x - 0.01))


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_takes_a_step(name):
    objective = rs.train.build_objective(name, MLP([32, 32]))
    objective.train()
    out = objective(tiny_batch())
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert objective.backbone[1].weight.grad is not None  # the backbone learns
    objective.after_step(1, 10)
    assert objective.family in {"supervised", "contrastive", "self-distillation", "redundancy-reduction",
                                "masked-modelling"}
    head = objective.trained_head()
    full = objective.trained_network()
    assert full[0] is objective.backbone and full[1] is head
    assert objective.embed(tiny_batch().images).shape[0] == 16


def test_collapse_switches_do_what_they_say():
    simsiam = rs.train.build_objective("simsiam", MLP([16]))
    no_sg = rs.train.build_objective("simsiam-no-stopgrad", MLP([16]))
    assert simsiam.stop_gradient and not no_sg.stop_gradient
    byol = rs.train.build_objective("byol-no-ema", MLP([16]))
    with torch.no_grad():
        byol.backbone[1].weight.add_(1.0)
    byol.after_step(1, 10)
    assert byol.tau == 0.0 and torch.equal(byol.target_backbone[1].weight, byol.backbone[1].weight)
    dino = rs.train.build_objective("dino-no-centering", MLP([16]))
    dino.train()
    dino(tiny_batch())
    assert torch.count_nonzero(dino.center) == 0
    assert rs.train.build_objective("dino-no-sharpening", MLP([16])).teacher_temp == 1.0
    assert rs.train.build_objective("vicreg-invariance-only", MLP([16])).coeffs == (25.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="one of"):
        rs.train.build_objective("simclr-v9", MLP([16]))


def test_backbones_are_analysable_by_the_engines():
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64, generator=gen)
    with torch.random.fork_rng():  # fixed weights, without touching the session's RNG
        torch.manual_seed(3)
        backbones = (MLP([8, 8]), SmallCNN(channels=(2,), hidden=8, batchnorm=True),
                     LeNet(channels=(2,), hidden=8))
    # a plane through three images for the MLP; discs (thousands of regions) for the
    # CNNs, whose first layer alone cuts the wide plane ~10^5 times
    planes = (rs.Plane.through(x[0], x[1], x[2]), rs.Plane.around(x[0], 1.0, gen),
              rs.Plane.around(x[1], 0.3, gen))
    for backbone, plane in zip(backbones, planes, strict=True):
        part = rs.slice_regions(backbone.eval(), plane)
        report = part.verify(backbone)
        assert report.ok, (report, part.n_regions)
    with pytest.raises(ValueError, match="'mlp', 'cnn', 'lenet' or 'package.module:factory'"):
        build_backbone("resnet")


def test_checkpoint_schedule_is_log_spaced_with_epoch_ends():
    steps = checkpoint_steps(1000, 100, per_decade=2)
    assert steps[:5] == [0, 1, 3, 10, 32]
    assert set(range(100, 1001, 100)) <= set(steps) and steps == sorted(set(steps))
    sparse = checkpoint_steps(1000, 100, per_decade=2, every_epochs=4)
    assert {400, 800, 1000} <= set(sparse) and not {200, 300, 500, 600} & set(sparse)
    assert checkpoint_steps(1000, 100, per_decade=2, every_epochs=0) == [0, 1, 3, 10, 32, 100, 316, 1000]
    # a new field at its default leaves every published run id as it was
    assert "checkpoint_every_epochs" not in TrainConfig().identity()
    assert TrainConfig(checkpoint_every_epochs=5).identity()["checkpoint_every_epochs"] == 5


def run_config(**changes) -> TrainConfig:
    base = dict(objective="simclr", epochs=2, batch_size=64, subset=256, width=32, depth=2)
    return TrainConfig(**{**base, **changes})


def test_training_is_deterministic_and_writes_checkpoints_with_sidecars(tmp_path, data_dir):
    a = train(run_config(), tmp_path / "a", data_dir=data_dir, quiet=True)
    b = train(run_config(), tmp_path / "b", data_dir=data_dir, quiet=True)
    pairs = zip(a.objective.state_dict().items(), b.objective.state_dict().items(), strict=True)
    for (sa, ta), (sb, tb) in pairs:
        assert sa == sb and torch.equal(ta, tb)
    steps = [s for s, _ in a.checkpoints]
    assert steps[0] == 0 and steps[-1] == 8 and 4 in steps
    config, objective, meta = load_checkpoint(a.checkpoints[-1][1])
    assert config == run_config() and meta["step"] == 8 and "loss" in meta["metrics"]
    assert torch.equal(objective.backbone[1].weight, a.objective.backbone[1].weight)
    with pytest.raises(ValueError, match="a run of a different config"):
        train(run_config(seed=1), tmp_path / "a", data_dir=data_dir, quiet=True)


def test_resume_after_kill_9_ends_like_an_uninterrupted_run(tmp_path, data_dir):
    config = run_config(objective="byol", epochs=3)
    reference = train(config, tmp_path / "ref", data_dir=data_dir, quiet=True)
    script = textwrap.dedent(f"""
        import os, signal
        from reluscope.train import TrainConfig, train
        def stop(step, objective):
            if step == 7:  # mid-run, between checkpoints (6 and 8)
                os.kill(os.getpid(), signal.SIGKILL)
        train(TrainConfig.from_dict({config.to_dict()!r}), {str(tmp_path / 'run')!r},
              data_dir={str(data_dir)!r}, quiet=True, on_step=stop)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    before = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "checkpoints").iterdir()}
    resumed = train(config, tmp_path / "run", data_dir=data_dir, quiet=True)
    assert resumed.resumed_from == 6
    for name in before:  # finished checkpoints are never rewritten
        assert (tmp_path / "run" / "checkpoints" / name).stat().st_mtime_ns == stamps[name]
    assert [s for s, _ in resumed.checkpoints] == [s for s, _ in reference.checkpoints]
    for (ka, ta), (kb, tb) in zip(reference.objective.state_dict().items(),
                                  resumed.objective.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(ta, tb), ka


def test_probe_knn_and_collapse_indicators_on_known_data():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (600,), generator=g)
    x = torch.randn(600, 8, generator=g) + 4 * torch.nn.functional.one_hot(y, 8).float()
    res = linear_probe(x[:400], y[:400], x[400:], y[400:])
    assert res["probe_test_accuracy"] > 0.95
    assert knn_accuracy(x[:400], y[:400], x[400:], y[400:]) > 0.95
    spread = collapse_indicators(torch.randn(2000, 16, generator=g))
    assert spread["std"] == pytest.approx(1.0, abs=0.05) and spread["rankme"] > 14
    line = torch.randn(2000, 1, generator=g) * torch.randn(1, 16, generator=g)
    collapsed = collapse_indicators(line + 1e-9 * torch.randn(2000, 16, generator=g))
    assert collapsed["rankme"] < 1.5 and collapsed["sv_top1"] > 0.99
    assert collapse_indicators(torch.ones(100, 16))["std"] == pytest.approx(0.0, abs=1e-12)
    power = torch.randn(4000, 32, generator=g, dtype=torch.float64) * torch.arange(1, 33) ** -0.5
    assert rs.evaluate.alpha_req(power) == pytest.approx(1.0, abs=0.15)


def test_proof_of_life_ssl_learns_and_simsiam_without_stop_gradient_collapses(tmp_path, data_dir):
    from reluscope.data import load_idx_images

    xtr, ytr = load_idx_images("mnist", "train", data_dir)
    xte, yte = load_idx_images("mnist", "test", data_dir)
    train_x, train_y = torch.from_numpy(xtr[:2048])[:, None], torch.from_numpy(ytr[:2048])
    test_x, test_y = torch.from_numpy(xte[:1000])[:, None], torch.from_numpy(yte[:1000])

    def probe(objective) -> float:
        f_train, f_test = extract_features(objective.backbone, train_x), extract_features(objective.backbone,
                                                                                          test_x)
        return linear_probe(f_train, train_y, f_test, test_y)["probe_test_accuracy"]

    def embedding_std(objective) -> float:
        objective.eval()
        with torch.no_grad():
            return collapse_indicators(objective.embed(test_x))["std"]

    config = dict(epochs=4, batch_size=256, subset=2048, width=128)
    baseline = probe(build(TrainConfig(objective="simclr", **config)))
    for name in ("simclr", "byol"):
        trained = train(TrainConfig(objective=name, **config), tmp_path / name, data_dir=data_dir, quiet=True)
        assert probe(trained.objective) > baseline + 0.04, name
    healthy = train(TrainConfig(objective="simsiam", **config), tmp_path / "ss", data_dir=data_dir,
                    quiet=True)
    collapsed = train(TrainConfig(objective="simsiam-no-stopgrad", **config), tmp_path / "ns",
                      data_dir=data_dir, quiet=True)
    assert embedding_std(collapsed.objective) < 0.2 < embedding_std(healthy.objective)


def test_train_config_names_the_bad_field():
    with pytest.raises(ValueError, match="`objective` of TrainConfig must be one of"):
        TrainConfig(objective="simclr2")
    with pytest.raises(ValueError, match="`epochs` of TrainConfig must be a positive integer"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match=r"unknown fields \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 3})


def test_label_noise_moves_exactly_the_stated_fraction_to_other_classes_and_keeps_run_ids():
    from reluscope.experiments.config import load_config
    from reluscope.train.loop import noisy_labels

    labels = torch.arange(1000) % 10
    noisy = noisy_labels(labels, 0.2, seed=7)
    changed = noisy != labels
    assert int(changed.sum()) == 200  # exactly round(0.2 * n), each to a different class
    assert torch.equal(noisy, noisy_labels(labels, 0.2, seed=7))
    assert not torch.equal(noisy, noisy_labels(labels, 0.2, seed=8))
    assert torch.equal(noisy_labels(labels, 0.0, seed=7), labels)
    with pytest.raises(ValueError, match="label_noise"):
        TrainConfig(label_noise=1.0)
    # a field added later leaves every earlier run id (and folder) as it was
    paper = load_config(Path(__file__).resolve().parents[1] / "configs" / "paper-mnist.toml")
    assert paper.runs()[0].run_id == "supervised-mnist-mlp256-s0-e918419b"
    noisy_spec = load_config(Path(__file__).resolve().parents[1] / "configs" / "paper-mnist.toml")
    assert "label_noise" not in noisy_spec.runs()[0].train.identity()
    assert "label_noise" in TrainConfig(label_noise=0.2).identity()


def test_label_noise_run_reports_its_classifier_on_noisy_and_clean_labels(tmp_path, data_dir):
    from reluscope.experiments.analyze import classifier_metrics

    config = TrainConfig(objective="supervised", width=16, depth=1, epochs=1, batch_size=128, subset=512,
                         label_noise=0.5)
    result = train(config, tmp_path / "run", data_dir=data_dir, quiet=True)
    from reluscope.experiments.config import Analysis

    found = classifier_metrics(result.objective, config, data_dir, test_limit=500,
                               analysis=Analysis(robust_points=50, robust_steps=3))
    assert set(found) == {"classifier.test_accuracy", "classifier.train_accuracy",
                          "classifier.clean_train_accuracy", "robust.linf_accuracy", "robust.l2_accuracy"}
    assert found["robust.linf_accuracy"] <= found["classifier.test_accuracy"] + 0.1
    assert all(0 <= v <= 1 for v in found.values())
    simclr = build(TrainConfig(objective="simclr", width=8, depth=1))
    assert classifier_metrics(simclr, config, data_dir) == {}
