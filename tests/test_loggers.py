"""Training logs to TensorBoard (a real event file, read back) and to Weights & Biases (the
adapter's calls, and a real offline run where wandb is installed)."""

import sys
import types

import pytest

from reluscope.cli import main
from reluscope.experiments.config import config_from_dict
from reluscope.train import TrainConfig
from reluscope.train.loggers import Loggers, TensorBoardLogger, WandbLogger
from reluscope.train.loop import train

TINY = dict(objective="simclr", epochs=1, subset=256, batch_size=128, width=16, depth=1)


def _scalars(folder):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_gets_every_steps_loss(tmp_path, data_dir):
    pytest.importorskip("tensorboard")
    logger = TensorBoardLogger(tmp_path / "tb")
    result = train(TrainConfig(**TINY), tmp_path / "run", data_dir=data_dir, quiet=True, on_log=logger)
    logger.close()
    scalars = _scalars(tmp_path / "tb")
    steps = result.checkpoints[-1][0]
    assert [s for s, _ in scalars["train/loss"]] == list(range(1, steps + 1))


def test_the_train_command_and_a_grid_log_to_tensorboard(tmp_path, data_dir):
    pytest.importorskip("tensorboard")
    args = ["train", "--objective", "supervised", "--epochs", "1", "--subset", "256", "--batch-size", "128",
            "--width", "8", "--depth", "1", "--out", str(tmp_path / "cli"), "--data", str(data_dir),
            "--tensorboard", str(tmp_path / "cli-tb")]
    assert main(args) == 0
    assert "train/loss" in _scalars(tmp_path / "cli-tb")
    assert config_from_dict({"execution": {"loggers": ["tensorboard"]}}).execution.loggers == ["tensorboard"]
    with pytest.raises(ValueError, match="execution.loggers"):
        config_from_dict({"execution": {"loggers": ["mlflow"]}})


def test_the_wandb_adapter_logs_and_finishes_its_run(monkeypatch):
    calls = []

    class Run:
        def log(self, data, step):
            calls.append(("log", data, step))

        def finish(self):
            calls.append(("finish",))

    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: calls.append(("init", kwargs)) or Run()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    loggers = Loggers([WandbLogger("proj", name="run-1", mode="offline")])
    loggers(3, {"loss": 0.5})
    loggers.close()
    assert calls[0][0] == "init" and calls[0][1]["project"] == "proj" and calls[0][1]["mode"] == "offline"
    assert calls[1] == ("log", {"train/loss": 0.5}, 3) and calls[-1] == ("finish",)


def test_a_real_offline_wandb_run_from_the_train_command(tmp_path, data_dir, monkeypatch):
    pytest.importorskip("wandb")  # the wandb extra; CI runs the adapter test above instead
    monkeypatch.setenv("WANDB_MODE", "offline")  # no account, no network: a local run to `wandb sync`
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    args = ["train", "--objective", "simclr", "--epochs", "1", "--subset", "256", "--batch-size", "128",
            "--width", "16", "--depth", "1", "--data", str(data_dir), "--out", str(out), "--wandb", "proj"]
    assert main(args) == 0
    files = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1  # the run's log, beside its checkpoints
    payload = files[0].read_bytes()
    assert b"train/loss" in payload and b"simclr" in payload  # the losses and the run's config
