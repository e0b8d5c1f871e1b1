"""Experiments: config validation, a tiny grid end to end, resume after a kill, analysis on
synthetic tables with known answers, and the report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from reluscope.cli import main
from reluscope.experiments.config import config_from_dict, load_config
from reluscope.experiments.findings import correlations, detection_steps, findings, wide
from reluscope.experiments.runner import run_experiment
from reluscope.experiments.store import COLUMNS, load_results

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
    with pytest.raises(ValueError, match="`analysis.lc_radius` of the experiment config must be a positive"):
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


def test_tiny_grid_end_to_end_with_store_resume_and_report(tmp_path, data_dir):
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
    again = run_experiment(config, root, data_dir=data_dir, quiet=True)
    assert again.skipped and not again.completed
    assert len(load_results(root)) == len(results)
    page = main(["report", str(root)])
    assert page == 0
    html = (root / "report" / "report.html").read_text()
    assert "Findings" in html and "data:image/png;base64" in html and "simsiam-no-stopgrad" in html
    with pytest.raises(ValueError, match="results of a different config"):
        run_experiment(config_from_dict({**TINY, "name": "other"}), root, data_dir=data_dir, quiet=True)


def test_a_killed_grid_resumes_without_lost_or_duplicated_rows(tmp_path, data_dir):
    config = {**TINY, "grid": {**TINY["grid"], "objectives": ["simclr", "supervised"]}}
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


def synthetic_table() -> pd.DataFrame:
    """Runs with known trends: supervised many regions, simclr expanding, byol merging,
    a collapse variant whose regions move at step 10 and its std only at step 100."""
    rows = []
    steps = [0, 1, 10, 100]
    specs = {"supervised": ("supervised", [100, 200, 400, 800], [0.5, 0.7, 0.9, 0.95]),
             "simclr": ("contrastive", [100, 150, 250, 300], [0.5, 0.7, 0.88, 0.93]),
             "byol": ("self-distillation", [100, 90, 80, 70], [0.5, 0.7, 0.9, 0.93]),
             "byol-no-ema": ("self-distillation", [100, 90, 20, 10], [0.5, 0.7, 0.9, 0.6])}
    for seed in (0, 1):
        for name, (family, regions, probe) in specs.items():
            for i, step in enumerate(steps):
                values = {"slice.n_regions": regions[i] + seed, "slice.area_median": 1.0 / regions[i],
                          "lc.total": regions[i] / 10, "probe_test_accuracy": probe[i],
                          "knn_accuracy": probe[i] - 0.01, "embedding_std": 0.1 if (name == "byol-no-ema"
                                                                                  and step == 100) else 0.8,
                          "embedding_rankme": 20.0}
                for metric, value in values.items():
                    rows.append({"run_id": f"{name}-{seed}", "dataset": "mnist", "objective": name,
                                 "family": family, "backbone": "mlp", "width": 64, "seed": seed, "step": step,
                                 "epoch": step / 10, "metric": metric, "value": float(value)})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_findings_on_a_synthetic_table_with_known_answers():
    table = wide(synthetic_table())
    verdicts = {f.title: f.verdict for f in findings(table)}
    assert verdicts["SSL: comparable accuracy, fewer regions"] == "holds"
    assert verdicts["contrastive: regions multiply"] == "holds"
    assert verdicts["self-distillation: regions merge"] == "holds"
    assert verdicts["collapse is visible early in geometry"] == "holds"
    assert verdicts["geometry predicts accuracy across architectures"] == "inconclusive"  # one backbone
    steps = detection_steps(table)
    geo = steps[(steps["indicator"] == "slice.n_regions") & (steps["run_id"] == "byol-no-ema-0")]["step"]
    std = steps[(steps["indicator"] == "embedding_std") & (steps["run_id"] == "byol-no-ema-0")]["step"]
    assert float(geo.iloc[0]) == 10 and float(std.iloc[0]) == 100
    corr = correlations(table, n_boot=50)
    row = corr[(corr["scope"] == "simclr") & (corr["metric"] == "slice.n_regions")
               & (corr["target"] == "probe_test_accuracy")].iloc[0]
    assert row["spearman"] > 0.95 and row["resampled"] == "seeds"
    assert row["spearman_lo"] <= row["spearman"] <= row["spearman_hi"]


def test_report_of_an_empty_folder_says_what_to_run(tmp_path):
    from reluscope.experiments.report import write_report

    with pytest.raises(ValueError, match="analysed checkpoints.*reluscope run"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
