"""The command line: `reluscope demo` end to end on the real MNIST files."""

import json

import pytest

from reluscope.cli import main


@pytest.mark.slow
def test_demo_runs_a_grid_and_writes_the_report(tmp_path, data_dir, capsys):
    config = tmp_path / "grid.toml"
    config.write_text(
        'name = "mini"\n[grid]\nobjectives = ["supervised", "byol"]\nwidths = [8]\ndepth = 1\n'
        "[training]\nepochs = 1\nbatch_size = 128\nsubset = 256\ncheckpoints_per_decade = 1\n"
        "[analysis]\nplanes = 1\npaths = 2\nlc_points = 5\nlc_directions = 2\nprobe_train = 300\n"
        "probe_test = 200\n[execution]\nworkers = 1\n")
    root = tmp_path / "demo"
    assert main(["demo", "--root", str(root), "--data", str(data_dir), "--config", str(config)]) == 0
    printed = capsys.readouterr().out
    assert "2 runs done" in printed and "report.html" in printed
    assert (root / "report" / "report.html").stat().st_size > 10_000
    assert (root / "report" / "partitions.png").is_file()


def test_shipped_demo_config_is_the_documented_grid():
    from importlib import resources

    from reluscope.experiments.config import load_config

    with resources.as_file(resources.files("reluscope.experiments") / "configs" / "demo.toml") as path:
        config = load_config(path)
    assert config.grid.objectives == ["supervised", "simclr", "byol", "simsiam", "simsiam-no-stopgrad"]
    assert config.grid.datasets == ["mnist"]


def test_cli_requires_a_command(capsys):
    with pytest.raises(SystemExit):
        main([])
    assert "demo" in capsys.readouterr().err


def small_model(tmp_path, flat: bool = True):
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers = [nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10)]
    path = tmp_path / "model.pt"
    torch.save(nn.Sequential(*layers), path)
    return path


def test_slice_writes_pictures_partitions_and_metrics(tmp_path, data_dir):
    import reluscope as rs

    model = small_model(tmp_path)
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="runs code from the file"):
        code = main(["slice", str(model), "--indices", "3", "4", "5", "--data", str(data_dir),
                     "--dataset", "fashion-mnist", "--out", str(out), "--allow-pickle"])
    assert code == 0
    result = json.loads((out / "metrics.json").read_text())
    part = rs.Partition2D.load(out / "partition.npz")
    assert result["slice"]["n_regions"] == part.n_regions > 10
    assert result["slice"]["decision_regions"] >= 0
    assert result["path"]["path_n_regions"] == rs.Partition1D.load(out / "path.npz").region_counts()[0]
    assert len(result["labels"]) == 3
    for picture in ("partition.png", "path_profile.png"):
        assert (out / picture).stat().st_size > 10_000
    assert (out / "path_profile.svg").read_text().startswith("<?xml")
    assert (out / "partition_zoom.html").read_text().count('class="site"') == len(part.sites) + 1


@pytest.mark.filterwarnings("ignore:unpickling")
def test_slice_bad_input_is_reported_without_a_traceback(tmp_path, data_dir, capsys):
    model = small_model(tmp_path)
    assert main(["slice", str(tmp_path / "missing.pt"), "--indices", "0", "1", "2"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["slice", str(model), "--indices", "0", "1", "99999", "--data", str(data_dir),
                 "--allow-pickle"]) == 2
    assert "image indices in [0, 10000)" in capsys.readouterr().err
    assert main(["slice", str(model), "--indices", "0", "1", "2", "--input-shape", "3,3",
                 "--data", str(data_dir), "--allow-pickle"]) == 2
    assert "product 784" in capsys.readouterr().err
    import torch

    torch.save({"weight": torch.zeros(2)}, tmp_path / "state.pt")
    assert main(["slice", str(tmp_path / "state.pt"), "--indices", "0", "1", "2",
                 "--data", str(data_dir)]) == 2
    assert "save the module itself" in capsys.readouterr().err


class _Payload:
    """A pickle whose loading would run a shell command (it must never be unpickled)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_slice_refuses_a_pickle_that_would_run_code(tmp_path, data_dir, capsys):
    import torch

    marker = tmp_path / "pwned"
    torch.save(_Payload(marker), tmp_path / "evil.pt")
    evil = str(tmp_path / "evil.pt")
    assert main(["slice", evil, "--indices", "0", "1", "2", "--data", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert "pickled Python objects" in err and "--allow-pickle" in err
    assert not marker.exists()
    whole = small_model(tmp_path)
    assert main(["slice", str(whole), "--indices", "0", "1", "2", "--data", str(data_dir)]) == 2
    assert "runs code from the file" in capsys.readouterr().err


def test_slice_reads_reluscope_checkpoints_backbone_or_full(tmp_path, data_dir):
    from reluscope.train.loop import TrainConfig, train

    config = TrainConfig(objective="supervised", width=8, depth=1, epochs=1, batch_size=128, subset=256)
    result = train(config, tmp_path / "run", data_dir=data_dir, quiet=True)
    checkpoint = str(result.checkpoints[-1][1])
    counts = {}
    for network in ("full", "backbone"):
        out = tmp_path / network
        assert main(["slice", checkpoint, "--indices", "0", "1", "2", "--data", str(data_dir),
                     "--network", network, "--out", str(out)]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        counts[network] = metrics["slice"]["n_regions"]
    assert counts["full"] == counts["backbone"]  # a linear classifier adds no region


def test_train_command_trains_resumes_and_evaluates(tmp_path, data_dir, capsys):
    args = ["train", "--objective", "vicreg", "--epochs", "1", "--subset", "256", "--batch-size", "128",
            "--width", "32", "--depth", "1", "--out", str(tmp_path / "run"), "--data", str(data_dir),
            "--evaluate", "--eval-train", "500"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "probe" in printed and "rankme" in printed
    quality = sorted((tmp_path / "run" / "checkpoints").glob("*.quality.json"))
    assert len(quality) == 3  # steps 0, 1, 2
    row = json.loads(quality[-1].read_text())
    assert 0 < row["probe_test_accuracy"] <= 1 and row["step"] == 2
    stamp = quality[-1].stat().st_mtime_ns
    assert main(args) == 0  # everything done: nothing recomputed
    assert quality[-1].stat().st_mtime_ns == stamp


def test_every_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "(default: 256)" in text and "(default: mlp)" in text and "(default: None)" not in text
    with pytest.raises(SystemExit):
        main(["slice", "--help"])
    assert "(default: 5000000)" in capsys.readouterr().out


def test_help_is_fast_and_imports_no_torch_and_names_match_the_registry():
    import subprocess
    import sys

    code = ("import sys, reluscope.cli; "
            "print('torch' in sys.modules, 'pandas' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]
    version = subprocess.run([sys.executable, "-m", "reluscope", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("reluscope ")
    from reluscope.train.names import OBJECTIVE_NAMES
    from reluscope.train.objectives import OBJECTIVES

    assert sorted(OBJECTIVE_NAMES) == sorted(OBJECTIVES)


def test_shipped_configs_are_listed_printed_and_run_by_name(capsys):
    from reluscope.experiments.config import load_config, shipped_configs

    assert {"demo", "paper-mnist", "prediction-mnist", "double-descent-mnist"} <= set(shipped_configs())
    assert main(["configs"]) == 0
    listing = capsys.readouterr().out
    assert "paper-mnist" in listing and "The study on MNIST" in listing
    assert main(["configs", "paper-mnist"]) == 0
    assert "[grid]" in capsys.readouterr().out
    assert main(["configs", "nope"]) == 2
    assert "`reluscope configs`" in capsys.readouterr().err
    assert load_config("paper-mnist").name == "paper-mnist"  # a shipped config by name
    with pytest.raises(ValueError, match="`reluscope configs` lists the shipped configs"):
        load_config("no-such-config")
