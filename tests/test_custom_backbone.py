"""Backbones of the user's own, named package.module:factory: refused unless imports are
allowed, then trained, checkpointed and reloaded like the built-in ones."""

import sys
import textwrap

import pytest
import torch

from reluscope.cli import main
from reluscope.experiments.config import config_from_dict
from reluscope.train import TrainConfig
from reluscope.train.loop import build, load_checkpoint, train

MODULE = textwrap.dedent("""
    from torch import nn

    def tiny_cnn(channels=2, width=8):
        return nn.Sequential(nn.Conv2d(1, channels, 3, stride=2), nn.ReLU(), nn.Flatten(),
                             nn.Linear(channels * 13 * 13, width), nn.ReLU())

    not_callable = 3
""")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_nets.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_nets"
    sys.modules.pop("my_nets", None)


def test_imports_are_refused_without_the_opt_in(user_module, monkeypatch):
    monkeypatch.delenv("RELUSCOPE_ALLOW_IMPORTS", raising=False)
    with pytest.raises(ValueError, match="--allow-imports"):
        build(TrainConfig(backbone="my_nets:tiny_cnn", objective="supervised"))
    assert "my_nets" not in sys.modules  # nothing was imported


def test_bad_names_and_factories_say_what_is_wrong(user_module, monkeypatch):
    monkeypatch.setenv("RELUSCOPE_ALLOW_IMPORTS", "1")
    with pytest.raises(ValueError, match="'mlp', 'cnn', 'lenet' or 'package.module:factory'"):
        TrainConfig(backbone="my nets")
    with pytest.raises(ValueError, match="a callable `not_callable`"):
        build(TrainConfig(backbone="my_nets:not_callable", objective="supervised"))
    with pytest.raises(ValueError, match="an importable module"):
        build(TrainConfig(backbone="no_such_module_xyz:f", objective="supervised"))
    with pytest.raises(ValueError, match="`backbone_options` of TrainConfig"):
        TrainConfig(backbone="my_nets:tiny_cnn", backbone_options=[1])


def test_a_custom_backbone_trains_checkpoints_and_reloads(user_module, monkeypatch, tmp_path, data_dir):
    monkeypatch.setenv("RELUSCOPE_ALLOW_IMPORTS", "1")
    config = TrainConfig(backbone="my_nets:tiny_cnn", backbone_options={"channels": 3}, width=12,
                         objective="simclr", epochs=1, subset=256, batch_size=128)
    objective = build(config)
    assert objective.backbone.feature_dim == 12  # width reached the factory; d read by a forward
    assert objective.backbone[0].out_channels == 3
    result = train(config, tmp_path / "run", data_dir=data_dir, quiet=True)
    _, loaded, _ = load_checkpoint(result.checkpoints[-1][1])
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(loaded.backbone(x), result.objective.eval().backbone(x))


def test_grid_and_command_line_accept_a_custom_backbone(user_module, monkeypatch, tmp_path, data_dir, capsys):
    monkeypatch.setenv("RELUSCOPE_ALLOW_IMPORTS", "0")  # restored after the test (the CLI sets it)
    grid = config_from_dict({"grid": {"backbones": ["mlp", "my_nets:tiny_cnn"], "objectives": ["supervised"]},
                             "training": {"backbone_options": {"channels": 2}}})
    ids = [r.run_id for r in grid.runs()]
    assert any(i.startswith("supervised-mnist-my_nets_tiny_cnn64-s0-") for i in ids)
    assert all("/" not in i and ":" not in i for i in ids)
    with pytest.raises(ValueError, match=r"grid.backbones"):
        config_from_dict({"grid": {"backbones": ["resnet"]}})
    out = tmp_path / "cli"
    args = ["train", "--backbone", "my_nets:tiny_cnn", "--backbone-option", "channels=2", "--objective",
            "supervised", "--epochs", "1", "--subset", "256", "--batch-size", "128", "--out", str(out),
            "--data", str(data_dir)]
    assert main(args) == 2  # refused without the flag
    assert "--allow-imports" in capsys.readouterr().err
    assert main([*args, "--allow-imports"]) == 0
    assert (out / "checkpoints").is_dir()
    assert main([*args[:4], "channels", *args[5:], "--allow-imports"]) == 2  # not KEY=VALUE
    assert "`--backbone-option` must be KEY=VALUE" in capsys.readouterr().err
