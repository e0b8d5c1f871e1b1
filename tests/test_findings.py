"""Findings and their statistics on synthetic tables with known answers.

A flat trajectory is "flat", a planted trend is found, a planted lead is found with
the interval its checkpoint spacing allows, a null of healthy runs gives the false-alarm
rate that was planted, and intervals straddling the band give "inconclusive".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from reluscope.experiments.config import Findings
from reluscope.experiments.findings import (
    correlations,
    detection_steps,
    false_alarm_rates,
    finding_across_architectures,
    finding_collapse_early,
    finding_contrastive_expand,
    finding_distillation_merge,
    finding_fewer_regions,
    findings,
    run_trends,
    secondary_metrics,
    wide,
)
from reluscope.experiments.statistics import (
    Estimate,
    adjust_pvalues,
    bootstrap,
    classify,
    first_crossing,
    loo_r2,
    persistent_onset,
    pooled_std,
    spearman_permutation,
    theil_sen,
)
from reluscope.experiments.store import COLUMNS

STEPS = [0, 10, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]  # 100 steps per epoch
OFFSETS = {0: 0.01, 1: 0.0, 2: -0.01}  # per-seed log offsets: the seed noise
FAMILIES = {"supervised": "supervised", "simclr": "contrastive", "moco": "contrastive",
            "byol": "self-distillation", "simsiam": "self-distillation", "simsiam-no-stopgrad":
            "self-distillation", "vicreg": "redundancy-reduction"}
Curve = Callable[[float], float]


def flat(value: float) -> Curve:
    return lambda epoch: value


def table_of(specs: dict[str, dict[str, Curve]], seeds: tuple[int, ...] = (0, 1, 2), backbone: str = "mlp",
             plant: Callable[[str, int, str, float], float] | None = None) -> pd.DataFrame:
    """A wide table: for each objective, metric curves of the epoch; seeds shift every log
    metric by OFFSETS[seed] (and accuracies by a tenth of it); `plant(objective, seed,
    metric, epoch)` adds to the log of a metric."""
    rows = []
    for name, curves in specs.items():
        for seed in seeds:
            for step in STEPS:
                epoch = step / 100
                for metric, curve in curves.items():
                    shift = OFFSETS.get(seed, 0.0) + (plant(name, seed, metric, epoch) if plant else 0.0)
                    if "accuracy" in metric:
                        value = curve(epoch) + shift / 10
                    elif "log_" in metric:
                        value = curve(epoch) + shift
                    else:
                        value = curve(epoch) * np.exp(shift)
                    rows.append({"run_id": f"{name}-{backbone}-{seed}", "dataset": "mnist", "objective": name,
                                 "family": FAMILIES[name], "backbone": backbone, "width": 64, "seed": seed,
                                 "step": step, "epoch": epoch, "metric": metric, "value": float(value)})
    return wide(pd.DataFrame(rows, columns=list(COLUMNS)))


def healthy_curves(log_density: Curve, accuracy: Curve | None = None) -> dict[str, Curve]:
    accuracy = accuracy or flat(0.95)
    return {"slice.log_density_mean": log_density,
            "full.path.boundary_density": lambda e: np.exp(log_density(e)),
            "path.boundary_density": lambda e: np.exp(log_density(e)) / 10, "lc.total": flat(5.0),
            "probe_test_accuracy": accuracy, "knn_accuracy": accuracy, "embedding_std": flat(0.8),
            "embedding_rankme": flat(40.0)}


OPTIONS = Findings(n_boot=300)


# ---------------------------------------------------------------------------- statistics
def test_theil_sen_ignores_an_outlier_and_recovers_the_slope():
    x = np.arange(10.0)
    y = 2.0 * x + 1.0
    y[7] = 100.0
    assert theil_sen(x, y) == pytest.approx(2.0)
    assert np.isnan(theil_sen(np.ones(4), np.arange(4.0)))


def test_adjusted_pvalues_match_hand_computed_holm_and_bh():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.20])
    holm = adjust_pvalues(p, "holm")  # m = 4: sorted 0.01, 0.03, 0.04, 0.20 -> 0.04, 0.09, 0.09, 0.20
    assert np.allclose(holm[[0, 2, 1, 4]], [0.04, 0.09, 0.09, 0.20]) and np.isnan(holm[3])
    bh = adjust_pvalues(p, "bh")  # 0.04, 0.04*4/3... step-up: [0.04, 0.0533, 0.0533, 0.20]
    assert np.allclose(bh[[0, 2, 1, 4]], [0.04, 0.16 / 3, 0.16 / 3, 0.20])
    with pytest.raises(ValueError, match="holm"):
        adjust_pvalues(p, "bonferroni")


def test_bootstrap_intervals_cover_and_need_two_runs():
    rng = np.random.default_rng(0)
    est = bootstrap([np.array([1.0, 2.0, 3.0])], np.mean, n_boot=500, rng=rng, confidence=0.9)
    assert est.lo <= est.value == 2.0 <= est.hi and 1.0 <= est.lo and est.hi <= 3.0
    single = bootstrap([np.array([5.0])], np.mean, n_boot=100, rng=rng, confidence=0.9)
    assert single.value == 5.0 and np.isnan(single.lo) and "no interval" in single.text()


def test_classify_against_a_band():
    def est(lo: float, hi: float) -> Estimate:
        return Estimate((lo + hi) / 2, lo, hi, 3, 0.95)

    assert classify(est(0.2, 0.5), 0.1) == "up"
    assert classify(est(-0.5, -0.2), 0.1) == "down"
    assert classify(est(-0.05, 0.08), 0.1) == "flat"
    assert classify(est(0.05, 0.3), 0.1) == "inconclusive"
    assert classify(Estimate(0.0, np.nan, np.nan, 1, 0.95), 0.1) == "inconclusive"


def test_small_helpers_on_hand_solved_cases():
    assert pooled_std(np.array([1.0, 3.0, 10.0, 12.0]), np.array([0, 0, 1, 1])) == pytest.approx(np.sqrt(2))
    crossing = first_crossing(np.array([0.1, 0.5, 0.4, 0.9]), np.array([0.0, 4.0, 0.0, 8.0]), 0.3)
    assert crossing == pytest.approx(2.0)
    assert np.isnan(first_crossing(np.array([0.1, 0.2]), np.array([1.0, 2.0]), 0.5))
    assert persistent_onset(np.array([1, 0, 1, 1, 1], bool), 2) == 2
    assert persistent_onset(np.array([1, 0, 1, 0], bool), 2) == -1
    x = np.array([0.0, 1, 2, 3, 4, 5])
    groups = np.array([0, 0, 1, 1, 2, 2])
    assert loo_r2(x, 3 * x + 1, groups) == pytest.approx(1.0)
    assert loo_r2(x, np.array([1.0, -1, 1, -1, 1, -1]), groups) <= 0


def test_spearman_permutation_p_is_exact_for_few_points():
    rng = np.random.default_rng(0)
    rho, p = spearman_permutation(np.arange(5.0), np.arange(5.0) ** 2, rng=rng)
    assert rho == pytest.approx(1.0) and p == pytest.approx(2 / 120)  # two orderings reach |rho| = 1
    rho, p = spearman_permutation(np.arange(12.0), np.arange(12.0), rng=rng, n_resamples=2000)
    assert rho == pytest.approx(1.0) and p == pytest.approx(1 / 2001, rel=0.5)
    assert np.isnan(spearman_permutation(np.ones(4), np.arange(4.0), rng=rng)[0])


# ---------------------------------------------------------------------------- findings 2, 3
def test_a_flat_trajectory_is_flat_and_a_planted_expansion_is_up():
    table = table_of({"simclr": healthy_curves(lambda e: 7.0 + 0.5 * np.log(max(e, 0.1))),
                      "byol": healthy_curves(lambda e: 7.0 if e >= 1 else 9.0)})
    trends = run_trends(table, "slice.log_density_mean", 1.0)
    byol = trends[trends["objective"] == "byol"]
    assert np.allclose(byol["change"], 0.0, atol=1e-12)
    simclr = trends[trends["objective"] == "simclr"]
    assert np.allclose(simclr["slope"], 0.5)  # log density = 0.5 log epoch + const after the burn-in
    expand = finding_contrastive_expand(table, OPTIONS)
    merge = finding_distillation_merge(table, OPTIONS)
    assert expand.verdict == "holds" and "simclr: log change +1.15" in expand.numbers
    assert ", up" in expand.numbers
    assert merge.verdict == "holds" and "byol" in merge.numbers and "flat" in merge.numbers
    # the transient before the burn-in (byol's 9 -> 7) is not read as a merge or an expansion
    assert "x1.00" in merge.numbers


def test_trend_findings_say_does_not_hold_and_mixed():
    table = table_of({"simclr": healthy_curves(flat(7.0)), "moco": healthy_curves(lambda e: 7.0 + 0.3 * e),
                      "byol": healthy_curves(lambda e: 7.0 + 0.3 * e)})
    assert finding_contrastive_expand(table, OPTIONS).verdict == "mixed"  # moco up, simclr flat
    assert finding_distillation_merge(table, OPTIONS).verdict == "does not hold"  # byol expands
    flat_only = table_of({"simclr": healthy_curves(flat(7.0))})
    assert finding_contrastive_expand(flat_only, OPTIONS).verdict == "does not hold"


def test_an_interval_straddling_the_band_is_inconclusive():
    noisy = {0: 0.3, 1: 0.0, 2: -0.3}

    def plant(name: str, seed: int, metric: str, epoch: float) -> float:
        return noisy[seed] * epoch / 10 if metric == "slice.log_density_mean" else 0.0

    table = table_of({"simclr": healthy_curves(lambda e: 7.0 + 0.03 * e)}, plant=plant)
    assert finding_contrastive_expand(table, OPTIONS).verdict == "inconclusive"


# ---------------------------------------------------------------------------- finding 1
def test_fewer_regions_holds_refutes_and_ignores_an_untrained_match():
    table = table_of({"supervised": healthy_curves(flat(8.0), lambda e: 0.88 + 0.09 * min(e, 1.0)),
                      "simclr": healthy_curves(flat(6.5), lambda e: 0.88 + 0.085 * min(e, 1.0)),
                      "byol": healthy_curves(flat(6.5), lambda e: 0.88 + 0.02 * min(e, 1.0))})
    found = finding_fewer_regions(table, OPTIONS)
    assert found.verdict == "mixed"  # simclr supports; byol is 7 points behind
    assert "simclr (supports)" in found.numbers and "byol (refutes)" in found.numbers
    assert "x0.22" in found.numbers  # exp(6.5 - 8)
    only_simclr = table[table["objective"] != "byol"]
    assert finding_fewer_regions(only_simclr, OPTIONS).verdict == "holds"
    # an SSL objective that never learns (probe stays at the untrained 0.88) is not "comparable"
    untrained = table_of({"supervised": healthy_curves(flat(8.0), lambda e: 0.88 + 0.09 * min(e, 1.0)),
                          "simclr": healthy_curves(flat(6.5), flat(0.88))})
    assert finding_fewer_regions(untrained, OPTIONS).verdict == "does not hold"


# ---------------------------------------------------------------------------- finding 4
def collapse_table(geometry_at: float, std_at: float, seeds: tuple[int, ...] = (0, 1, 2),
                   null_plant: bool = False) -> pd.DataFrame:
    def plant(name: str, seed: int, metric: str, epoch: float) -> float:
        if name == "simsiam-no-stopgrad":
            if metric == "slice.log_density_mean" and epoch >= geometry_at:
                return -1.0
            if metric == "embedding_std" and epoch >= std_at:
                return -2.0
        if null_plant and name == "simsiam" and seed == 2 and metric == "embedding_rankme" and epoch >= 6:
            return -1.0
        return 0.0

    curves = healthy_curves(flat(7.0))
    return table_of({"simsiam": curves, "simsiam-no-stopgrad": curves}, seeds=seeds, plant=plant)


def test_a_planted_lead_is_found_with_its_checkpoint_interval():
    table = collapse_table(geometry_at=2.0, std_at=5.0)
    steps = detection_steps(table, OPTIONS)
    run = steps[(steps["run_id"] == "simsiam-no-stopgrad-mlp-0")].set_index("indicator")
    assert run.loc["slice.log_density_mean", "epoch"] == 2.0 and run.loc["slice.log_density_mean",
                                                                          "epoch_before"] == 1.0
    assert run.loc["embedding_std", "epoch"] == 5.0 and np.isnan(run.loc["lc.total", "epoch"])
    found = finding_collapse_early(table, OPTIONS)
    assert found.verdict == "holds"
    assert "lead in [+2.00, +4.00] epochs" in found.numbers
    assert "slice.log_density_mean 0%" in found.numbers


def test_detection_at_the_same_checkpoint_is_not_a_lead_and_late_geometry_does_not_hold():
    same = finding_collapse_early(collapse_table(geometry_at=5.0, std_at=5.0), OPTIONS)
    assert same.verdict == "inconclusive" and "lead in [-1.00, +1.00]" in same.numbers
    late = finding_collapse_early(collapse_table(geometry_at=8.0, std_at=3.0), OPTIONS)
    assert late.verdict == "does not hold"


def test_the_null_of_healthy_runs_gives_the_planted_false_alarm_rate():
    # four healthy seeds; seed 2's RankMe drops from epoch 6: against the other seeds it is
    # flagged, and it contaminates the others' reference at most in 5 of 13 checkpoints (the
    # median noise stays the seed noise), where they now sit a third of the drop away
    OFFSETS[3] = 0.0
    try:
        table = collapse_table(geometry_at=2.0, std_at=5.0, seeds=(0, 1, 2, 3), null_plant=True)
    finally:
        del OFFSETS[3]
    steps = detection_steps(table, OPTIONS)
    null = steps[steps["null"] & (steps["indicator"] == "embedding_rankme")].set_index("seed")["epoch"]
    flagged = np.isfinite(null)
    rates = false_alarm_rates(steps)
    assert rates["embedding_rankme"] == pytest.approx(flagged.mean()) and flagged[2]
    assert rates["slice.log_density_mean"] == 0.0 and rates["embedding_std"] == 0.0


# ---------------------------------------------------------------------------- finding 5
def prediction_table(backbones: tuple[str, ...]) -> pd.DataFrame:
    frames = []
    for k, backbone in enumerate(backbones):
        specs = {name: healthy_curves(flat(6.0 + 0.5 * i + 0.1 * k), flat(0.90 + 0.02 * i + 0.002 * k))
                 for i, name in enumerate(["simclr", "byol", "vicreg", "supervised"])}
        frames.append(table_of(specs, backbone=backbone))
    return pd.concat(frames, ignore_index=True)


def test_prediction_across_objectives_and_architectures():
    one = finding_across_architectures(prediction_table(("mlp",)), OPTIONS)
    assert one.verdict == "inconclusive" and "needs >= 2 backbones" in one.numbers
    assert "R² +1.00" in one.numbers
    two = finding_across_architectures(prediction_table(("mlp", "cnn")), OPTIONS)
    assert two.verdict == "holds" and "leave-one-backbone-out R² +" in two.numbers


def test_a_metric_unrelated_to_accuracy_does_not_hold_and_secondary_metrics_are_corrected():
    table = prediction_table(("mlp", "cnn"))
    rng = np.random.default_rng(1)
    shuffled = {name: float(v) for name, v in zip(["simclr", "byol", "vicreg", "supervised"],
                                                  rng.permutation([7.0, 6.0, 8.0, 6.5]), strict=True)}
    table["slice.log_density_mean"] = table["objective"].map(shuffled) + 0.01 * table["seed"]
    assert finding_across_architectures(table, OPTIONS).verdict == "does not hold"
    secondary = secondary_metrics(table, OPTIONS)
    assert set(secondary["metric"]) >= {"slice.log_density_mean", "path.boundary_density"}
    assert (secondary["p_adjusted"] >= secondary["p"] - 1e-12).all()


def test_findings_run_on_a_whole_synthetic_grid_and_correlations_resample_seeds():
    table = table_of({"supervised": healthy_curves(flat(8.0), lambda e: 0.88 + 0.09 * min(e, 1.0)),
                      "simclr": healthy_curves(lambda e: 6.0 + 0.2 * e, lambda e: 0.88 + 0.085 * min(e, 1.0)),
                      "byol": healthy_curves(flat(6.5), lambda e: 0.88 + 0.08 * min(e, 1.0))})
    found = findings(table, OPTIONS)
    assert len(found) == 12 and {f.network for f in found} == {"backbone", "full"}
    assert all(f.criterion and f.numbers for f in found)
    corr = correlations(table, n_boot=50)
    row = corr[(corr["scope"] == "simclr") & (corr["metric"] == "slice.log_density_mean")
               & (corr["target"] == "probe_test_accuracy")].iloc[0]
    assert row["resampled"] == "seeds" and row["spearman"] > 0.5


# ---------------------------------------------------------------------------- Gamba et al.
def sweep_table(nonlinearity_peak: int) -> pd.DataFrame:
    """Supervised runs at 6 widths: test error peaks at width 32; the nonlinearity peaks at
    `nonlinearity_peak`; boundary density grows with width."""
    widths = [4, 8, 16, 32, 64, 128]
    error = {4: 0.20, 8: 0.25, 16: 0.30, 32: 0.40, 64: 0.30, 128: 0.22}
    rows = []
    for w in widths:
        for seed in (0, 1, 2):
            shift = OFFSETS[seed]
            nonlin = 1.0 / (1 + abs(np.log2(w / nonlinearity_peak))) + shift
            for metric, value in {"classifier.test_accuracy": 1 - error[w] + shift / 10,
                                  "full.path.mean_abs_deviation": nonlin,
                                  "path.boundary_density": float(w) * (1 + shift)}.items():
                rows.append({"run_id": f"sup-{w}-{seed}", "dataset": "mnist", "objective": "supervised",
                             "family": "supervised", "backbone": "mlp", "width": w, "seed": seed,
                             "step": 1000, "epoch": 10.0, "metric": metric, "value": value})
    return wide(pd.DataFrame(rows, columns=list(COLUMNS)))


def test_double_descent_nonlinearity_follows_the_test_error_peak():
    from reluscope.experiments.findings import finding_double_descent

    found = finding_double_descent(sweep_table(32), OPTIONS)
    assert found.verdict == "holds" and "peak at width 32" in found.numbers
    assert "Spearman(width, path.boundary_density) +1.00" in found.numbers
    assert finding_double_descent(sweep_table(4), OPTIONS).verdict == "does not hold"
    flat = sweep_table(32)
    flat["classifier.test_accuracy"] = 1 - 0.1 * flat["width"] / 128  # error peaks at the edge
    assert finding_double_descent(flat, OPTIONS).verdict == "inconclusive"


def test_local_complexity_claims_on_planted_associations():
    from reluscope.experiments.findings import finding_local_complexity

    def curves(lc_slope: float) -> dict[str, Curve]:
        c = healthy_curves(flat(7.0))
        c["full.lc.total"] = lambda e: 50 - lc_slope * e
        c["lc.total"] = lambda e: 50 - lc_slope * e
        c["full.path.total_variation_density"] = lambda e: 5 - lc_slope * e / 10  # tracks LC
        c["feature_rankme"] = lambda e: 40 + lc_slope * e  # rank rises while LC falls
        c["robust.linf_accuracy"] = lambda e: 0.5 + 0.01 * e  # robustness rises while LC falls
        return c

    table = table_of({"supervised": curves(2.0), "simclr": curves(3.0)})
    found = {f.title: f for f in finding_local_complexity(table, OPTIONS)}
    assert found["local complexity tracks total variation"].verdict == "holds"
    assert found["higher local complexity, lower robust accuracy"].verdict == "holds"
    assert found["lower feature rank comes with lower local complexity"].verdict == "does not hold"
    assert found["local complexity falls after the first epoch"].verdict == "holds"


def test_the_complexity_figure_draws_lc_pairs_and_double_descent(tmp_path):
    from reluscope.experiments.figures import plot_complexity

    rng = np.random.default_rng(0)
    rows = []
    for width in (4, 16, 64, 256):
        for seed in range(2):
            for step in (0, 10, 100):
                lc = float(rng.uniform(1, 10))
                rows.append({"run_id": f"w{width}-s{seed}", "objective": "supervised", "width": width,
                             "seed": seed, "step": step, "full.lc.total": lc,
                             "full.path.total_variation_density": 2 * lc, "lc.total": lc,
                             "feature_rankme": 3 * lc, "classifier.test_accuracy": 0.8 + 0.01 * seed,
                             "classifier.train_accuracy": 0.9, "full.path.mean_abs_deviation": lc / width})
    path = plot_complexity(pd.DataFrame(rows), tmp_path)
    assert path is not None and path.stat().st_size > 20_000
    bare = pd.DataFrame([{"run_id": "a", "objective": "simclr", "width": 8, "seed": 0, "step": 0}])
    assert plot_complexity(bare, tmp_path) is None


def test_curve_bands_are_t_intervals_of_the_seed_mean():
    import pandas as pd

    from reluscope.experiments.figures import seed_interval

    frame = pd.DataFrame({"step": [0, 0, 0, 1, 1, 2], "v": [1.0, 2.0, 3.0, 5.0, 5.0, 7.0]})
    mean, low, high = seed_interval(frame.groupby("step")["v"])
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, 2 dof) * std 1 / sqrt(3 seeds), by hand
    np.testing.assert_allclose(mean, [2.0, 5.0, 7.0])
    np.testing.assert_allclose(low, [2.0 - half, 5.0, 7.0])
    np.testing.assert_allclose(high, [2.0 + half, 5.0, 7.0])  # equal seeds, or one seed: no band


def test_pooled_arms_get_per_backbone_findings_and_one_prediction_across_them():
    table = prediction_table(("mlp", "cnn"))
    found = findings(table, OPTIONS)
    titles = [f.title for f in found]
    single = findings(table[table["backbone"] == "mlp"], OPTIONS)
    per_arm = [f for f in found if f.title.endswith("[mlp]")]
    assert len(per_arm) == len(single) - 1  # everything but the open question, per arm
    expected = [f"{f.title} [mlp]" for f in single if not f.title.startswith("geometry")]
    assert [f.title for f in per_arm] == expected
    assert sum(t.endswith("[cnn]") for t in titles) == len(per_arm)
    last = found[-1]
    assert last.title.startswith("geometry predicts") and "leave-one-backbone-out" in last.numbers
    assert last.verdict == finding_across_architectures(table, OPTIONS).verdict == "holds"
