"""Experiments: config validation, a tiny grid end to end, resume after a kill, analysis on
synthetic tables with known answers, and the report."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from reluscope.cli import main
from reluscope.experiments.config import config_from_dict, load_config
from reluscope.experiments.runner import run_experiment
from reluscope.experiments.store import COLUMNS, load_results

pytestmark = pytest.mark.slow  # trains networks / runs grids end to end

TINY = {
    "name": "tiny",
    "grid": {"objectives": ["supervised", "simsiam", "simsiam-no-stopgrad"], "widths": [12], "depth": 2},
    "training": {"epochs": 1, "batch_size": 128, "subset": 384, "checkpoints_per_decade": 1},
    "analysis": {"planes": 2, "paths": 4, "lc_points": 10, "lc_directions": 3, "probe_train": 600,
                 "probe_test": 300},
    "execution": {"workers": 1},
}


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match=r"`grid.objectives` .* one of|non-empty list"):
        config_from_dict({"grid": {"objectives": ["simclr", "nope"]}})
    with pytest.raises(ValueError, match=r"table \[training\] .* unknown fields \['epoch'\]"):
        config_from_dict({"training": {"epoch": 3}})
    with pytest.raises(ValueError, match="`analysis.lc_radius` of the experiment config must be a finite"):
        config_from_dict({"analysis": {"lc_radius": -1}})
    with pytest.raises(ValueError, match="unknown keys"):
        config_from_dict({"grids": {}})
    config = config_from_dict(TINY)
    ids = [r.run_id for r in config.runs()]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert ids == [r.run_id for r in config_from_dict(TINY).runs()]  # stable


def test_shipped_configs_are_valid():
    from pathlib import Path

    for path in sorted(Path(__file__).resolve().parents[1].glob("configs/*.toml")):
        assert load_config(path).runs(), path


def test_tiny_grid_end_to_end_with_store_resume_and_report(tmp_path, data_dir, capsys):
    config = config_from_dict(TINY)
    root = tmp_path / "exp"
    first = run_experiment(config, root, data_dir=data_dir, quiet=True)
    assert len(first.completed) == 3 and not first.failed
    results = load_results(root)
    assert list(results.columns) == list(COLUMNS)
    assert not results.duplicated(["run_id", "step", "metric"]).any()
    for metric in ("slice.n_regions", "path.n_regions", "lc.total", "probe_test_accuracy", "knn_accuracy",
                   "embedding_std", "train.loss"):
        assert metric in set(results["metric"]), metric
    from reluscope.experiments.metric_names import unknown

    assert unknown(set(results["metric"])) == []  # every name the analysis writes is described
    again = run_experiment(config, root, data_dir=data_dir, quiet=True)
    assert again.skipped and not again.completed
    assert len(load_results(root)) == len(results)
    page = main(["report", str(root)])
    assert page == 0
    assert main(["findings", str(root), "--markdown"]) == 0
    html = (root / "report" / "report.html").read_text()
    assert "Findings" in html and "data:image/png;base64" in html and "simsiam-no-stopgrad" in html
    assert "larger = more regions" in html and "(not described)" not in html  # the glossary
    assert "<figcaption>" in html and "References" in html and "Provenance" in html
    assert "Backbones in this study: mlp." in html and "no convolutional backbone" in html
    assert "Add <code>\"cnn\"</code> to <code>grid.backbones</code>" in html  # no tiny-cnn config ships
    from reluscope.experiments.report import cnn_arm_config

    assert cnn_arm_config("paper-mnist") == "paper-mnist-cnn" and cnn_arm_config("tiny") is None
    assert (root / "report" / "final_checkpoints.csv").is_file() and 'href="findings.csv"' in html
    assert "<td>12</td>" in html and "<td>12.000</td>" not in html  # integers printed as integers
    run_id = load_results(root)["run_id"].iloc[0]
    page = (root / "report" / "runs" / f"{run_id}.html").read_text()  # a page per run, linked
    assert f'href="runs/{run_id}.html"' in html and '"objective"' not in page and "simsiam" in page
    assert (root / "report" / "runs" / f"{run_id}.csv").is_file() and "Full resolution" in html
    assert 'href="curves.svg"' in html and (root / "report" / "curves.svg").read_text().startswith("<?xml")
    zoom = re.findall(r'href="(zoom/[^"]+\.html)"', html)  # each pictured partition, zoomable
    assert zoom and all("<svg" in (root / "report" / z).read_text() for z in zoom)
    # a real browser renders it: a screenshot with text and figures, not a blank page
    from conftest import browser_screenshot

    shot = browser_screenshot(root / "report" / "report.html", tmp_path / "report.png")
    assert shot.shape[0] > 1000 and shot.std() > 0.05
    dark = (shot.mean(axis=2) < 0.5).mean(axis=1)  # share of dark pixels per row
    assert (dark[:200] > 0).any() and (dark > 0).mean() > 0.3  # the title, then content down the page
    with pytest.raises(ValueError, match="results of a different config"):
        run_experiment(config_from_dict({**TINY, "name": "other"}), root, data_dir=data_dir, quiet=True)
    # a second arm (its own store, local slice squares) pools with the first
    arm = {**TINY, "name": "tiny-arm", "grid": {**TINY["grid"], "objectives": ["supervised"], "widths": [8]},
           "analysis": {**TINY["analysis"], "plane_scale": 0.5}}
    run_experiment(config_from_dict(arm), tmp_path / "arm", data_dir=data_dir, quiet=True)
    assert main(["findings", str(root), str(tmp_path / "arm")]) == 0
    capsys.readouterr()
    assert main(["findings", str(root), str(root)]) != 0
    assert "folders holding different runs" in capsys.readouterr().err


def test_a_killed_grid_resumes_without_lost_or_duplicated_rows(tmp_path, data_dir):
    # fine-tuning at every checkpoint: the kill lands between fine-tuned checkpoints, so the
    # resumed store must equal the reference on those rows too
    config = {**TINY, "grid": {**TINY["grid"], "objectives": ["simclr", "supervised"]},
              "analysis": {**TINY["analysis"], "finetune_fractions": [0.1], "finetune_steps": 5,
                           "finetune_checkpoints": 3}}
    root = tmp_path / "exp"
    script = textwrap.dedent(f"""
        import os, signal
        import reluscope.experiments.store as store
        from reluscope.experiments.config import config_from_dict
        from reluscope.experiments.runner import run_experiment
        original = store.Store.write_rows
        count = [0]
        def write_then_die(self, run_id, step, rows):
            path = original(self, run_id, step, rows)
            count[0] += 1
            if count[0] == 2:  # after two analysed checkpoints of the first run
                os.kill(os.getpid(), signal.SIGKILL)
            return path
        store.Store.write_rows = write_then_die
        run_experiment(config_from_dict({config!r}), {str(root)!r}, data_dir={str(data_dir)!r}, quiet=True)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    partial = load_results(root)
    assert partial["step"].nunique() == 2
    report = run_experiment(config_from_dict(config), root, data_dir=data_dir, quiet=True)
    assert len(report.completed) == 2
    full = load_results(root)
    assert not full.duplicated(["run_id", "step", "metric"]).any()
    reference = run_experiment(config_from_dict(config), tmp_path / "ref", data_dir=data_dir, quiet=True)
    assert len(reference.completed) == 2
    ref = load_results(tmp_path / "ref")
    keys = ["run_id", "step", "metric"]
    merged = full.merge(ref, on=keys, suffixes=("", "_ref"))
    assert len(merged) == len(ref) == len(full)
    tuned = merged[merged["metric"].str.startswith("finetune")]
    assert tuned["step"].nunique() >= 2 and partial["metric"].str.startswith("finetune").any()
    exact = ~merged["metric"].str.startswith("time.")
    np.testing.assert_allclose(merged.loc[exact, "value"], merged.loc[exact, "value_ref"], rtol=1e-9)


def test_a_failing_run_is_reported_and_the_others_go_on(tmp_path, data_dir, monkeypatch):
    import reluscope.experiments.runner as runner

    original = runner.run_job

    def flaky(config, spec, root, data, quiet=None):
        if spec.train.objective == "simsiam":
            raise RuntimeError("boom")
        return original(config, spec, root, data, quiet)

    monkeypatch.setattr(runner, "run_job", flaky)
    report = run_experiment(config_from_dict(TINY), tmp_path / "exp", data_dir=data_dir, quiet=True)
    assert len(report.completed) == 2 and len(report.failed) == 1
    failed = next(iter(report.failed))
    assert "boom" in (tmp_path / "exp" / "runs" / failed / "error.txt").read_text()


def test_report_of_an_empty_folder_says_what_to_run(tmp_path):
    from reluscope.experiments.report import write_report

    with pytest.raises(ValueError, match="analysed checkpoints.*reluscope run"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2


def test_the_training_table_is_trainconfig_fields_and_reaches_every_run():
    import dataclasses

    from reluscope.experiments.config import Training, config_from_dict
    from reluscope.train.loop import TrainConfig

    run_fields = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    for f in dataclasses.fields(Training):
        assert run_fields.get(f.name) == f.type, f.name  # same name, same type: one meaning
    config = config_from_dict({"grid": {"objectives": ["supervised", "simclr"], "widths": [8], "depth": 1},
                               "training": {"epochs": 2, "lr": 3e-4, "subset": 500, "label_noise": 0.1}})
    for spec in config.runs():
        shared = {f.name: getattr(spec.train, f.name) for f in dataclasses.fields(Training)}
        assert shared == dataclasses.asdict(config.training)


def test_metric_names_say_what_each_metric_is_and_which_are_geometry():
    from reluscope.experiments.metric_names import is_geometry, lookup, network_of, unknown

    assert lookup("plane3.n_regions").pattern == "plane{k}.n_regions"
    assert lookup("full.lc.site2").pattern == "lc.site{s}" and network_of("full.lc.site2") == "full"
    assert lookup("finetune10.accuracy").source == "finetune"
    assert lookup("slice.area_median").complexity == -1 and lookup("lc.total").complexity == 1
    assert is_geometry("slice.log_density_mean") and is_geometry("path_diff.boundary_density")
    for not_a_candidate in ("plane0.n_regions", "full.slice.n_regions", "slice.failed_planes",
                            "probe_test_accuracy", "time.slices", "train.loss"):
        assert not is_geometry(not_a_candidate), not_a_candidate
    assert unknown({"slice.n_regions", "slice.no_such_metric"}) == ["slice.no_such_metric"]
